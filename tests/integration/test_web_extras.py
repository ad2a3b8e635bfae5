"""
What the web port offers beyond Buildbot's API, through real HTTP on a master
serving a generated database (bench/api/gendb.py) with two more logs written
as Buildbot writes them (zlib and raw chunks, 'o' 'e' 'h' channels): the log
search at /logs/N/search, byte ranges of raw logs, and gzip answers.
"""
import gzip
import json
import os
import re
import sqlite3
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib

import pytest

from conftest import free_port

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench", "api"))
import gendb  # noqa: E402

CONFIG = """local bbm = require "bbm"
return {
  title = "extras",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "pw") },
  builders = { bbm.builder{ name = "b", workernames = { "w1" },
                            factory = bbm.factory{ bbm.steps.shell{ command = {"true"} } } } },
}
"""
BUILDS = 3000  # more than a page (2000): /api/v2/builds is streamed
LONG_LINE = 120  # a line of 'é' x 1000 and a needle: longer than a snippet


def crafted_lines():
    """Log 2's lines, channel character first: a header, output and errors, some UTF-8."""
    lines = ["hmake check"]
    for i in range(1, 5000):
        if i % 500 == 17:
            text = f"line {i:05d} ERROR disk full"
        elif i % 500 == 18:
            text = f"line {i:05d} Error: retry in 5"
        elif i == LONG_LINE:
            text = "NEEDLE " + "é" * 1000
        elif i == 121:
            text = "héllo wörld ☃ done"
        else:
            text = f"line {i:05d} all good"
        lines.append(("e" if i % 7 == 0 else "o") + text)
    return lines


def chunks(lines, per, codec_of):
    """(first_line, last_line, content, compressed) rows of `per` lines each."""
    for n, first in enumerate(range(0, len(lines), per)):
        text = "\n".join(lines[first:first + per]).encode()
        codec = codec_of(n)
        yield first, first + len(lines[first:first + per]) - 1, \
            zlib.compress(text) if codec == 1 else text, codec


def extras_master(master, env=None):
    """Starts `master` on the generated database plus log 2 (stdio, zlib and raw chunks of
    100 lines) and log 3 (a text log); returns the web port."""
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": port})
    master.cli("upgrade-master", master.dir, check=0)
    path = os.path.join(master.dir, "state.sqlite")
    gendb.generate_sqlite(path, gendb.Layout(BUILDS, 100, 1, 2 << 20), progress=lambda *a: None)
    db = sqlite3.connect(path)
    lines = crafted_lines()
    db.execute("INSERT INTO logs (id, name, slug, stepid, complete, num_lines, type) "
               "VALUES (2, 'crafted', 'crafted', 1, 1, ?, 's')", (len(lines),))
    db.executemany("INSERT INTO logchunks (logid, first_line, last_line, content, compressed) "
                   "VALUES (2, ?, ?, ?, ?)", chunks(lines, 100, lambda n: n % 3 != 2))
    db.execute("INSERT INTO logs (id, name, slug, stepid, complete, num_lines, type) "
               "VALUES (3, 'notes', 'notes', 1, 1, 3, 't')")
    db.execute("INSERT INTO logchunks (logid, first_line, last_line, content, compressed) "
               "VALUES (3, 0, 2, ?, 0)", (b"first note\nOops: a note\nlast note",))
    db.execute("INSERT INTO build_data (id, buildid, name, value, length, source) "
               "VALUES (1, 1, 'blob', ?, 3000, 'test')", (bytes(range(250)) * 12,))
    db.commit()
    db.close()
    master.env.update(env or {})
    master.start()
    return port


