"""Reconfig while builds run and requests wait, with a real buildbot-worker: a build of
a builder the reconfig removes finishes under the configuration it started with (its
result, its rows, a stop through the API), and builders a reconfig gives a worker are
used only once the worker has answered the new builder list (no spurious RETRY)."""

import os
import signal

import pytest

from conftest import api_get, api_rpc, free_port, wait_for

CONFIG = r'''local bbm = require "bbm"
return {
  title = "reconf",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass"), bbm.worker("w2", "w2pass") },
  builders = {
%(builders)s
    bbm.builder{ name = "kept", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { %(names)s } },
  },
}
'''

# waits for a file, so that the test says when the step ends
DOOMED = r'''    bbm.builder{ name = "doomed", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "wait", command = { "sh", "-c",
        "while [ ! -e '%(gate)s' ]; do sleep 0.1; done; echo gate open" } },
      bbm.steps.shell{ name = "after", command = { "echo", "after the reconfig" } },
    } },
'''

LATE = r'''    bbm.builder{ name = "%(name)s", workernames = { %(workers)s },
      factory = bbm.factory{ bbm.steps.shell{ command = { "echo", "%(name)s" } } } },
'''


class Site:
    def __init__(self, master, tmp_path):
        self.master = master
        self.port = free_port()
        self.gate = tmp_path / "gate"

    def write(self, doomed=True, late=(), late_on_w1=False):
        """master.lua: builder `doomed` or not, and builders `late` on w2 (and w1)."""
        workers = '"w1", "w2"' if late_on_w1 else '"w2"'
        builders = (DOOMED % {"gate": self.gate} if doomed else "") + "".join(
            LATE % {"name": n, "workers": workers} for n in late)
        names = (["doomed"] if doomed else []) + ["kept"] + list(late)
        with open(os.path.join(self.master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": self.master.pb_port, "www": self.port,
                              "builders": builders,
                              "names": ", ".join(f'"{n}"' for n in names)})

    def reconfig(self, **kw):
        self.write(**kw)
        r = self.master.cli("reconfig", self.master.dir, check=0)
        assert "completed successfully" in r.stdout, r.stdout

    def force(self, *builders):
        status, body = api_rpc(self.port, "forceschedulers/force", "force",
                               builderNames=list(builders))
        assert status == 200, body
        return list(body["result"][1].values())

    def get(self, path):
        return api_get(self.port, path)

    def builds_of(self, brid):
        return self.get(f"buildrequests/{brid}/builds")["builds"]

    def wait_request(self, brid):
        wait_for(lambda: self.get(f"buildrequests/{brid}")["buildrequests"][0]["complete"],
                 what=f"build request {brid} complete")
        return self.get(f"buildrequests/{brid}")["buildrequests"][0]

    def wait_step(self, brid, name):
        def running():
            builds = self.builds_of(brid)
            steps = self.get(f"builds/{builds[-1]['buildid']}/steps")["steps"] if builds else []
            return any(s["name"] == name and s["started_at"] and not s["complete"]
                       for s in steps)
        wait_for(running, what=f"step {name} of request {brid} running")
        return self.builds_of(brid)[-1]

    def assert_complete(self, buildid):
        """The build's rows are final: the build, every step and every log."""
        b = self.get(f"builds/{buildid}")["builds"][0]
        assert b["complete"] and b["complete_at"] is not None, b
        steps = self.get(f"builds/{buildid}/steps")["steps"]
        for s in steps:
            assert s["complete"] and s["results"] is not None, s
            for log in self.get(f"steps/{s['stepid']}/logs")["logs"]:
                assert log["complete"], (s["name"], log)
        return b, [(s["name"], s["results"]) for s in steps]


@pytest.fixture
def site(master, workers, tmp_path):
    s = Site(master, tmp_path)
    s.write()
    master.start()
    s.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    return s


def start_doomed_and_remove_it(site):
    [brid] = site.force("doomed")
    b = site.wait_step(brid, "wait")
    site.reconfig(doomed=False)
    # the builder is gone for new builds: the force scheduler no longer offers it
    status, _ = api_rpc(site.port, "forceschedulers/force", "force", builderNames=["doomed"])
    assert status != 200
    return brid, b


def test_removed_builder_finishes_its_running_build(site):
    """As Buildbot: the build of a removed builder runs to its end under the old
    configuration, with its real result, its later steps run on the worker, its rows
    finished; then the worker is told it no longer has the builder."""
    brid, b = start_doomed_and_remove_it(site)
    site.gate.touch()
    req = site.wait_request(brid)
    assert req["results"] == 0
    build, steps = site.assert_complete(b["buildid"])
    assert (build["results"], build["state_string"]) == (0, "build successful")
    assert steps == [("worker_preparation", 0), ("wait", 0), ("after", 0)]
    assert site.get(f"buildsets/{req['buildsetid']}")["buildsets"][0]["complete"]
    site.worker.wait_log(r"leftover directory 'doomed'")
    # the worker and the master go on as before
    [kept] = site.force("kept")
    assert site.wait_request(kept)["results"] == 0


def test_removed_builder_build_can_be_stopped(site):
    """A build of a removed builder stops through the API as any build: CANCELLED."""
    brid, b = start_doomed_and_remove_it(site)
    status, _ = api_rpc(site.port, f"builds/{b['buildid']}", "stop", reason="not wanted")
    assert status == 200
    req = site.wait_request(brid)
    assert req["results"] == 6
    build, steps = site.assert_complete(b["buildid"])
    assert (build["results"], build["state_string"]) == \
        (6, "cancelled (not wanted) 'sh -c ...' (cancelled)")
    assert steps == [("worker_preparation", 0), ("wait", 6)]


def test_builders_added_to_a_worker_wait_for_its_builder_list(site, master):
    """Requests for builders a reconfig gives the worker start once the worker has
    confirmed its new builder list (Buildbot's setBuilderList), never before: no build
    fails its first command and ends RETRY.  The requests come before the reconfig, or
    just after the master is told to reload (SIGHUP)."""
    late = ["late1", "late2", "late3"]
    brids = []
    for round in range(4):
        site.reconfig(doomed=False, late=late, late_on_w1=False)
        if round % 2 == 0:
            queued = site.force(*late)
            site.write(doomed=False, late=late, late_on_w1=True)
            r = master.cli("reconfig", master.dir, check=0)
            assert "completed successfully" in r.stdout, r.stdout
        else:
            site.write(doomed=False, late=late, late_on_w1=True)
            os.kill(master.pid(), signal.SIGHUP)
            queued = site.force(*late)
        for brid in queued:
            site.wait_request(brid)
        brids += queued
    results = [(brid, [b["results"] for b in site.builds_of(brid)]) for brid in brids]
    assert results == [(brid, [0]) for brid in brids]
