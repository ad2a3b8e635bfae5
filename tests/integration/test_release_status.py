"""/release_status on a real master and worker: builders tagged for branches and tiers
(tags from master.lua; those of a builder no master configures written by SQL), builds with known
results inserted before the master starts, a release-cycle file from www.release_cycle.
The page's verdicts and problem groups are checked against the expected ones written
out here, and against buildbot.python.org's own dashboard code (release_dashboard/,
unmodified) run on the same data through /api/v2."""

import hashlib
import http.server
import importlib.util
import json
import os
import re
import sys
import threading
import time
import types
import urllib.error
import urllib.request

from conftest import api_get, api_rpc, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))

CYCLE = {
    "3.15": {"branch": "main", "pep": 790, "status": "feature", "first_release": "2026-10-01",
             "end_of_life": "2031-10", "release_manager": "Hugo van Kemenade"},
    "3.14": {"branch": "3.14", "pep": 745, "status": "bugfix", "first_release": "2025-10-07",
             "end_of_life": "2030-10", "release_manager": "Hugo van Kemenade"},
    "3.13": {"branch": "3.13", "pep": 719, "status": "security", "first_release": "2024-10-07",
             "end_of_life": "2029-10", "release_manager": "Thomas Wouters"},
    "3.12": {"branch": "3.12", "pep": 693, "status": "security", "first_release": "2023-10-02",
             "end_of_life": "2028-10", "release_manager": "Thomas Wouters"},
    "3.9": {"branch": "3.9", "pep": 596, "status": "end-of-life", "first_release": "2020-10-05",
            "end_of_life": "2025-10-31", "release_manager": "\u0141ukasz Langa"},
}

S, W, F, X = 0, 1, 2, 4  # SUCCESS, WARNINGS, FAILURE, EXCEPTION
HOUR = 3600

# name: (worker, tags, [(result, hours ago it started)...] oldest first)
BUILDERS = {
    "a-t1-fail": ("up", ["3.14", "tier-1", "stable"], [(S, 40), (F, 30), (W, 20), (F, 10)]),
    "b-t2-fail": ("up", ["3.14", "tier-2", "stable"], [(F, 30), (F, 20)]),
    "c-t3-fail": ("up", ["3.14", "tier-3", "stable"], [(S, 30), (F, 20)]),
    "d-t1-warn": ("up", ["3.14", "tier-1", "stable"], [(W, 20)]),
    "e-t2-away": ("down", ["3.14", "tier-2", "stable"], [(S, 1)]),
    "f-t2-away": ("down", ["3.14", "tier-2", "stable"], [(S, 48)]),
    "g-unstable": ("up", ["3.14", "tier-3", "unstable"], [(F, 20)]),
    "h-nothing": ("up", ["3.14", "tier-1", "stable"], [(X, 20)]),
    "i-ok": ("up", ["3.14", "tier-1", "stable"], [(S, 50), (S, 40), (S, 30), (S, 20), (X, 10)]),
    "j-main-ok": ("up", ["3.x", "tier-1", "stable"], [(S, 20)]),
    "k-main-warn": ("up", ["3.x", "tier-2", "unstable"], [(W, 20)]),
    "l-313-fail": ("up", ["3.13", "tier-3", "stable"], [(F, 20)]),
    "m-39-fail": ("up", ["3.9", "tier-1", "stable"], [(F, 20)]),
}

# What the page must say once the worker "up" is connected: per branch, the verdict, the
# featured problem, and the problem groups in order with their builders.
EXPECTED = [
    ("3.15", "Releasable", "Warnings from unstable build",
     [("Warnings from unstable build", ["k-main-warn"]),
      ("No problem detected", ["j-main-ok"])]),
    ("3.14", "Unreleasable", "Tier-1 build failed",
     [("Tier-1 build failed", ["a-t1-fail"]),
      ("Tier-2 build failed", ["b-t2-fail"]),
      ("Tier-3 build failed", ["c-t3-fail"]),
      ("Disconnected Tier-2 builder", ["f-t2-away"]),
      ("Disconnected Tier-2 builder (with recent build)", ["e-t2-away"]),
      ("Warnings from Tier-1 build", ["d-t1-warn"]),
      ("Unstable build failed", ["g-unstable"]),
      ("No problem detected", ["i-ok"]),
      ("No builds", ["h-nothing"])]),
    ("3.13", "Concern", "Tier-3 build failed", [("Tier-3 build failed", ["l-313-fail"])]),
    ("3.12", "N/A", "No builds", []),
]

