"""Locks as Buildbot 4.3 has them (bbm.locks.master, bbm.locks.worker, lock:access), on a
real buildbot-worker: builder locks keep a request pending (the botmaster's pre-check) until
they are free, step locks make a step wait in FIFO order, with locks_acquired_at and
builds.locks_duration_s written as Buildbot writes them; a stop while waiting ends the step
cancelled without its locks.  Every step holds its lock until the test creates a file, so
that nothing depends on timing."""

import os
import time

import pytest

from conftest import wait_for
from test_builds import ATTACHED, Site

def config(builders):
    """builders: [(name, builder locks, step locks)]; each step waits for %(lock)s/go-NAME."""
    out = []
    for name, blocks, slocks in builders:
        step = ('bbm.steps.shell{ name = "hold", command = "while [ ! -e %(lock)s/go-' + name +
                ' ]; do sleep 0.1; done"' + (f", locks = {{ {slocks} }}" if slocks else "") +
                " }")
        bl = f" locks = {{ {blocks} }}," if blocks else ""
        out.append(f'bbm.builder{{ name = "{name}", workernames = {{ "w1" }},{bl} '
                   f'factory = bbm.factory{{ {step} }} }},')
    names = ", ".join(f'"{b[0]}"' for b in builders)
    return (r'''local bbm = require "bbm"
local db = bbm.locks.master{ name = "db" }
local two = bbm.locks.master{ name = "two", maxCount = 2 }
local cpu = bbm.locks.worker{ name = "cpu", maxCountForWorker = { w1 = 2 } }
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
''' + "\n".join(out) + """
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { """ + names +
            """ } } },
}
""")


def start(master, backend, workers, tmp_path, builders):
    os.makedirs(tmp_path / "lock", exist_ok=True)
    s = Site(master, backend, tmp_path, config=config(builders))
    s.dir = tmp_path / "lock"
    s.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    return s


def go(site, name):
    open(site.dir / f"go-{name}", "w").close()


def settled(site, brid):
    """A second action on the request: handled once the botmaster has looked at it."""
    assert site.rpc(f"buildrequests/{brid}", "set_priority", priority=0)[0] == 200


def hold_step(site, buildid):
    return [s for s in site.get(f"builds/{buildid}/steps")["steps"] if s["name"] == "hold"][0]


def test_exclusive_builder_lock_serializes(master, backend, workers, tmp_path):
    """Two builders with the same exclusive master lock: the second request stays pending
    (no build on the worker) until the first build is over."""
    site = start(master, backend, workers, tmp_path, [
        ("a", 'db:access("exclusive")', None), ("b", 'db:access("exclusive")', None)])
    _, ra = site.force("a")
    ba = site.wait_running(ra, "hold")
    _, rb = site.force("b")
    settled(site, rb)
    assert site.build_of(rb) is None
    steps = site.steps(ba["buildid"])
    assert [x[:4] for x in steps[:2]] == [(0, "worker_preparation", "worker w1 ready", 0),
                                          (1, "locks_acquire", "locks acquired", 0)]
    go(site, "a")
    ba = site.wait_request(ra)
    go(site, "b")
    bb = site.wait_request(rb)
    assert bb["started_at"] >= ba["complete_at"]
    assert (ba["results"], bb["results"]) == (0, 0)
    assert [x[1] for x in site.steps(bb["buildid"])] == ["worker_preparation", "locks_acquire",
                                                        "hold"]


@pytest.mark.parametrize("lock", ['two:access("counting")', 'cpu:access("counting")'])
def test_counting_lock_lets_max_count_run(master, backend, workers, tmp_path, lock):
    """maxCount = 2 (a master lock), and maxCountForWorker = 2 for w1 (a worker lock whose
    maxCount is 1): two builds run at once, the third waits for one of them."""
    site = start(master, backend, workers, tmp_path, [(n, lock, None) for n in "xyz"])
    brids = [site.force(n)[1] for n in "xyz"]
    site.wait_running(brids[0], "hold")
    site.wait_running(brids[1], "hold")
    settled(site, brids[2])
    assert site.build_of(brids[2]) is None
    go(site, "x")
    site.wait_request(brids[0])
    site.wait_running(brids[2], "hold")
    go(site, "y")
    go(site, "z")
    assert [site.wait_request(b)["results"] for b in brids[1:]] == [0, 0]


