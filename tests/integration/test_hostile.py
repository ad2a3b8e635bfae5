"""Builds stopped while their trigger step waits for a child, by the API's stop and by
SIGTERM: the builds end as Buildbot's would, nothing is used after it is freed, the
master goes on serving the API and running builds, and restarts cleanly.

One master and one worker serve the whole module; each test checks that the master
made no sanitizer report so far."""

import json
import os
import signal
import urllib.request

import pytest

from conftest import Master, Worker, failed, free_port, pid_alive, wait_for

CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass", { max_builds = 3 }) },
  builders = {
    bbm.builder{ name = "parent", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.trigger{ schedulerNames = { "trig" }, waitForFinish = true } } },
    bbm.builder{ name = "child", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "wait", command = "test -e '%(root)s/go' || sleep 300" } } },
    bbm.builder{ name = "quick", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "parent", "quick" } },
    bbm.schedulers.triggerable{ name = "trig", builderNames = { "child" } },
  },
}
'''


class Site:
    def __init__(self, tmp):
        self.root = tmp / "root"
        self.root.mkdir()
        self.master = Master(tmp / "master")
        os.makedirs(self.master.dir)
        self.port = free_port()
        with open(os.path.join(self.master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": self.master.pb_port, "www": self.port, "root": self.root})
        self.master.start()
        self.worker = Worker(tmp / "worker", "w1", "w1pass", self.master.pb_port).start()
        self.master.wait_log("worker 'w1' attached")

    def rpc(self, path, method, **params):
        body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": method, "params": params})
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v2/{path}",
                                     data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["result"]

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/{path}",
                                    timeout=60) as r:
            return json.loads(r.read())

    def force(self, builder, **props):
        _, brids = self.rpc("forceschedulers/force", "force", builderNames=[builder], **props)
        return list(brids.values())[0]

    def build_of(self, brid):
        builds = self.get(f"buildrequests/{brid}/builds")["builds"]
        return builds[-1] if builds else None

    def run(self, builder, **props):
        """Forces a build, waits for it, returns it."""
        brid = self.force(builder, **props)
        wait_for(lambda: self.get(f"buildrequests/{brid}")["buildrequests"][0]["complete"],
                 what=f"request {brid} of {builder}")
        return self.build_of(brid)

    def steps(self, build):
        return self.get(f"builds/{build['buildid']}/steps")["steps"]

    def stop(self):
        pid = self.master.pid()
        self.master.stop()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("hostile"))
    yield s
    s.worker.kill()
    s.stop()
    assert not s.master.sanitizer_reports(), "\n".join(s.master.sanitizer_reports())


@pytest.fixture(autouse=True)
def no_reports(site, request):
    yield
    if failed(request):
        print("---- master log ----\n" + site.master.log()[-6000:])
        print("---- worker log ----\n" + site.worker.log()[-3000:])
    assert not site.master.sanitizer_reports(), "\n".join(site.master.sanitizer_reports())


def still_serving(site):
    """The master answers the API and runs a build to the end."""
    assert site.get("builders")["builders"]
    assert site.run("quick")["results"] == 0


def wait_child_running(site, parent_brid):
    """The child build a parent's trigger step waits for, once its step runs."""
    def running():
        parent = site.build_of(parent_brid)
        if parent is None:
            return False
        sets = site.get(f"buildsets?parent_buildid={parent['buildid']}")["buildsets"]
        if not sets:
            return False
        reqs = site.get(f"buildrequests?buildsetid={sets[0]['bsid']}")["buildrequests"]
        child = site.build_of(reqs[0]["buildrequestid"]) if reqs else None
        steps = site.steps(child) if child else []
        return len(steps) > 1 and steps[1]["started_at"] and not steps[1]["complete"]
    wait_for(running, what="the child build's step to run")
    parent = site.build_of(parent_brid)
    sets = site.get(f"buildsets?parent_buildid={parent['buildid']}")["buildsets"]
    req = site.get(f"buildrequests?buildsetid={sets[0]['bsid']}")["buildrequests"][0]
    return parent, req["buildrequestid"]


def test_stop_during_a_trigger_wait(site):
    """stop on a parent whose trigger step waits: the step cancels its child, the parent
    ends CANCELLED and frees itself while the stop is still being handled."""
    brid = site.force("parent")
    parent, child_brid = wait_child_running(site, brid)
    assert site.rpc(f"builds/{parent['buildid']}", "stop", reason="by the test") is None
    wait_for(lambda: site.get(f"buildrequests/{child_brid}")["buildrequests"][0]["complete"],
             what="the child request to complete")
    parent = site.get(f"builds/{parent['buildid']}")["builds"][0]
    child = site.build_of(child_brid)
    assert (parent["results"], child["results"]) == (6, 6)
    still_serving(site)


def test_sigterm_during_a_trigger_wait_and_restart(site):
    """SIGTERM in the same state: Buildbot's quick shutdown (the waited-for child
    CANCELLED, the parent RETRY); the next start runs the parent again to success."""
    brid = site.force("parent")
    parent, child_brid = wait_child_running(site, brid)
    pid = site.master.pid()
    site.master.cli("stop", site.master.dir, check=0)
    assert not pid_alive(pid)
    assert "Server Shut Down." in site.master.log()
    assert not site.master.sanitizer_reports()
    (site.root / "go").touch()
    site.master.start()
    wait_for(lambda: site.get(f"buildrequests/{brid}")["buildrequests"][0]["complete"],
             what="the parent request to run again")
    assert site.get(f"builds/{parent['buildid']}")["builds"][0]["results"] == 5
    assert site.build_of(child_brid)["results"] == 6
    again = site.build_of(brid)
    assert again["buildid"] != parent["buildid"] and again["results"] == 0