CONFIG = '''local bbm = require "bbm"
return {
  title = "release",
  protocols = { pb = { port = %(pb)d } },
  workers = { bbm.worker("up", "pw"), bbm.worker("down", "pw") },
  builders = { %(builders)s },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "i-ok" } } },
  www = { port = %(www)d, release_cycle = "%(cycle)s" },
}
'''


def write_config(master, port, cycle="cycle.json"):
    builders = ",\n    ".join(
        f'bbm.builder{{ name = "{n}", workernames = {{ "{w}" }}, '
        f'tags = {{ {", ".join(chr(34) + t + chr(34) for t in tags)} }}, '
        f'factory = bbm.factory{{ bbm.steps.shell{{ command = {{ "false" }} }} }} }}'
        for n, (w, tags, _) in BUILDERS.items())
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": port, "builders": builders,
                          "cycle": cycle})
    with open(os.path.join(master.dir, "cycle.json"), "w") as f:
        json.dump(CYCLE, f)


def sha1(s):
    return hashlib.sha1(s.encode()).hexdigest()


def add_history(db_path, now):
    """Tags and builds for BUILDERS, a change on a-t1-fail's newest build, and a builder
    no master configures (so the dashboard must leave it out)."""
    import sqlite3
    db = sqlite3.connect(db_path)
    ids = dict(db.execute("SELECT name, id FROM builders"))
    old = db.execute("INSERT INTO builders (name, name_hash) VALUES (?, ?)",
                     ("z-gone", sha1("z-gone"))).lastrowid
    BUILDERS_ALL = dict(BUILDERS, **{"z-gone": ("", ["3.14", "tier-1", "stable"], [(F, 5)])})
    ids["z-gone"] = old
    for name, (_, tnames, builds) in BUILDERS_ALL.items():
        for t in tnames if name == "z-gone" else ():  # the others' come from master.lua
            db.execute("INSERT OR IGNORE INTO tags (name, name_hash) VALUES (?, ?)",
                       (t, sha1(t)))
            db.execute("INSERT INTO builders_tags (builderid, tagid) "
                       "SELECT ?, id FROM tags WHERE name = ?", (ids[name], t))
        for number, (result, hours) in enumerate(builds, 1):
            started = now - int(hours * HOUR)
            bs = db.execute("INSERT INTO buildsets (reason, submitted_at, complete, complete_at,"
                            " results) VALUES ('r', ?, 1, ?, ?)",
                            (started, started + 600, result)).lastrowid
            br = db.execute("INSERT INTO buildrequests (buildsetid, builderid, complete, results,"
                            " submitted_at, complete_at) VALUES (?, ?, 1, ?, ?, ?)",
                            (bs, ids[name], result, started, started + 600)).lastrowid
            db.execute("INSERT INTO builds (number, builderid, buildrequestid, masterid, "
                       "started_at, complete_at, locks_duration_s, state_string, results) "
                       "VALUES (?, ?, ?, 1, ?, ?, 0, 'done', ?)",
                       (number, ids[name], br, started, started + 600, result))
            if name == "a-t1-fail" and number == len(builds):
                ss = db.execute("INSERT INTO sourcestamps (ss_hash, branch, revision, "
                                "created_at) VALUES (?, '3.14', ?, ?)",
                                (sha1("ss"), "c0ffee" * 6 + "ab", started)).lastrowid
                db.execute("INSERT INTO buildset_sourcestamps (buildsetid, sourcestampid) "
                           "VALUES (?, ?)", (bs, ss))
                ch = db.execute("INSERT INTO changes (author, comments, branch, revision, "
                                "revlink, when_timestamp, sourcestampid) VALUES (?, ?, '3.14',"
                                " ?, ?, ?, ?)",
                                ("Ada <ada@example.org>", "gh-1: break <things>\n\nbody",
                                 "c0ffee" * 6 + "ab", "https://example.org/c0ffee", started,
                                 ss)).lastrowid
                db.execute("INSERT INTO change_files (changeid, filename) VALUES (?, ?)",
                           (ch, "Lib/x.py"))
    db.commit()
    db.close()


