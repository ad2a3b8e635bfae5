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
    bbm.configurators.janitor{ %(janitor)s, hour = 3, minute = 0, dayOfWeek = 1 },
  },
}
'''


class Site:
    """A master on the fixture's rows, its database reachable for checks and edits."""

    def __init__(self, master, backend, go_file="/nonexistent", janitor=f"logHorizon = {DAY}"):
        self.master = master
        self.backend = backend
        self.www = free_port()
        db_url = "sqlite:///state.sqlite" if backend == "sqlite" else backend
        cmd = ('"i=0; while [ ! -e %s ]; do i=$((i+1)); echo line $i; sleep 0.05; done; '
               'echo done"' % go_file)
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": master.pb_port, "www": self.www, "db": db_url, "cmd": cmd,
                              "janitor": janitor})
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


HORIZONS = r"(\d+) old builds deleted \((\d+) rows\), (\d+) old changes deleted \((\d+) rows\)"

# every row of a build, by the build's id: (table, query of the rows)
BUILD_ROWS = [
    ("builds", "SELECT * FROM builds WHERE id = ?"),
    ("steps", "SELECT * FROM steps WHERE buildid = ? ORDER BY id"),
    ("logs", "SELECT l.* FROM logs l JOIN steps s ON s.id = l.stepid WHERE s.buildid = ? "
             "ORDER BY l.id"),
    ("logchunks", "SELECT c.logid, c.first_line, c.last_line FROM logchunks c JOIN logs l "
                  "ON l.id = c.logid JOIN steps s ON s.id = l.stepid WHERE s.buildid = ? "
                  "ORDER BY c.logid, c.first_line"),
    ("build_properties", "SELECT * FROM build_properties WHERE buildid = ? ORDER BY name"),
    ("build_data", "SELECT id, name, length FROM build_data WHERE buildid = ? ORDER BY id"),
    ("test_result_sets", "SELECT * FROM test_result_sets WHERE buildid = ? ORDER BY id"),
    ("test_results", "SELECT r.* FROM test_results r JOIN test_result_sets t "
                     "ON t.id = r.test_result_setid WHERE t.buildid = ? ORDER BY r.id"),
]
CHANGE_ROWS = [
    ("changes", "SELECT * FROM changes WHERE changeid = ?"),
    ("change_files", "SELECT * FROM change_files WHERE changeid = ? ORDER BY filename"),
    ("change_properties", "SELECT * FROM change_properties WHERE changeid = ? "
                          "ORDER BY property_name"),
    ("change_users", "SELECT * FROM change_users WHERE changeid = ?"),
    ("scheduler_changes", "SELECT * FROM scheduler_changes WHERE changeid = ? "
                          "ORDER BY schedulerid"),
]


def add_change(site, changeid, when, parent):
    site.execute("INSERT INTO changes (changeid, author, comments, branch, revision, "
                 "when_timestamp, repository, codebase, project, sourcestampid, "
                 "parent_changeids) VALUES (?, 'me', 'c', 'main', ?, ?, '', '', '', 2, ?)",
                 changeid, f"r{changeid}", when, parent)
    for f in ("a.c", "b.c"):
        site.execute("INSERT INTO change_files (changeid, filename) VALUES (?, ?)", changeid, f)
    site.execute("INSERT INTO change_properties (changeid, property_name, property_value) "
                 "VALUES (?, 'p', '[1, \"Change\"]')", changeid)
    site.execute("INSERT INTO change_users (changeid, uid) VALUES (?, 1)", changeid)
    for sched in (1, 2):
        site.execute("INSERT INTO scheduler_changes (schedulerid, changeid, important) "
                     "VALUES (?, ?, 1)", sched, changeid)


def test_old_builds_and_changes_deleted(master, backend):
    """bbmaster's own buildHorizon and changeHorizon (no logHorizon): at the janitor's time
    the complete builds that completed more than a day before go with their steps, logs,
    chunks, properties, data and test results, the buildsets naming them as parent or
    rebuilt build keep a NULL there; the changes made more than a day before go with their
    files, properties, users and scheduler rows, the changes whose parent they were keep a
    NULL parent.  An old build that is not complete, the recent builds and the recent
    changes stay whole; no foreign key is left broken and the API answers."""
    site = Site(master, backend, janitor=f"buildHorizon = {DAY}, changeHorizon = {DAY}")
    # builds 1-14 completed a week before; 15-18 an hour before; 19 started a week before
    # and is not complete
    site.execute("UPDATE builds SET complete_at = ? WHERE id >= 15", RUN - 3600)
    site.execute("UPDATE builds SET complete_at = NULL, results = NULL WHERE id = 19")
    site.execute("INSERT INTO users (uid, identifier) VALUES (1, 'me')")
    # change 1 (the fixture's) is old; 2 and 4 are recent, 3 old; parents 1 <- 2 <- 3 <- 4
    add_change(site, 2, RUN - 3600, 1)
    add_change(site, 3, RUN - 2 * DAY, 2)
    add_change(site, 4, RUN - 60, 3)
    kept = {b: [site.rows(q, b) for _, q in BUILD_ROWS] for b in range(15, 20)}
    kept_changes = {c: [site.rows(q, c) for _, q in CHANGE_ROWS] for c in (2, 4)}
    assert all(kept[b][3] for b in kept) and kept[15][6] and kept[15][7]
    old = {b: [site.rows(q, b) for _, q in BUILD_ROWS] for b in range(1, 15)}
    assert old[1][3] and old[1][5] and old[1][6] and old[1][7] and old[2][7]
    old_rows = sum(len(rows) for b in old for rows in old[b])
    site.start("2026-12-01 02:59:40", 10)
    assert len(api_get(site.www, "builds")["builds"]) == 19
    master.wait_log(DELETED)
    assert "janitor: deleting the builds completed before 2026-11-30 03:00:00 (buildHorizon " \
        "86400 s)" in master.log()
    assert "janitor: deleting the changes made before 2026-11-30 03:00:00 (changeHorizon " \
        "86400 s)" in master.log()
    assert "deleting the log chunks" not in master.log()
    builds, build_rows, changes, change_rows = (
        int(x) for x in re.search(HORIZONS, master.log()).groups())
    # the rows counted: those deleted, and the buildsets' references set to NULL (4, 7, 12
    # and 13 as parents, 3 as rebuilt build); the change 2's and 4's parents
    assert (builds, changes) == (14, 2)
    assert build_rows == old_rows + 5
    # change 1: itself, 2 files, 1 property; change 3: itself, 2 files, 1 property, 1 user,
    # 2 scheduler rows; the parents of changes 2 and 4
    assert change_rows == 4 + 7 + 2
    for b in range(1, 15):
        assert [site.rows(q, b) for _, q in BUILD_ROWS] == [[]] * len(BUILD_ROWS), b
    for b in kept:
        assert [site.rows(q, b) for _, q in BUILD_ROWS] == kept[b], b
    for c in (1, 3):
        assert [site.rows(q, c) for _, q in CHANGE_ROWS] == [[]] * len(CHANGE_ROWS), c
    for c in (2, 4):
        now = [site.rows(q, c) for _, q in CHANGE_ROWS]
        assert now[1:] == kept_changes[c][1:], c
    assert site.rows("SELECT changeid, parent_changeids FROM changes ORDER BY changeid") \
        == [(2, None), (4, None)]
    assert site.rows("SELECT id, parent_buildid, rebuilt_buildid FROM buildsets WHERE "
                     "parent_buildid IS NOT NULL OR rebuilt_buildid IS NOT NULL") \
        == [(16, 16, None)]
    assert site.rows("SELECT COUNT(*) FROM logs")[0][0] == sum(len(kept[b][2]) for b in kept)
    assert site.rows("SELECT COUNT(*) FROM steps")[0][0] == sum(len(kept[b][1]) for b in kept)
    if backend == "sqlite":
        assert site.rows("PRAGMA foreign_key_check") == []
    # on PostgreSQL the keys are enforced: a child left behind would have failed a DELETE
    assert "the run stops" not in master.log()
    assert sorted(b["buildid"] for b in api_get(site.www, "builds")["builds"]) \
        == list(range(15, 20))
    assert [c["changeid"] for c in api_get(site.www, "changes")["changes"]] in ([2, 4], [4, 2])
    assert api_get(site.www, "builds/19")["builds"][0]["complete"] is False
