"""Faults of the master's own dependencies, with a real worker running a build: the
PostgreSQL server stopped mid-build and started again, a SQLite write lock held by another
process for longer than any busy timeout, and (as root) the disk under the master filled
and freed.  Each time the build goes on, ends with its real result and every log line,
its rows are all finished, and the API answers again without a restart."""

import concurrent.futures
import os
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import psycopg2
import pytest

from conftest import (REPO, SANITIZED, Master, api_get, db_rows, free_port, pid_alive, read,
                      wait_for)
from test_builds import ATTACHED, Site

LINES = 300
# Outages as long as real ones (PostgreSQL away 30 s, a SQLite lock held 20 s and
# 45 s); sanitized builds, which only look for memory and thread errors, take short ones.
PG_OUTAGE = 4 if SANITIZED else 30
LOCK_HOLDS = [12] if SANITIZED else [20, 45]


def master_lua(steps):
    """master.lua for Site: one worker, the builder "lines" with these steps (Lua text), a
    force scheduler."""
    return (r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "lines", workernames = { "w1" }, factory = bbm.factory{
''' + steps + r'''
    } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "lines" } },
  },
}
''')


CONFIG = master_lua(r'''      bbm.steps.shell{ name = "count", command = { "sh", "-c",
        "i=1; while [ $i -le %(lines)d ]; do echo line $i %(pad)s; i=$((i+1)); sleep %(delay)s; " ..
        "if [ $i -eq %(half)d ]; then while [ ! -e %(go)s ]; do sleep 0.05; done; fi; done" } },
      bbm.steps.shell{ name = "after", command = { "echo", "after the fault" } },
      bbm.steps.shell{ name = "last", command = { "echo", "the end" } },''')


def start_site(master, workers, tmp_path, backend, delay, pad=""):
    """A master whose build prints half its lines, waits for the file site.go (the test
    puts the fault in place first), then prints the rest."""
    go = tmp_path / "go"
    site = Site(master, backend, tmp_path, config=CONFIG, lines=LINES, delay=delay, pad=pad,
                half=LINES // 2, go=go)
    site.go = go
    site.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    return site


def lines_stored(site, buildid):
    rows = site.query("SELECT SUM(l.num_lines) FROM logs l JOIN steps s ON s.id = l.stepid "
                      "WHERE s.buildid = ? AND s.number = 1", buildid)
    return rows[0][0] or 0


def check_whole(site, brid):
    """The build ended SUCCESS with every row finished and every line of its log."""
    build = site.wait_request(brid)
    assert build["results"] == 0, build
    bid = build["buildid"]
    steps = site.query("SELECT number, name, results, complete_at IS NOT NULL FROM steps "
                       "WHERE buildid = ? ORDER BY number", bid)
    assert [(n, name, r, bool(c)) for n, name, r, c in steps] == [
        (0, "worker_preparation", 0, True), (1, "count", 0, True), (2, "after", 0, True),
        (3, "last", 0, True)]
    assert site.query("SELECT COUNT(*) FROM logs l JOIN steps s ON s.id = l.stepid "
                      "WHERE s.buildid = ? AND l.complete = 0", bid) == [(0,)]
    chunks = site.get(f"builds/{bid}/steps/1/logs/stdio/contents")["logchunks"]
    text = "".join(c["content"] for c in chunks)
    out = [" ".join(line[1:].split(" ")[:2]) for line in text.splitlines()
           if line.startswith("o")]
    assert out == [f"line {i}" for i in range(1, LINES + 1)]
    bsid = site.get(f"buildrequests/{brid}")["buildrequests"][0]["buildsetid"]
    assert site.get(f"buildsets/{bsid}")["buildsets"][0]["complete"]
    return bid


def api_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/{path}", timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def own_postgres():
    """A cluster of this test's own, which it may stop and start: (URL of a database, dir)."""
    out = subprocess.run([os.path.join(REPO, "scripts", "with-pg.sh"), "--start"],
                         capture_output=True, text=True, check=True).stdout.split()
    url, pgdir = out
    subprocess.run(["psql", "-q", url, "-c", "CREATE DATABASE faults"], check=True,
                   capture_output=True)
    yield url.rsplit("/", 1)[0] + "/faults", pgdir
    subprocess.run([os.path.join(REPO, "scripts", "with-pg.sh"), "--stop", pgdir])


def pg(cmd, pgdir):
    subprocess.run([os.path.join(REPO, "scripts", "with-pg.sh"), cmd, pgdir], check=True)


def test_postgresql_restart_mid_build(own_postgres, master, workers, tmp_path):
    url, pgdir = own_postgres
    site = start_site(master, workers, tmp_path, url, delay=0.02)
    _, brid = site.force("lines")
    build = site.wait_running(brid, "count")
    wait_for(lambda: lines_stored(site, build["buildid"]) > 0, what="the first lines stored")
    pg("--pause", pgdir)
    site.go.touch()
    try:
        status, text = api_status(site.port, "masters")
        assert status == 503 and "the database is unavailable" in text, (status, text)
        master.wait_log(r"database: unavailable: postgresql")
        # the step goes on printing while the server is away and clients poll the API (an
        # outage under API polling once corrupted the heap through the log)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: api_status(site.port, f"builds?limit={i}")[0],
                                    range(1, 161)))
        assert set(answers) == {503}, answers
        time.sleep(PG_OUTAGE - 3)
    finally:
        pg("--resume", pgdir)
    check_whole(site, brid)
    master.wait_log(r"database: available again after")
    assert api_get(site.port, "masters")["masters"][0]["active"]
    # the master goes on as before: a new build runs
    _, brid2 = site.force("lines")
    assert site.wait_request(brid2)["results"] == 0
    assert pid_alive(master.pid())


@pytest.mark.parametrize("hold", LOCK_HOLDS)
def test_sqlite_locked_by_another_process(master, workers, tmp_path, hold):
    site = start_site(master, workers, tmp_path, "sqlite", delay=0.01)
    _, brid = site.force("lines")
    build = site.wait_running(brid, "count")
    wait_for(lambda: lines_stored(site, build["buildid"]) > 0, what="the first lines stored")
    locker = sqlite3.connect(os.path.join(master.dir, "state.sqlite"), timeout=30,
                             isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    site.go.touch()
    try:
        master.wait_log(r"database: unavailable: sqlite: .*locked")
        time.sleep(hold)  # past the 10 s that the busy timeout once waited
        # the web still reads through the lock
        assert api_get(site.port, "masters")["masters"][0]["active"]
    finally:
        locker.execute("COMMIT")
        locker.close()
    check_whole(site, brid)
    master.wait_log(r"database: available again after")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_mid_build(workers, tmp_path, request):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(disk)], check=True)
    m = Master(disk / "master")
    os.makedirs(m.dir)
    try:
        # 4 kB lines: the database's WAL must grow while the disk is full
        site = start_site(m, workers, tmp_path, "sqlite", delay=0.02,
                          pad="$(head -c 3000 /dev/urandom | base64 -w0)")
        _, brid = site.force("lines")
        build = site.wait_running(brid, "count")
        wait_for(lambda: lines_stored(site, build["buildid"]) > 0, what="the first lines")
        fill = disk / "fill"
        subprocess.run(["dd", "if=/dev/zero", f"of={fill}", "bs=1M"], capture_output=True)
        site.go.touch()
        # the build goes on with nowhere to write until the master says so
        wait_for(lambda: "database: unavailable: sqlite" in m.log() and "full" in m.log(),
                 what="the master's log to report the full disk")
        os.remove(fill)
        check_whole(site, brid)
        m.wait_log(r"database: available again after")
    finally:
        pid = m.pid()
        m.stop()
        if pid and pid_alive(pid):
            os.kill(pid, 9)
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print("---- master log ----\n" + m.log()[-6000:])
        reports = m.sanitizer_reports()
        if os.environ.get("BBM_KEEP_LOG"):
            with open(os.environ["BBM_KEEP_LOG"], "w") as f:
                f.write(m.log())
        subprocess.run(["umount", "-l", str(disk)])
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)


BOUND_CONFIG = master_lua(r'''      bbm.steps.shell{ name = "flood", command = { "sh", "-c",
        "while [ ! -e %(go)s ]; do sleep 0.05; done; head -c 3000000 /dev/urandom | base64; sleep 30" } },
      bbm.steps.shell{ name = "after", command = { "echo", "after the flood" } },''')


def test_past_the_bound_the_build_fails_explicitly(master, workers, tmp_path):
    """Past the bound of writes that may wait, the step is stopped and the build ends
    EXCEPTION saying why; it is not left to end SUCCESS with its log cut short."""
    go = tmp_path / "go"
    master.env["BBM_DB_WAIT_MAX"] = str(256 * 1024)
    site = Site(master, "sqlite", tmp_path, config=BOUND_CONFIG, go=go)
    site.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    _, brid = site.force("lines")
    site.wait_running(brid, "flood")
    locker = sqlite3.connect(os.path.join(master.dir, "state.sqlite"), timeout=30,
                             isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        go.touch()
        master.wait_log(r"lines of log 'stdio' could not be stored: the database is "
                        r"unavailable .* this write is refused")
    finally:
        locker.execute("COMMIT")
        locker.close()
    build = site.wait_request(brid)
    assert build["results"] == 4, build  # EXCEPTION, not SUCCESS, and not hanging
    steps = site.query("SELECT name, results, state_string FROM steps WHERE buildid = ? "
                       "ORDER BY number", build["buildid"])
    assert steps[1][:2] == ("flood", 4), steps
    assert "could not be stored" in steps[1][2]  # no log row could be added: the state says
    assert len(steps) == 2  # the build stopped there


def test_rows_left_unfinished_are_repaired(master, workers, tmp_path):
    """A step and its log left running under a finished build (a write the database
    refused for good) are finished by the repair when the master starts."""
    site = start_site(master, workers, tmp_path, "sqlite", delay=0)
    site.go.touch()
    _, brid = site.force("lines")
    bid = site.wait_request(brid)["buildid"]
    master.stop()
    db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
    db.execute("UPDATE steps SET complete_at = NULL, results = NULL WHERE buildid = ? AND "
               "number = 2", (bid,))
    db.execute("UPDATE logs SET complete = 0 WHERE stepid IN (SELECT id FROM steps WHERE "
               "buildid = ? AND number = 2)", (bid,))
    db.commit()
    db.close()
    master.cli("start", master.dir, check=0)
    wait_for(lambda: site.query("SELECT results, complete_at IS NOT NULL FROM steps WHERE "
                                "buildid = ? AND number = 2", bid) == [(5, 1)],
             what="the step finished by the repair")
    assert site.query("SELECT COUNT(*) FROM logs l JOIN steps s ON s.id = l.stepid WHERE "
                      "s.buildid = ? AND l.complete = 0", bid) == [(0,)]


# buildbot-worker sends what a command printed every 5 s: this step's lines come in three
# pieces, each written by the flush timer.
SLOW_CONFIG = master_lua(r'''      bbm.steps.shell{ name = "slow", command = { "sh", "-c",
        "i=1; while [ $i -le 40 ]; do echo line $i; i=$((i+1)); sleep 0.3; done" } },
      bbm.steps.shell{ name = "after", command = { "echo", "after the slow step" } },''')


def refuse_once(table, condition):
    """SQL that makes the server refuse at COMMIT, once, the transaction that writes a row
    of `table` for which `condition` holds (a deferred constraint trigger; a sequence is
    not rolled back with the transaction it refuses)."""
    return f"""
CREATE SEQUENCE refusals;
CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF {condition} AND nextval('refusals') = 1 THEN
    RAISE EXCEPTION 'this row is refused';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER refuse_once AFTER INSERT OR UPDATE ON {table}
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_once();
"""


def refused_build(master, workers, tmp_path, postgres, refusal, lines):
    """A build of the step "slow" printing `lines` lines, on a PostgreSQL database where the
    SQL `refusal` is in place: the build stops after that step, which ends EXCEPTION with
    its rows finished.  The finished build and the text of the step's err.text log."""
    url = postgres.new_db()
    site = Site(master, url, tmp_path, config=SLOW_CONFIG.replace("-le 40", f"-le {lines}"))
    db = psycopg2.connect(url)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute(refusal)
    db.close()
    site.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    _, brid = site.force("lines")
    build = site.wait_request(brid)
    master.wait_log(r"database: (flushing logs|finishing a step): .*this row is refused")
    steps = site.query("SELECT id, name, results, complete_at IS NOT NULL FROM steps "
                       "WHERE buildid = ? ORDER BY number", build["buildid"])
    assert [s[1:] for s in steps] == [("worker_preparation", 0, True), ("slow", 4, True)], steps
    logs = {log["name"]: log for log in site.get(f"steps/{steps[1][0]}/logs")["logs"]}
    assert all(log["complete"] for log in logs.values()), logs
    return build, site.raw(logs["err.text"]["logid"]).decode()


def test_chunks_a_refused_commit_loses_end_the_step(master, workers, tmp_path, postgres):
    """A log's tail written by the flush timer shares its transaction with every other
    log's; when the server refuses that COMMIT (here a deferred constraint, as a disk
    full or a broken constraint would), the lines are lost and the step says so: it is
    stopped and ends EXCEPTION, as when a chunk's own write fails."""
    # the first chunk of the step after its first
    refusal = refuse_once("logchunks", "NEW.first_line > 0 AND EXISTS (SELECT 1 FROM logs "
                          "JOIN steps ON steps.id = logs.stepid WHERE logs.id = NEW.logid "
                          "AND steps.name = 'slow')")
    build, why = refused_build(master, workers, tmp_path, postgres, refusal, 40)
    assert build["results"] == 4, build
    assert re.fullmatch(r"\d+ lines of log 'stdio' could not be stored: the database refused "
                        r"the transaction that wrote them\n?", why), why


def test_a_refused_step_end_ends_the_step_exception(master, workers, tmp_path, postgres):
    """A step's last rows (its logs' tails, the logs complete, its results) share one
    transaction.  When the server refuses that COMMIT, the step is not left running under
    a build that goes on: its rows are written again on their own, and it ends EXCEPTION
    saying that the last lines of its logs were lost."""
    refusal = refuse_once("steps", "NEW.name = 'slow' AND NEW.complete_at IS NOT NULL")
    build, why = refused_build(master, workers, tmp_path, postgres, refusal, 3)
    assert build["results"] == 4, build
    assert why.startswith("the last lines of its logs could not be stored"), why