def fetch(port, path="/release_status"):
    """(status, headers, body) of a page, errors included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def page(port, path="/release_status"):
    """The page once the model is read (it says "warming up" until then)."""
    got = []

    def ready():
        got[:] = fetch(port, path)
        return got[0] != 503 or "warming up" not in got[2]
    wait_for(ready, what="the release status warmed up")
    assert got[0] == 200, got
    return got[2]


FULL_READS = r"www: release status: \d+ builders read in"


def parse(html):
    """[(version, verdict, featured, [(group, [builder names])...])...] in page order."""
    panels = re.findall(r'<div class="rel-panel sev-\w+" data-branch="([^"]+)"><h3><a [^>]*>'
                        r'([^<]+)</a></h3><div class="rel-verdict"><span[^>]*>[^<]*</span> '
                        r'([^<]+)</div><div class="rel-featured">([^<]+)</div>', html)
    out = []
    for tag, version, verdict, featured in panels:
        groups = []
        m = re.search(r'<section class="rel-branch[^"]*" id="branch-section-' + re.escape(tag) +
                      r'">(.*?)(?=<section class="rel-branch|<p class="mut">Generated)', html)
        if m:
            for chunk in m.group(1).split('<details class="rel-group"')[1:]:
                desc, n = re.search(r"<summary>(.*?) \((\d+)\)</summary>", chunk).groups()
                names = re.findall(r'<h4><a href="/builders/\d+">([^<]+)</a>', chunk)
                assert int(n) == len(names), chunk
                groups.append((desc, names))
        out.append((version, verdict, featured, groups))
    return out


def original_state(port, test_result_dir=None):
    """release_dashboard.py's DashboardState on the master's /api/v2."""
    stubs = {"flask": types.ModuleType("flask"), "humanize": types.ModuleType("humanize")}
    for name in ("Flask", "render_template", "request"):
        setattr(stubs["flask"], name, None)
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location(
            "release_dashboard", os.path.join(HERE, "release_dashboard", "release_dashboard.py"))
        rd = importlib.util.module_from_spec(spec)
        sys.modules["release_dashboard"] = rd  # dataclasses look their module up
        spec.loader.exec_module(rd)
    finally:
        for k, v in saved.items():
            if v is None:
                del sys.modules[k]
            else:
                sys.modules[k] = v

    def data_get(path, limit=None, order=None, filters=()):
        if isinstance(path, tuple):
            path = "/".join(str(p) for p in path)
        query = [f"limit={limit}"] if limit else []
        query += [f"order={o}" for o in order or ()]
        query += [f"{f.field}__{f.op}={v.lower()}" for f in filters for v in f.values]
        body = api_get(port, path.strip("/") + ("?" + "&".join(query) if query else ""))
        return next(v for k, v in body.items() if k != "meta")

    app = types.SimpleNamespace(branch_info=CYCLE, test_result_dir=test_result_dir,
                                flask_app=types.SimpleNamespace(
                                    buildbot_api=types.SimpleNamespace(dataGet=data_get)))
    return rd.DashboardState(app)


def original_dashboard(port):
    """The verdicts of release_dashboard.py itself on the master's /api/v2."""
    state = original_state(port)
    out = []
    for branch in state.branches:
        featured = branch.featured_problem
        groups = [(d, [p.builder["name"] for p in ps]) for d, ps in branch.get_grouped_problems()]
        out.append((branch["version"], featured.severity.releasability, str(featured), groups))
    return out


def start(master, workers, cycle="cycle.json"):
    port = free_port()
    write_config(master, port, cycle)
    master.start()
    master.stop()
    add_history(os.path.join(master.dir, "state.sqlite"), int(time.time()))
    master.start()
    return port


