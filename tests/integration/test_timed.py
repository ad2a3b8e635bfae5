"""periodic and nightly schedulers: buildsets when they are due, the last build time kept
in object_state so that a restart neither repeats nor skips one, onlyIfChanged.  The
nightly scheduler runs under libfaketime (Debian's faketime) with a clock that starts a
little before the time it waits for and runs ten times faster: no test waits minutes."""

import json
import os
import time

from conftest import SANITIZED, db_rows, free_port, wait_for

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "b1", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = { %(schedulers)s },
}
'''


def configure(master, schedulers):
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": port, "schedulers": schedulers})
    return port


def query(master, sql, *args):
    return db_rows(master.dir, "sqlite", sql, *args)


def buildsets(master):
    return query(master, "SELECT id, reason FROM buildsets ORDER BY id")


def last_build(master, name, cls):
    rows = query(master, "SELECT s.value_json FROM object_state s JOIN objects o "
                 "ON o.id = s.objectid WHERE o.name = ? AND o.class_name = ? "
                 "AND s.name = 'last_build'", name, cls)
    return json.loads(rows[0][0]) if rows else None


PERIODIC = "The Periodic scheduler named 'every2' triggered this build"


def test_periodic_builds_every_period_and_remembers(master):
    """Built at once the first time, then every periodicBuildTimer; last_build kept, so a
    restart waits for the next period instead of building again."""
    configure(master, 'bbm.schedulers.periodic{ name = "every2", builderNames = { "b1" }, '
                  'periodicBuildTimer = 2 }')
    master.start()
    wait_for(lambda: len(buildsets(master)) >= 1, what="the first periodic buildset")
    first = last_build(master, "every2", "Periodic")
    assert first is not None and abs(first - time.time()) < 5
    wait_for(lambda: len(buildsets(master)) >= 2, what="the second periodic buildset")
    assert [r for (_, r) in buildsets(master)] == [PERIODIC, PERIODIC]
    assert abs(last_build(master, "every2", "Periodic") - (first + 2)) < 0.01
    assert query(master, "SELECT b.name FROM buildrequests r JOIN builders b "
                 "ON b.id = r.builderid WHERE r.buildsetid = 1") == [("b1",)]
    assert query(master, "SELECT property_name, property_value FROM buildset_properties "
                 "WHERE buildsetid = 1") == [("scheduler", '["every2", "Scheduler"]')]
    master.stop()
    n = len(buildsets(master))
    master.start()
    time.sleep(0.5)
    assert len(buildsets(master)) == n  # not due yet: no build at start
    wait_for(lambda: len(buildsets(master)) == n + 1, what="the next period after a restart")


def start_faked(master, when):
    master.env["LD_PRELOAD"] = FAKETIME_LIB
    master.env["FAKETIME"] = f"@{when} x10"
    master.env["TZ"] = "UTC"
    if SANITIZED:
        master.env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
    master.start()


def test_nightly_builds_at_its_time(master):
    """hour 3 minute 0 (and a dayOfWeek list that holds Tuesday, Python's 1): one buildset
    at 03:00, its last_build 03:00 exactly."""
    configure(master, 'bbm.schedulers.nightly{ name = "nightly", builderNames = { "b1" }, '
                  'hour = 3, minute = 0, dayOfWeek = { 1, 4 } }')
    start_faked(master, "2026-12-01 02:59:40")  # a Tuesday
    time.sleep(0.5)
    assert buildsets(master) == []
    wait_for(lambda: len(buildsets(master)) >= 1, what="the nightly buildset")
    assert buildsets(master) == [
        (1, "The Nightly scheduler named 'nightly' triggered this build")]
    assert last_build(master, "nightly", "Nightly") == 1796094000  # 2026-12-01 03:00 UTC


def test_nightly_only_if_changed_skips_without_changes(master):
    """onlyIfChanged: the first time it builds; the next time, with no change, it does
    not."""
    configure(master, 'bbm.schedulers.nightly{ name = "n", builderNames = { "b1" }, '
                  'minute = "*/1", hour = "*", onlyIfChanged = true }')
    start_faked(master, "2026-12-01 02:59:50")
    wait_for(lambda: len(buildsets(master)) >= 1, what="the first nightly buildset")
    master.wait_log(r"Nightly scheduler <n>: skipping build - No important changes")
    assert len(buildsets(master)) == 1


def test_nightly_force_at_builds_without_changes(master):
    """onlyIfChanged with force_at_minute = "*/2": every minute is due, the odd ones are
    skipped without changes, the even ones build anyway (Buildbot's force_at_*)."""
    configure(master, 'bbm.schedulers.nightly{ name = "n", builderNames = { "b1" }, '
                  'minute = "*", hour = "*", onlyIfChanged = true, force_at_minute = "*/2" }')
    start_faked(master, "2026-12-01 02:59:50")
    wait_for(lambda: len(buildsets(master)) >= 2, what="the forced nightly buildset")
    master.wait_log(r"Nightly scheduler <n>: skipping build - No important changes")
    # 03:00 (the first), 03:02 (forced); 03:01 was skipped.  The faked clock runs ten times
    # fast: a timer may fire a fake second or two off the minute.
    times = query(master, "SELECT submitted_at FROM buildsets ORDER BY id LIMIT 2")
    assert [round(t / 60) * 60 for (t,) in times] == [1796094000, 1796094120]


def test_nightly_given_only_if_changed_builds_once_more(master):
    """A scheduler that built without onlyIfChanged and is then given it builds once more
    whatever changed (Buildbot's last_only_if_changed in object_state), then skips."""
    sched = ('bbm.schedulers.nightly{ name = "n", builderNames = { "b1" }, minute = "*", '
             'hour = "*", onlyIfChanged = %s }')
    configure(master, sched % "false")
    start_faked(master, "2026-12-01 02:59:50")
    wait_for(lambda: len(buildsets(master)) >= 1, what="the first nightly buildset")
    rows = query(master, "SELECT s.value_json FROM object_state s JOIN objects o "
                 "ON o.id = s.objectid WHERE o.name = 'n' AND s.name = 'last_only_if_changed'")
    assert rows == [("false",)]
    with open(os.path.join(master.dir, "master.lua")) as f:
        text = f.read()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(text.replace("onlyIfChanged = false", "onlyIfChanged = true"))
    master.cli("reconfig", master.dir, check=0)
    n = len(buildsets(master))
    wait_for(lambda: len(buildsets(master)) >= n + 1, what="the build after the change")
    master.wait_log(r"Nightly scheduler <n>: skipping build - No important changes")
    assert query(master, "SELECT s.value_json FROM object_state s JOIN objects o "
                 "ON o.id = s.objectid WHERE o.name = 'n' AND "
                 "s.name = 'last_only_if_changed'") == [("true",)]
