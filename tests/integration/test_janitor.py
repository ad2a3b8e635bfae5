"""The janitor (bbm.configurators.janitor, Buildbot's JanitorConfigurator): at its Nightly
time it deletes the log chunks of old steps as Buildbot 4.3's deleteOldLogChunks does --
every log of the newest step (by id) started before now - logHorizon, and of every older
step, is marked deleted (type 'd', num_lines kept) and its chunks go -- in bounded batches
while the engine goes on.  The master runs on the fixture database of a real Buildbot 4.3
(SQLite, or its rows in PostgreSQL) under libfaketime, with a clock that starts shortly
before the janitor's time and runs fast, as test_timed.py does."""

import json
import os
import re
import shutil
import sqlite3
import time
import urllib.error
import urllib.request

import psycopg2

import dbload
from conftest import SANITIZED, api_get, api_rpc, free_port, wait_for

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures",
                       "dataapi", "state-4.3-after-builds.sqlite")
RUN = 1796094000  # Tuesday 2026-12-01 03:00 UTC, the janitor's time below
DAY = 86400
DELETED = r"janitor: deleted (\d+) log chunks; (\d+) logs marked deleted; (\d+) batches"

CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "pw") },
  builders = { bbm.builder{ name = "alpha", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "talk", command = { "sh", "-c", %(cmd)s } } } } },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "alpha" } } },
  configurators = {
    bbm.configurators.janitor{ logHorizon = %(horizon)d, hour = 3, minute = 0, dayOfWeek = 1 },
  },
}
'''


class Site:
    """A master on the fixture's rows, its database reachable for checks and edits."""

    def __init__(self, master, backend, go_file="/nonexistent"):
        self.master = master
        self.backend = backend
        self.www = free_port()
        db_url = "sqlite:///state.sqlite" if backend == "sqlite" else backend
        cmd = ('"i=0; while [ ! -e %s ]; do i=$((i+1)); echo line $i; sleep 0.05; done; '
               'echo done"' % go_file)
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": master.pb_port, "www": self.www, "db": db_url, "cmd": cmd,
                              "horizon": DAY})
        if backend == "sqlite":
            path = os.path.join(master.dir, "state.sqlite")
            shutil.copy(FIXTURE, path)
            os.chmod(path, 0o644)
        else:
            master.cli("upgrade-master", master.dir, check=0)
            dbload.copy_rows(FIXTURE, backend)
        master.cli("upgrade-master", master.dir, check=0)

    def rows(self, sql, *args):
        if self.backend == "sqlite":
            db = sqlite3.connect(os.path.join(self.master.dir, "state.sqlite"))
            rows = db.execute(sql, args).fetchall()
        else:
            db = psycopg2.connect(self.backend)
            with db.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), args)
                rows = cur.fetchall()
        db.close()
        return [tuple(r) for r in rows]

    def execute(self, sql, *args):
        if self.backend == "sqlite":
            db = sqlite3.connect(os.path.join(self.master.dir, "state.sqlite"))
            with db:
                db.execute(sql, args)
        else:
            db = psycopg2.connect(self.backend)
            with db, db.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), args)
        db.close()

    def start(self, when, speed):
        m = self.master
        m.env["LD_PRELOAD"] = FAKETIME_LIB
        m.env["FAKETIME"] = f"@{when} x{speed}"
        m.env["TZ"] = "UTC"
        if SANITIZED:
            m.env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
        m.start()

    def get(self, path, headers=None):
        """(status, body bytes, content type) of GET /api/v2/PATH."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.www}/api/v2/{path}",
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), r.headers["Content-Type"]
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers["Content-Type"]

    def chunks(self):
        """{logid: number of chunks}."""
        return dict(self.rows("SELECT logid, COUNT(*) FROM logchunks GROUP BY logid"))

    def logs(self):
        """{logid: (stepid, type, num_lines, complete)}."""
        return {r[0]: r[1:] for r in
                self.rows("SELECT id, stepid, type, num_lines, complete FROM logs")}


def deleted_log_answers(site, logid, before):
    """What Buildbot 4.3 answers for a log whose chunks its janitor deleted: the log itself
    with type "d" and everything else as it was; /contents: the lines 0..num_lines-1 read
    from no chunks, an empty content; /raw: no lines and no header (only stdio logs have
    one), text/plain whatever the type was."""
    assert api_get(site.www, f"logs/{logid}") == {
        "logs": [dict(before["logs"][0], type="d")], "meta": {}}
    assert api_get(site.www, f"logs/{logid}/contents") == {
        "logchunks": [{"content": "", "firstline": 0, "logid": logid}], "meta": {}}
    assert api_get(site.www, f"logs/{logid}/contents?offset=3&limit=2") == {
        "logchunks": [{"content": "", "firstline": 3, "logid": logid}], "meta": {}}
    status, body, ctype = site.get(f"logs/{logid}/raw")
    assert (status, body, ctype) == (200, b"", "text/plain; charset=utf-8")


def test_old_log_chunks_deleted_at_its_time(master, backend):
    """At 03:00 on Tuesday (hour 3, minute 0, dayOfWeek 1) the logs of the newest step started
    more than a day before, and of every older step, are marked 'd' and lose their chunks,
    the API then answering for them as Buildbot does; the logs of the newer steps are left as
    they were.  A restart the same day does not run it again; one after the next Tuesday's
    time, missed while the master was down, runs it at once."""
    site = Site(master, backend)
    # build 19 (steps 78-82, logs 63-66) ran an hour before the janitor's time; step 8, an
    # older id, is made recent too: Buildbot goes by step id, so its log goes all the same
    site.execute("UPDATE steps SET started_at = ? WHERE buildid = 19", RUN - 3600)
    site.execute("UPDATE steps SET started_at = ? WHERE id = 8", RUN - 60)
    logs, chunks = site.logs(), site.chunks()
    old = {i for i, (stepid, *_) in logs.items() if stepid <= 77}
    assert len(old) == 62 and logs[8][0] == 8
    site.start("2026-12-01 02:59:40", 10)
    answers = {i: api_get(site.www, f"logs/{i}") for i in (5, 6, 8, 63)}
    # a ranged download counts the log's length once and keeps it (www/logindex.c)
    assert site.get("logs/5/raw", {"Range": "bytes=0-3"})[:2] == (206, b"line")
    recent_contents = api_get(site.www, "logs/63/contents")
    time.sleep(0.3)
    assert site.logs() == logs  # not at start: its first time is 03:00
    master.wait_log(DELETED)
    assert master.count(DELETED) == 1
    expected = sum(chunks.get(i, 0) for i in old)
    assert f"janitor: deleted {expected} log chunks; 62 logs marked deleted;" in master.log()
    assert "janitor: deleting the log chunks of steps started before 2026-11-30 03:00" \
        in master.log()
    after = site.logs()
    for i, (stepid, typ, num_lines, complete) in logs.items():
        want = "d" if i in old else typ
        assert after[i] == (stepid, want, num_lines, complete), i
    assert site.chunks() == {i: n for i, n in chunks.items() if i not in old}
    state = site.rows("SELECT s.value_json FROM object_state s JOIN objects o "
                      "ON o.id = s.objectid WHERE o.name = '__Janitor' "
                      "AND o.class_name = 'Nightly' AND s.name = 'last_build'")
    assert len(state) == 1 and json.loads(state[0][0]) == RUN

    for i in (5, 6, 8):  # summary.txt (t), report.html (h), a 20,013-line stdio (s)
        deleted_log_answers(site, i, answers[i])
    # the length counted before is not the deleted log's: the whole of it (nothing) comes
    assert site.get("logs/5/raw", {"Range": "bytes=0-3"})[:2] == (200, b"")
    assert api_get(site.www, "logs/63") == answers[63]
    assert api_get(site.www, "logs/63/contents") == recent_contents

    master.stop()
    site.start("2026-12-01 03:05:00", 10)
    master.wait_log(r"BuildMaster is running", 2)
    assert "missed its time" not in master.log()
    master.stop()
    site.execute("UPDATE steps SET started_at = ? WHERE buildid = 19", RUN - 2 * DAY)
    site.start("2026-12-08 03:05:00", 10)  # a Tuesday: 03:00 went by while it was down
    master.wait_log(r"janitor: missed its time while the master was down - running now")
    master.wait_log(DELETED, 2)
    assert "janitor: deleted 4 log chunks; 4 logs marked deleted;" in master.log()
    assert site.chunks() == {}


def test_a_run_in_batches_beside_a_running_build(master, backend, workers, tmp_path):
    """100,000 more chunks of old logs (half of them in one log): the janitor deletes them a
    bounded batch at a time (JANITOR_CHUNKS = 1,000 rows at most) while a real worker's build
    runs, started before the janitor's time and held until the run is over; the build then
    finishes with all its output, its log untouched."""
    go = tmp_path / "go"
    site = Site(master, backend, go_file=str(go))
    bulk = 100000
    if backend == "sqlite":
        site.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                     "WHERE i < ?) INSERT INTO logchunks (logid, first_line, last_line, "
                     "content, compressed) SELECT CASE WHEN i % 2 = 0 THEN 8 ELSE 1 + i % 40 "
                     "END, 100000 + i, 100000 + i, CAST('ofiller' AS BLOB), 0 FROM n", bulk)
    else:
        site.execute("INSERT INTO logchunks (logid, first_line, last_line, content, "
                     "compressed) SELECT CASE WHEN mod(i, 2) = 0 THEN 8 ELSE 1 + mod(i, 40) END, "
                     "100000 + i, 100000 + i, convert_to('ofiller', 'UTF8'), 0 "
                     "FROM generate_series(1, ?) AS i", bulk)
        # the planner's statistics, as a database in use has them (autovacuum would take
        # them within a minute of such an insert)
        site.execute("ANALYZE")
    total = sum(site.chunks().values())
    assert total == bulk + 113
    site.start("2026-12-01 02:59:00", 5)
    workers("w1", "pw", master.pb_port).start()
    wait_for(lambda: api_get(site.www, "workers/w1")["workers"][0]["connected_to"],
             what="worker w1 connected")
    status, answer = api_rpc(site.www, "forceschedulers/force", "force", builderNames=["alpha"])
    assert status == 200, answer
    wait_for(lambda: site.rows("SELECT COUNT(*) FROM steps WHERE name = 'talk' "
                               "AND started_at IS NOT NULL")[0][0] == 1,
             what="the build's step running")
    wait_for(lambda: master.count(DELETED) == 1, timeout=120, what="the janitor's run")
    build = site.rows("SELECT id, started_at, complete_at FROM builds WHERE id > 19")
    assert len(build) == 1 and build[0][1] <= RUN and build[0][2] is None
    go.touch()
    wait_for(lambda: site.rows("SELECT results FROM builds WHERE id = ?", build[0][0])
             == [(0,)], what="the build finished")
    line = [l for l in master.log().splitlines() if "janitor: deleted" in l][0]
    print(line)
    deleted, marked, batches = (int(x) for x in re.search(DELETED, line).groups())
    assert (deleted, marked) == (total, 66)
    assert batches >= bulk // 1000
    # the build's own log: not marked, every line there
    logid, typ, num_lines = site.rows(
        "SELECT l.id, l.type, l.num_lines FROM logs l JOIN steps s ON s.id = l.stepid "
        "WHERE s.name = 'talk' AND l.name = 'stdio'")[0]
    assert typ == "s" and num_lines > 10
    content = api_get(site.www, f"logs/{logid}/contents")["logchunks"][0]["content"]
    lines = [l for l in content.splitlines() if l.startswith("oline ")]
    assert lines == [f"oline {n}" for n in range(1, len(lines) + 1)]
    assert "odone" in content.splitlines()
    assert set(site.chunks()) == {l for (l,) in site.rows(
        "SELECT l.id FROM logs l JOIN steps s ON s.id = l.stepid WHERE s.buildid = ?",
        build[0][0])}