def test_verdicts_groups_and_the_original_rules(master, workers):
    port = start(master, workers)
    before = parse(page(port))
    # no worker yet: every builder with builds is also disconnected
    assert before[1][:3] == ("3.14", "Unreleasable", "Tier-1 build failed")
    assert ("Disconnected Tier-1 builder", ["a-t1-fail", "d-t1-warn", "i-ok"]) in before[1][3]
    assert before == original_dashboard(port)

    w = workers("up", "pw", master.pb_port).start()
    wait_for(lambda: api_get(port, "workers/up")["workers"][0]["connected_to"],
             what="worker up connected")
    # the page follows the worker's event
    wait_for(lambda: parse(page(port)) == EXPECTED, what="the page shows worker up")
    html = page(port)
    assert parse(html) == EXPECTED
    assert parse(html) == original_dashboard(port)
    # the home page's branch health: the same verdicts, linking to the dashboard's sections
    status, _, home = fetch(port, "/")
    assert status == 200
    assert [v[:3] for v in parse(home)] == [v[:3] for v in EXPECTED]
    assert 'href="/release_status#branch-section-3.14"' in home
    # the failing stable builder names its breaking build and the change in its latest
    section = html.split('id="branch-section-3.14"')[1]
    a = section.split("<h4>")[1]
    dots = re.search(r'<div class="dots">(.*?)</div>', a).group(1)
    assert re.findall(r'class="dot (\w+)" href="/builders/\d+/builds/(\d+)"', dots) == [
        ("failure", "4"), ("warnings", "3"), ("failure", "2"), ("success", "1")]
    assert re.search(r"Latest build: .*#4</a> \(failure, ", a)
    assert re.search(r"Breaking build: .*#2</a> \(failure, ", a)
    assert "gh-1: break &lt;things&gt;</a> by Ada<details open><summary>1 file changed" in a
    b = section.split("<h4>")[2]
    assert "Breaking build" not in b  # no SUCCESS before its streak: unknown
    ok = re.search(r'i-ok</a>.*?<div class="dots">(.*?)</div>', section).group(1)
    assert ok.count('class="dot ') == 3 and ok.endswith("\u22ef")

    # a real build fails on i-ok: its builder moves
    status, body = api_rpc(port, "forceschedulers/force", "force", builderNames=["i-ok"])
    assert status == 200, body
    wait_for(lambda: api_get(port, "builders/i-ok/builds?complete=true&number=6")["builds"],
             what="build 6 of i-ok")
    wait_for(lambda: parse(page(port))[1][3][0] == ("Tier-1 build failed", ["a-t1-fail", "i-ok"]),
             what="i-ok's failure on the page")
    assert parse(page(port)) == original_dashboard(port)
    w.kill()


def test_builds_and_workers_reach_the_page_by_their_events(master, workers):
    """After the warm-up, a build finishing on a real worker and the worker going away change
    the page, and the model is never read whole again (one log line per full read)."""
    port = start(master, workers)
    page(port)
    master.wait_log(FULL_READS)
    reads = master.count(FULL_READS)
    w = workers("up", "pw", master.pb_port).start()
    wait_for(lambda: parse(page(port)) == EXPECTED, what="the page shows worker up")
    status, body = api_rpc(port, "forceschedulers/force", "force", builderNames=["i-ok"])
    assert status == 200, body
    wait_for(lambda: api_get(port, "builders/i-ok/builds?complete=true&number=6")["builds"],
             what="build 6 of i-ok")
    wait_for(lambda: parse(page(port))[1][3][0] == ("Tier-1 build failed", ["a-t1-fail", "i-ok"]),
             what="i-ok's failure on the page")
    html = page(port)
    i_ok = html[html.index(">i-ok</a>"):]
    assert re.search(r"Latest build: .*?#6</a> \(failure, ", i_ok), i_ok[:2000]
    w.kill()
    wait_for(lambda: ("Disconnected Tier-1 builder (with recent build)", ["i-ok"])
             in parse(page(port))[1][3], what="i-ok disconnected on the page")
    assert parse(page(port)) == original_dashboard(port)
    assert master.count(FULL_READS) == reads, master.log()[-3000:]


def test_the_page_answers_while_warming_up(master, workers):
    """While the model is read the page answers at once: 503, Retry-After, reloading itself,
    saying how far the reading is; then the verdicts."""
    hold = os.path.join(master.dir, "hold")
    open(hold, "w").close()
    master.env["BBM_RELEASE_HOLD"] = hold  # the warm-up waits before each builder's builds
    port = start(master, workers)
    got = []

    def held():
        got[:] = fetch(port)
        return "(0 of 13 builders read)" in got[2]
    wait_for(held, what="the warming-up page")
    status, headers, body = got
    assert status == 503 and headers["Retry-After"] == "5", (status, dict(headers))
    assert '<meta http-equiv="refresh" content="5">' in body
    assert "rel-panel" not in body
    os.unlink(hold)
    assert parse(page(port)) == original_dashboard(port)