def http_get(port, path, headers=None):
    """Status, body (as sent: not decompressed) and headers of a GET."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def search(port, logid, **params):
    query = "&".join(f"{k}={urllib.parse.quote(str(v))}" for k, v in params.items())
    status, body, _ = http_get(port, f"/logs/{logid}/search?{query}")
    assert status == 200, body
    return json.loads(body)


def expected(lines, match):
    return [i for i, line in enumerate(lines) if match(line[1:])]


# "0": no time to scan on a request thread, each search goes on on a thread for slow reads
@pytest.mark.parametrize("quick", ["50", "0"])
def test_search_substring_case_and_regex(master, quick):
    port = extras_master(master, {"BBM_WWW_QUICK_MS": quick})
    lines = crafted_lines()
    found = search(port, 2, q="error")  # case=0 by default
    want = expected(lines, lambda t: "error" in t.lower())
    assert [m["line"] for m in found["matches"]] == want and len(want) == 20
    assert found["complete"] is True and found["next"] is None
    assert found["logid"] == 2 and found["num_lines"] == 5000
    m = found["matches"][0]
    assert m == {"line": 17, "stream": "o", "text": "line 00017 ERROR disk full"}
    errs = [m["line"] for m in found["matches"] if m["stream"] == "e"]
    assert errs == [i for i in want if i % 7 == 0] and errs
    found = search(port, 2, q="ERROR", case=1)
    assert [m["line"] for m in found["matches"]] == expected(lines, lambda t: "ERROR" in t)
    # the channel character is not part of the text: 'o' + "line" does not match "oline"
    assert search(port, 2, q="oline")["matches"] == []
    assert [m["line"] for m in search(port, 2, q="LINE 00007")["matches"]] == [7]
    # a pattern: each line is one subject, case folded unless case=1
    pat = r"^line \d+7 (error|ERROR)\b.*full$"
    found = search(port, 2, q=pat, re=1)
    assert [m["line"] for m in found["matches"]] == \
        expected(lines, lambda t: re.search(pat, t, re.I)) == list(range(17, 5000, 500))
    found = search(port, 2, q=r"error: retry in \d", re=1, case=1)
    assert found["matches"] == [] and found["complete"]
    assert [m["line"] for m in search(port, 2, q="WÖRLD ☃", re=1)["matches"]] == [121]
    # a text log has no channel: the whole line is its text
    found = search(port, 3, q="oops")
    assert found["matches"] == [{"line": 1, "stream": None, "text": "Oops: a note"}]
    # the long line's text is cut on a character boundary
    (m,) = search(port, 2, q="needle")["matches"]
    text = lines[LONG_LINE][1:]
    assert m["line"] == LONG_LINE and len(m["text"].encode()) == 299
    assert text.startswith(m["text"])
    # under /all too
    status, body, _ = http_get(port, "/all/logs/2/search?q=disk%20full")
    assert status == 200 and b'"line":17,' in body


# "0": no time to scan on a request thread, each search goes on on a thread for slow reads
@pytest.mark.parametrize("quick", ["50", "0"])
def test_search_paging_and_limit(master, quick):
    port = extras_master(master, {"BBM_WWW_QUICK_MS": quick})
    lines = crafted_lines()
    want = expected(lines, lambda t: "error" in t.lower())
    found = search(port, 2, q="error", limit=3)
    assert [m["line"] for m in found["matches"]] == want[:3]
    assert found["complete"] is False and found["next"] == want[2] + 1
    got, start, asked = [], 0, 0
    while start is not None:
        found = search(port, 2, q="error", limit=3, **{"from": start})
        got += [m["line"] for m in found["matches"]]
        start = found["next"]
        asked += 1
    assert got == want and asked == 7
    # from= in the middle of a chunk
    found = search(port, 2, q="error", **{"from": 1018})
    assert [m["line"] for m in found["matches"]] == [i for i in want if i >= 1018]
    found = search(port, 2, q="error", **{"from": 9999})
    assert found["matches"] == [] and found["complete"] and found["next"] is None
    # 100 by default, 1000 at most
    assert len(search(port, 2, q="line")["matches"]) == 100
    found = search(port, 2, q="line", limit=5000)
    want = expected(lines, lambda t: "line" in t)
    assert [m["line"] for m in found["matches"]] == want[:1000]
    assert found["next"] == want[999] + 1 and not found["complete"]
    master.stop()
    moved = re.search(r"www: (\d+) reads ran past 0 ms on a request thread", master.log())
    assert (moved is not None) == (quick == "0")


def test_search_refusals(master):
    port = extras_master(master)
    for query, message in [
            ("q=(unclosed&re=1", b"missing closing parenthesis at offset 9"),
            ("q=", b"q: the text to look for is missing"),
            ("re=1", b"q: the text to look for is missing"),
            ("q=x&limit=0", b"limit: a whole number of at least 1"),
            ("q=x&limit=ten", b"limit: a whole number"),
            ("q=x&from=-1", b"from: a whole number of at least 0"),
            ("q=x&re=yes", b"re: 0 or 1"),
            ("q=x&case=2", b"case: 0 or 1")]:
        status, body, _ = http_get(port, f"/logs/2/search?{query}")
        assert status == 400 and message in body, (query, body)
    assert http_get(port, "/logs/99/search?q=x")[0] == 404
    assert http_get(port, "/logs/x/search?q=x")[0] == 404


def test_search_time_budget_answers_in_parts(master):
    """With no time to scan (BBM_WWW_SEARCH_MS=0) each answer covers one chunk: the parts,
    followed through next, find what one search finds."""
    port = extras_master(master, {"BBM_WWW_SEARCH_MS": "0"})
    lines = crafted_lines()
    want = expected(lines, lambda t: "disk" in t)
    got, start, asked = [], 0, 0
    while start is not None:
        found = search(port, 2, q="disk", **{"from": start})
        assert found["complete"] == (found["next"] is None)
        got += [m["line"] for m in found["matches"]]
        start = found["next"]
        asked += 1
    assert got == want and asked == 50  # 50 chunks of 100 lines


def ranged(port, path, spec, extra=None):
    return http_get(port, path, {"Range": spec, **(extra or {})})


def test_raw_byte_ranges(master):
    port = extras_master(master)
    for path in ("/api/v2/logs/2/raw", "/api/v2/logs/2/raw_inline", "/api/v2/logs/1/raw",
                 "/api/v2/steps/1/logs/crafted/raw_inline", "/api/v2/builds/1/data/blob/value"):
        status, full, headers = http_get(port, path)
        assert status == 200 and headers["Accept-Ranges"] == "bytes"
        n = len(full)
        prefix = full.index(b"\n", full.index(b"Worker name")) + 1 if b"Worker" in full else 50
        for spec, first, last in [
                ("bytes=0-0", 0, 0), ("bytes=10-20", 10, 20),
                (f"bytes=5-{prefix + 10}", 5, prefix + 10),  # across the prologue's end
                (f"bytes={prefix}-{prefix + 99}", prefix, prefix + 99),
                ("bytes=30000-90000", 30000, min(90000, n - 1)),  # across checkpoints
                (f"bytes={n // 2}-", n // 2, n - 1), ("bytes=-1", n - 1, n - 1),
                ("bytes=-1000", n - 1000, n - 1), (f"bytes=100-{n + 500}", 100, n - 1),
                (f"bytes=-{n + 1}", 0, n - 1), ("bytes=100-1500000", 100, min(1500000, n - 1))]:
            if first >= n:  # the build data's value is 3,000 bytes
                continue
            status, part, headers = ranged(port, path, spec, {"Accept-Encoding": "gzip"})
            assert status == 206, (path, spec, status)
            assert part == full[first:last + 1], (path, spec)
            assert headers["Content-Range"] == f"bytes {first}-{last}/{n}", (path, spec)
            assert headers["Content-Length"] == str(last - first + 1)
            assert headers.get("Content-Encoding") is None  # ranges are not compressed
        status, body, headers = ranged(port, path, f"bytes={n}-")
        assert status == 416 and headers["Content-Range"] == f"bytes */{n}"
        assert ranged(port, path, "bytes=-0")[0] == 416
        # several ranges, one not understood, or an If-Range: the whole log
        for spec, extra in [("bytes=0-1,5-6", None), ("bytes=5-1", None),
                            ("bytes=0-5", {"If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"})]:
            status, body, _ = ranged(port, path, spec, extra)
            assert status == 200 and body == full, (path, spec)


def test_raw_range_of_a_growing_log(master):
    port = extras_master(master)
    path = "/api/v2/logs/2/raw"
    _, before, _ = http_get(port, path)
    assert ranged(port, path, "bytes=-10")[1] == before[-10:]
    db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"), timeout=30)
    db.execute("INSERT INTO logchunks (logid, first_line, last_line, content, compressed) "
               "VALUES (2, 5000, 5001, ?, 0)", (b"ogrown one\negrown two",))
    db.execute("UPDATE logs SET num_lines = 5002 WHERE id = 2")
    db.commit()
    db.close()
    _, after, _ = http_get(port, path)
    assert after == before + b"grown one\ngrown two\n"
    status, tail, headers = ranged(port, path, "bytes=-19")
    assert status == 206 and tail == b"grown one\ngrown two\n"[-19:]
    assert headers["Content-Range"] == f"bytes {len(after) - 19}-{len(after) - 1}/{len(after)}"
    assert ranged(port, path, f"bytes={len(before)}-")[1] == b"grown one\ngrown two\n"


def test_gzip_answers_decode_to_the_plain_ones(master):
    port = extras_master(master)
    gz = {"Accept-Encoding": "gzip, deflate"}
    streamed_paths = set()
    for path in ["/api/v2/builds", "/api/v2/builders", "/api/v2/builds?limit=20&order=-buildid",
                 "/api/v2/logs/2/contents", "/api/v2/logs/1/raw", "/api/v2/logs/2/raw_inline"]:
        for accept in (None, "application/json"):
            plain_h = {"Accept": accept} if accept else {}
            status, plain, headers = http_get(port, path, plain_h)
            assert status == 200 and headers.get("Content-Encoding") is None
            assert len(plain) > 1024 and headers["Vary"] == "Accept-Encoding"
            streamed = headers.get("Transfer-Encoding") == "chunked"
            assert streamed == (len(plain) > 1 << 20), path
            if streamed:
                streamed_paths.add((path, accept))
            status, packed, headers = http_get(port, path, {**gz, **plain_h})
            assert status == 200 and headers["Content-Encoding"] == "gzip", path
            assert headers["Vary"] == "Accept-Encoding"
            assert (headers.get("Transfer-Encoding") == "chunked") == streamed, path
            assert len(packed) < len(plain) and gzip.decompress(packed) == plain, path
            # the answer kept for the one is not handed to the other
            assert http_get(port, path, plain_h)[1] == plain
            assert http_get(port, path, {"Accept-Encoding": "gzip;q=0, br", **plain_h})[1] == plain
    assert streamed_paths >= {("/api/v2/builds", None), ("/api/v2/logs/1/raw", None)}
    # the web UI's pages too, kept apart in the answer cache as well
    for path in ["/builders/1"]:  # a builder without a running build: no clock on the page
        status, page, headers = http_get(port, path)
        assert status == 200 and headers.get("Content-Encoding") is None
        status, packed, headers = http_get(port, path, gz)
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert headers.get_all("Vary") == ["Accept-Encoding"]
        assert gzip.decompress(packed) == page, path
        assert http_get(port, path)[1] == page
    # a short answer goes as it is
    status, body, headers = http_get(port, "/api/v2/builds/1", gz)
    assert status == 200 and len(body) < 1024 and headers.get("Content-Encoding") is None
    assert body == http_get(port, "/api/v2/builds/1")[1]
    # the search's answer too
    status, packed, headers = http_get(port, "/logs/2/search?q=line&limit=50", gz)
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed) == http_get(port, "/logs/2/search?q=line&limit=50")[1]


def test_many_clients_at_once(master):
    """Ranges of two logs counted by several request threads at once, gzip streams and
    searches beside them: every answer is the right one (`make tsan` runs this too)."""
    port = extras_master(master)
    fulls = {p: http_get(port, p)[1] for p in ("/api/v2/logs/1/raw", "/api/v2/logs/2/raw")}
    errors = []

    def client(k):
        try:
            for i in range(6):
                path = sorted(fulls)[(k + i) % 2]
                full = fulls[path]
                first = (k * 7919 + i * 104729) % (len(full) - 1000)
                status, part, _ = ranged(port, path, f"bytes={first}-{first + 999}")
                assert status == 206 and part == full[first:first + 1000], (path, first)
                if i % 3 == 0:
                    _, packed, _ = http_get(port, path, {"Accept-Encoding": "gzip"})
                    assert gzip.decompress(packed) == full, path
                found = search(port, 2, q="disk full", **{"from": k * 100})
                assert [m["line"] for m in found["matches"]] == \
                    [n for n in range(17, 5000, 500) if n >= k * 100]
        except Exception as e:  # an assertion, or an HTTP error
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
