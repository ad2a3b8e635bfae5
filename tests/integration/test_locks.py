"""Locks as Buildbot 4.3 has them (bbm.locks.master, bbm.locks.worker, lock:access), on a
real buildbot-worker: builder locks keep a request pending (the botmaster's pre-check) until
they are free.  Every step holds its lock until the test creates a file, so
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