def test_old_addresses_and_menu(master, workers):
    port = start(master, workers)
    for path in ("/wsgi/release_status", "/all/wsgi/release_status",
                 "/plugins/wsgi_dashboards/release_status/index.html?refresh=true"):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(req, timeout=30)
            raise AssertionError(f"{path}: no redirect")
        except urllib.error.HTTPError as err:
            assert (err.code, err.headers["Location"]) == (302, "/release_status"), path
    assert '<a href="/release_status">Release status</a>' in page(port, "/")


def test_release_cycle_file_changes_and_bad_copies(master, workers):
    port = start(master, workers)
    path = os.path.join(master.dir, "cycle.json")
    with open(path, "w") as f:
        json.dump({"3.14": CYCLE["3.14"]}, f)
    # (a new query string each time: the answer cache keeps a page up to a second)
    assert [b[0] for b in parse(page(port, "/release_status?n=1"))] == ["3.14"]
    with open(path, "w") as f:
        f.write("{not json")
    html = page(port, "/release_status?n=2")
    assert "could not be read" in html and "the last good copy" in html
    assert [b[0] for b in parse(html)] == ["3.14"]


class CycleServer:
    """A release-cycle JSON served on a loopback port: each GET gets `answer` (status, body)."""

    def __init__(self, status, body):
        self.answer = (status, body)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = outer.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/release-cycle.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_release_cycle_from_a_url(master, workers):
    """www.release_cycle as a URL: fetched in the background into a file of the master's
    directory; a failed or bad answer keeps the last good copy, a new one is followed."""
    srv = CycleServer(500, b"down")
    master.env["BBM_RELEASE_CYCLE_REFRESH_MS"] = "200"  # a fetch every 0.2 s, not 15 min
    cache = os.path.join(master.dir, "release-cycle.json.cache")
    failed_500 = r"release cycle: fetching \S+ failed: HTTP status 500; "
    try:
        port = start(master, workers, cycle=srv.url)
        master.wait_log(failed_500)
        # before the first good answer: no branches, and no error that looks like a bad config
        html = page(port, "/release_status?n=1")
        assert "is being fetched from " + srv.url in html, html
        assert "could not be read" not in html and parse(html) == []
        assert not os.path.exists(cache)

        srv.answer = (200, json.dumps(CYCLE).encode())
        wait_for(lambda: os.path.exists(cache), what="the release cycle fetched")
        with open(cache, "rb") as f:
            good = f.read()
        assert json.loads(good) == CYCLE
        got = parse(page(port, "/release_status?n=2"))
        assert [b[0] for b in got] == ["3.15", "3.14", "3.13", "3.12"]
        assert got == original_dashboard(port)

        # a server error, then a body that is not JSON: logged, the last good copy stays
        srv.answer = (500, b"down")
        master.wait_log(failed_500, master.count(failed_500) + 2)
        srv.answer = (200, b"{not json")
        master.wait_log(r"release cycle: fetching \S+ failed: not JSON", 2)
        with open(cache, "rb") as f:
            assert f.read() == good
        html = page(port, "/release_status?n=3")
        assert "could not be read" not in html
        assert parse(html) == got

        # a changed cycle: the page follows
        srv.answer = (200, json.dumps({"3.14": CYCLE["3.14"]}).encode())
        wait_for(lambda: [b[0] for b in parse(page(port, f"/release_status?t={time.time()}"))]
                 == ["3.14"], what="the page shows the new cycle")
    finally:
        srv.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


JUNIT_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="regrtest">
<testcase name="test.test_os.FileTests.test_access"><error type="AssertionError" \
message="1 != 2">Traceback (most recent call last):
  File "Lib/test/test_os.py", line 12, in test_access
AssertionError: 1 != 2 &lt;os&gt;</error></testcase>
<testcase name="test.test_os.FileTests.test_ok"/>
<testcase name="test.test_os.StatTests.test_stat"><error type="OSError" message="boom">\
OSError: boom</error></testcase>
<testcase name="test.test_sys.SysTests.test_x"><error type="ValueError" message="v">\
ValueError: v</error></testcase>
<testcase name="test.test_os.FileTests.test_access"><error type="AssertionError" \
message="1 != 2">Traceback (most recent call last):
  File "Lib/test/test_os.py", line 12, in test_access
