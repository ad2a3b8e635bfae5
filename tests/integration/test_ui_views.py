"""
The grid, console and waterfall pages: served from the API fixture database
(with changes on two branches, a builder and a change written by someone
hostile added to it), each page must be well-formed HTML, show the builds the
API lists for what it shows, filter by branch, tags and result, escape what
it prints, and stay small (under 50 KB and 5,000 nodes) on a database of
1,000 builders that all build every change.
"""
import hashlib
import json
import os
import re
import shutil
import sqlite3
import urllib.parse
from html.parser import HTMLParser

import pytest

from test_api import FIXTURES, get, serve

EVIL = "<b>evil</b>&\"'x"
EVIL_TAG = "<i>t</i>"
EVIL_COMMENT = "<script>alert(1)</script> fix the </td> parser"
PR = "refs/pull/7/merge"
T = 1795472500  # just after the fixture's own builds
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Strict(HTMLParser):
    """Every element closed in order (void ones never), no attribute twice; counts nodes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.nodes, self.hrefs = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        self.nodes += 1
        names = [a for a, _ in attrs]
        if len(names) != len(set(names)):
            self.errors.append(f"attribute twice in <{tag}>")
        self.hrefs += [v for a, v in attrs if a == "href"]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.nodes += 1
        self.hrefs += [v for a, v in attrs if a == "href"]

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if data.strip():
            self.nodes += 1


def page(port, path):
    status, body, headers = get(port, path)
    assert status == 200, (path, status, body[:300])
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    text = body.decode()
    p = Strict()
    p.feed(text)
    p.close()
    assert not p.errors and not p.stack, (path, p.errors[:5], p.stack)
    assert text.startswith("<!DOCTYPE html>")
    return text, p


def build_links(text):
    return set(re.findall(r'href="/builders/(\d+)/builds/(\d+)"', text))


def api(port, path):
    status, body, _ = get(port, "/api/v2/" + path)
    assert status == 200, (path, body[:300])
    return next(v for k, v in json.loads(body).items() if k != "meta")


def sha1(s):
    return hashlib.sha1(s.encode()).hexdigest()


def add_rows(db, builders, changes, builds):
    """builders: (id, name, tags); changes: (id, branch, comments); builds: (id, builderid,
    number, changeid, results, started_at); one buildset per change."""
    tagids = {name: i for i, name in db.execute("SELECT id, name FROM tags")}
    for bid, name, tags in builders:
        db.execute("INSERT INTO builders (id, name, name_hash) VALUES (?, ?, ?)",
                   (bid, name, sha1(name)))
        for t in tags:
            if t not in tagids:
                tagids[t] = db.execute("INSERT INTO tags (name, name_hash) VALUES (?, ?)",
                                       (t, sha1(t))).lastrowid
            db.execute("INSERT INTO builders_tags (builderid, tagid) VALUES (?, ?)",
                       (bid, tagids[t]))
    for cid, branch, comments in changes:
        rev = "%040x" % (0xabc000 + cid)
        db.execute("INSERT INTO sourcestamps (id, ss_hash, branch, revision, repository, "
                   "codebase, project, created_at) VALUES (?, ?, ?, ?, 'r', '', 'proj', ?)",
                   (1000 + cid, sha1(f"ss{cid}"), branch, rev, T))
        db.execute("INSERT INTO changes (changeid, author, comments, branch, revision, "
                   "when_timestamp, repository, codebase, project, sourcestampid) VALUES "
                   "(?, ?, ?, ?, ?, ?, 'r', '', 'proj', ?)",
                   (cid, "Mallory <m@example.invalid>", comments, branch, rev, T, 1000 + cid))
        db.execute("INSERT INTO buildsets (id, reason, submitted_at, complete, results) "
                   "VALUES (?, 'change', ?, 1, 0)", (1000 + cid, T))
        db.execute("INSERT INTO buildset_sourcestamps (buildsetid, sourcestampid) "
                   "VALUES (?, ?)", (1000 + cid, 1000 + cid))
    db.executemany("INSERT INTO buildrequests (id, buildsetid, builderid, priority, complete, "
                   "results, submitted_at, waited_for) VALUES (?, ?, ?, 0, 1, ?, ?, 0)",
                   [(bid, 1000 + cid, builder, res, T) for bid, builder, _, cid, res, _ in builds])
    db.executemany("INSERT INTO builds (id, number, builderid, buildrequestid, workerid, "
                   "masterid, started_at, complete_at, state_string, results, "
                   "locks_duration_s) VALUES (?, ?, ?, ?, 2, 1, ?, ?, 'done', ?, 0)",
                   [(bid, num, builder, bid, start, start + 60, res)
                    for bid, builder, num, _, res, start in builds])


def small_db(tmp_path):
    """The fixture plus a hostile builder (5), change 2 on a pull request branch (built by
    alpha and the hostile builder) and change 3 on main (built by beta and alpha)."""
    path = str(tmp_path / "views.sqlite")
    shutil.copy(os.path.join(FIXTURES, "state-4.3-after-builds.sqlite"), path)
    db = sqlite3.connect(path)
    add_rows(db, [(5, EVIL, [EVIL_TAG, "unix"])],
             [(2, PR, EVIL_COMMENT), (3, "main", "Speed up the frobnicator")],
             [(101, 1, 10, 2, 0, T), (102, 5, 1, 2, 2, T + 10),
              (103, 3, 10, 3, 2, T + 100), (104, 1, 11, 3, 0, T + 120)])
    db.commit()
    db.close()
    return path


@pytest.fixture
def small(master, tmp_path):
    return serve(master, small_db(tmp_path))


def test_grid_shows_what_the_api_lists(small):
    text, _ = page(small, "/grid")
    links = build_links(text)
    for c in api(small, "changes?order=-changeid&limit=20"):
        for b in api(small, f"changes/{c['changeid']}/builds"):
            assert (str(b["builderid"]), str(b["number"])) in links
    for name in ("alpha", "beta", "delta"):
        assert f">{name}</a>" in text
    assert "gamma" not in text.split("<table")[1]  # no build of a change
    assert 'href="/grid?branch=refs%2Fpull%2F7%2Fmerge"' in text
    assert 'aria-current="page">Grid<' in text


def test_grid_branch_filter(small):
    text, _ = page(small, "/grid?branch=" + urllib.parse.quote(PR, safe=""))
    assert build_links(text) == {("1", "10"), ("5", "1")}
    assert "on branch refs/pull/7/merge" in text
    text, _ = page(small, "/grid?branch=main")
    assert build_links(text) == {("1", "11"), ("3", "10"), ("3", "2"), ("2", "2")}
    text, _ = page(small, "/grid?branch=nosuch")
    assert build_links(text) == set() and "No change on branch nosuch" in text


def test_grid_tags_and_result(small):
    text, _ = page(small, "/grid?tags=%2Bunix")
    assert {b for b, _ in build_links(text)} == {"1", "3", "5"}
    # the tag bar cycles +unix to -unix and keeps the other parameters
    text, _ = page(small, "/grid?branch=main&tags=%2Bunix")
    assert 'href="/grid?branch=main&amp;tags=-unix"' in text
    text, _ = page(small, "/grid?tags=-unix")
    assert {b for b, _ in build_links(text)} == {"2"}
    text, _ = page(small, "/grid?tag=fast")  # Buildbot's old name, a bare tag is any-of
    assert {b for b, _ in build_links(text)} == {"1"}
    text, _ = page(small, "/grid?tags=%2Bunix&branch=main")
    assert '<input type="hidden" name="tags" value="+unix">' in text
    # beta's latest build in view failed (#10 after #2), alpha's succeeded
    text, _ = page(small, "/grid?result=failure")
    assert {b for b, _ in build_links(text)} == {"3", "5"}
    assert '<option selected>failure</option>' in text
    assert get(small, "/grid?result=bogus")[0] == 400


def test_hostile_text_is_escaped(small):
    shows_comments = {"/grid": True, "/console": True,
                      "/waterfall?all=1&hours=1&until=%d" % (T + 600): False}
    for path, comments in shows_comments.items():
        text, _ = page(small, path)
        assert "<b>evil" not in text and "<script>alert" not in text and "<i>t</i>" not in text
        assert "&lt;b&gt;evil&lt;/b&gt;&amp;&quot;&#39;x" in text, path
        assert "&lt;i&gt;t&lt;/i&gt;" in text, path
        if comments:
            assert "&lt;script&gt;alert(1)&lt;/script&gt; fix the &lt;/td&gt; parser" in text


def test_console(small):
    text, _ = page(small, "/console")
    # the newest 30, which /changes answers oldest first (Buildbot reverses its SQL's window)
    changes = api(small, "changes?order=-changeid&limit=30")[::-1]
    rows = text.split("<tbody>")[1].split("</tr>")
    for row, c in zip(rows, changes):  # newest first, one row each
        assert f'href="/changes/{c["changeid"]}"' in row
        want = {(str(b["builderid"]), str(b["number"]))
                for b in api(small, f"changes/{c['changeid']}/builds")}
        assert build_links(row) == want
    # columns grouped by first tag: the group header spans its builders
    assert '<th class="grp" colspan="1" title="&lt;i&gt;t&lt;/i&gt;">' in text
    assert 'title="alpha"' in text
    text, _ = page(small, "/console?branch=main&tags=-exc")
    assert build_links(text) == {("1", "11"), ("3", "10"), ("3", "2"), ("2", "2")}


def test_waterfall(small):
    until = T + 600
    text, p = page(small, f"/waterfall?hours=1&until={until}")
    want = set()
    for bl in api(small, "builders"):
        if not bl["masterids"]:
            continue
        assert f">{bl['name']}</text>" in text
        started = api(small, f"builders/{bl['builderid']}/builds?order=-number"
                             f"&started_at__le={until}")
        for b in started[:24]:  # a column shows the last 24 when there are few
            if (b["complete_at"] or until) >= until - 3600:
                want.add((str(b["builderid"]), str(b["number"])))
    assert build_links(text) == want and ("1", "11") in want and ("1", "1") in want
    assert "evil" not in text  # no master runs it
    assert ("5", "1") in build_links(page(small, f"/waterfall?hours=1&until={until}&all=1")[0])
    # the window moves: the hour before holds none of these builds
    text, _ = page(small, f"/waterfall?hours=1&until={until - 3600}")
    assert build_links(text) == set()
    assert f'until={until - 7200}"' in text and "Later" in text
    text, _ = page(small, f"/waterfall?hours=1&until={until}&tags=%2Bfast")
    assert {b for b, _ in build_links(text)} == {"1"}


def big_db(tmp_path):
    """1,000 more builders (10 tag groups) that each build all of 30 changes, the first 100
    twice per change; every build within an hour."""
    path = str(tmp_path / "big.sqlite")
    shutil.copy(os.path.join(FIXTURES, "state-4.3-after-builds.sqlite"), path)
    db = sqlite3.connect(path)
    builders = [(1000 + i, f"builder-{i:04d} with a fairly long name", [f"group{i % 10}", "3.x"])
                for i in range(1000)]
    changes = [(10 + c, "main", f"change {c}") for c in range(30)]
    builds, bid = [], 1000
    for c in range(30):
        for i in range(1000):
            for again in range(2 if i < 100 else 1):
                bid += 1
                builds.append((bid, 1000 + i, 2 * c + again + 1, 10 + c, (c + i) % 5,
                               T + c * 100 + again * 50))
    add_rows(db, builders, changes, builds)
    db.execute("INSERT INTO builder_masters (builderid, masterid) SELECT id, 1 FROM builders "
               "WHERE id >= 1000")
    db.commit()
    db.close()
    return path


def test_pages_stay_small_on_1000_builders(master, tmp_path):
    port = serve(master, big_db(tmp_path))
    until = T + 3000
    paths = ["/grid", "/grid?page=7", "/grid?branch=main&tags=%2Bgroup3",
             "/console", "/console?page=3", "/console?limit=100",
             f"/waterfall?until={until}", f"/waterfall?until={until}&hours=48&page=24"]
    for path in paths:
        text, p = page(port, path)
        assert len(text.encode()) <= 50_000 and p.nodes <= 5_000, (path, len(text), p.nodes)
        assert build_links(text), path
        assert '<nav class="pager"' in text, path
    # a full page of the waterfall draws fewer builds a column, and says there are more
    text, _ = page(port, f"/waterfall?until={until}&hours=1&page=1")
    assert len(build_links(text)) == 40 * 6 and text.count("\u2026</text></a>") == 40
    # the pages of the grid hold every builder once
    text, _ = page(port, "/grid?limit=2")
    pages = int(re.findall(r'page=(\d+)">\d+</a>', text)[-1]) + 1
    seen = []
    for k in range(pages):
        text, _ = page(port, f"/grid?limit=2&page={k}")
        seen += re.findall(r'<tr><th><a href="/builders/(\d+)">', text)
    assert len(seen) == len(set(seen)) == 1000