def test_step_locks_fifo_and_stop(master, backend, workers, tmp_path):
    """Four builds whose step takes the same exclusive lock: the waiters take it in the
    order they asked, locks_acquired_at and locks_duration_s as Buildbot writes them; a
    build stopped while its step waits ends CANCELLED without the lock."""
    names = ["p", "q", "r", "s"]
    site = start(master, backend, workers, tmp_path,
                 [(n, None, 'db:access("exclusive")') for n in names])
    builds = {}
    for n in names:
        brid = site.force(n)[1]
        builds[n] = (brid, site.wait_running(brid, "hold")["buildid"])

    def acquired():
        return [n for n in names if hold_step(site, builds[n][1])["locks_acquired_at"]]

    assert acquired() == ["p"]
    q_step = hold_step(site, builds["q"][1])
    # locks_duration_s counts whole seconds: let one go by while q waits
    wait_for(lambda: time.time() >= q_step["started_at"] + 1.5, what="a second")
    assert site.rpc(f"builds/{builds['s'][1]}", "stop", reason="not now")[0] == 200
    s = site.wait_request(builds["s"][0])
    assert (s["results"], s["state_string"]) == (6, "cancelled (not now) 'while [ ...' (cancelled)")
    s_step = hold_step(site, s["buildid"])
    assert (s_step["results"], s_step["locks_acquired_at"]) == (6, None)
    logs = site.get(f"steps/{s_step['stepid']}/logs")["logs"]
    assert [l["name"] for l in logs] == ["cancelled while waiting for locks"]
    go(site, "p")
    wait_for(lambda: acquired() == ["p", "q"], what="q to take the lock")
    go(site, "q")
    wait_for(lambda: acquired() == ["p", "q", "r"], what="r to take the lock")
    go(site, "r")
    for n in "pqr":
        assert site.wait_request(builds[n][0])["results"] == 0
    p_step = hold_step(site, builds["p"][1])
    assert p_step["locks_acquired_at"] == p_step["started_at"]
    q_step = hold_step(site, builds["q"][1])
    assert q_step["locks_acquired_at"] >= q_step["started_at"] + 1
    durations = dict(site.query("SELECT id, locks_duration_s FROM builds"))
    assert durations[builds["p"][1]] == 0
    assert durations[builds["q"][1]] == q_step["locks_acquired_at"] - q_step["started_at"] > 0


def test_lock_config_errors(master):
    """Mistakes are refused at checkconfig with the file and line."""
    path = os.path.join(master.dir, "master.lua")
    with open(path, "w") as f:
        f.write(r'''local bbm = require "bbm"
local a = bbm.locks.master{ name = "db" }
local b = bbm.locks.worker{ name = "db" }
return {
  protocols = { pb = { port = 9989 } },
  workers = { bbm.worker("w1", "p") },
  builders = {
    bbm.builder{ name = "x", workernames = { "w1" }, locks = { a:access("shared") },
      factory = bbm.factory{ bbm.steps.shell{ command = "true", locks = { b:access("counting") } },
        bbm.steps.shell{ command = "true", locks = { a } } } },
  },
}
''')
    out = master.cli("checkconfig", path, check=1)
    out = out.stdout + out.stderr
    assert "master.lua:8: access: unknown access mode 'shared'" in out
    assert "master.lua:9: two locks share the same name, 'db'" in out
    assert "master.lua:10: bbm.steps.shell: 'locks' names a lock without saying how" in out


def test_reconfig_keeps_locks(master, backend, workers, tmp_path):
    """A reconfig keeps a lock held by a build of the old configuration (same name), and a
    new maxCount applies to it: Buildbot's getLockByID and updateFromLockId."""
    site = start(master, backend, workers, tmp_path, [
        ("a", 'two:access("counting")', None), ("b", 'two:access("counting")', None)])
    path = os.path.join(master.dir, "master.lua")
    with open(path) as f:
        text = f.read()
    text = text.replace('name = "two", maxCount = 2', 'name = "two", maxCount = 1')
    with open(path, "w") as f:
        f.write(text)
    master.cli("reconfig", master.dir, check=0)
    _, ra = site.force("a")
    site.wait_running(ra, "hold")
    with open(path, "w") as f:
        f.write(text.replace("return {", 'return {\n  title = "again",'))
    master.cli("reconfig", master.dir, check=0)
    _, rb = site.force("b")
    settled(site, rb)
    assert site.build_of(rb) is None  # the lock a's build holds is the same lock
    with open(path, "w") as f:
        f.write(text.replace('name = "two", maxCount = 1', 'name = "two", maxCount = 2'))
    master.cli("reconfig", master.dir, check=0)
    site.wait_running(rb, "hold")  # one more unit: b runs beside a
    go(site, "a")
    go(site, "b")
    assert [site.wait_request(r)["results"] for r in (ra, rb)] == [0, 0]