AssertionError: 1 != 2 &lt;os&gt;</error></testcase>
</testsuite></testsuites>
"""

JUNIT_CONFIG = '''local bbm = require "bbm"
return {
  title = "release",
  protocols = { pb = { port = %(pb)d } },
  workers = { bbm.worker("up", "pw") },
  builders = {
    bbm.builder{ name = "n-junit", workernames = { "up" }, tags = { "3.14", "tier-1", "stable" },
      factory = bbm.factory{
        bbm.steps.shell{ command = { "sh", "-c", "cp %(xml)s test-results.xml; exit 1" } },
        bbm.steps.file_upload{ workersrc = "test-results.xml", alwaysRun = true,
          masterdest = bbm.interpolate(
            "results/3.14/%%(prop:buildername)s/build_%%(prop:buildnumber)s.xml") } } },
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "n-junit" } } },
  www = { port = %(www)d, release_cycle = "cycle.json", release_test_results = "results" },
}
'''


def junit_of_page(html):
    """[(name, [types]), ...] and [(type, traceback), ...] of the JUnit trees, in order."""
    import html as h
    levels = [(n, re.findall(r"<code>([^<]*)</code>", t)) for n, t in re.findall(
        r'<details(?: open)? class="junit-result"><summary><code>([^<]*)</code> '
        r'<span class="exception-summary">\((.*?)\)</span>', html)]
    errors = [(t, h.unescape(tb)) for t, tb in re.findall(
        r'<details class="junit-error"><summary><code>([^<]*)</code></summary>'
        r'<pre class="junit-traceback">(.*?)</pre>', html, re.S)]
    return levels, errors


def junit_of_original(result):
    """The same lists from the original's JunitResult tree, walked as its template walks
    one (a level with one child and no errors folds into the child's name)."""
    levels, errors = [], []

    def walk(r, name):
        if len(r.contents) == 1 and not r.errors:
            (cname, child), = r.contents.items()
            return walk(child, name + ("." if name else "") + cname)
        levels.append((name, sorted(r.error_types)[:3]))
        errors.extend((e["type"], e["text"]) for e in r.errors)
        for cname, child in r.contents.items():
            walk(child, cname)
    for name, child in result.contents.items():
        walk(child, name)
    return levels, errors


def test_junit_failures_of_a_real_build(master, workers):
    """A real build uploads its JUnit file where buildbot.python.org's do; the page shows its
    failures as the original's tree (a re-run's repeated error once), read when the build's
    event came."""
    port = free_port()
    src = os.path.join(master.dir, "junit-src.xml")
    with open(src, "w") as f:
        f.write(JUNIT_XML)
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(JUNIT_CONFIG % {"pb": master.pb_port, "www": port, "xml": src})
    with open(os.path.join(master.dir, "cycle.json"), "w") as f:
        json.dump(CYCLE, f)
    master.start()
    page(port)
    w = workers("up", "pw", master.pb_port).start()
    wait_for(lambda: api_get(port, "workers/up")["workers"][0]["connected_to"],
             what="worker up connected")
    status, body = api_rpc(port, "forceschedulers/force", "force", builderNames=["n-junit"])
    assert status == 200, body
    wait_for(lambda: "junit-result" in page(port), what="the JUnit failures on the page")
    html = page(port)
    assert os.path.exists(os.path.join(master.dir, "results", "3.14", "n-junit", "build_1.xml"))
    levels, errors = junit_of_page(html)
    assert levels == [("test_os", ["AssertionError", "OSError"]),
                      ("FileTests.test_access", ["AssertionError"]),
                      ("StatTests.test_stat", ["OSError"]),
                      ("test_sys.SysTests.test_x", ["ValueError"])], levels
    assert [t for t, _ in errors] == ["AssertionError", "OSError", "ValueError"], errors
    assert errors[0][1].endswith("AssertionError: 1 != 2 <os>")

    # the original's own tree of the same file
    from pathlib import Path
    rd_state = original_state(port, Path(master.dir, "results"))
    builder = next(b for b in rd_state.builders if b["name"] == "n-junit")
    failure = builder.problems[0]
    assert (levels, errors) == junit_of_original(failure.latest_build.junit_results)
    w.kill()
