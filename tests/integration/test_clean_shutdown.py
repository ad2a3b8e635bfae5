"""Buildbot's clean shutdown on a real master and worker: `bbmaster stop --clean` (SIGUSR1,
as `buildbot stop --clean`) lets the running builds finish, including the children a
trigger step waits for, starts nothing else, and stops the master once nothing runs;
what was queued meanwhile starts after the next start."""

import os
import subprocess

from conftest import BBMASTER, api_get, api_rpc, db_rows, free_port, pid_alive, wait_for

CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass", { max_builds = 3 }) },
  builders = {
    bbm.builder{ name = "parent", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "wait", command = { "sh", "-c",
        "while [ ! -f %(go)s ]; do sleep 0.1; done" } },
      bbm.steps.trigger{ schedulerNames = { "trig" }, waitForFinish = true } } },
    bbm.builder{ name = "child", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "quick", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "parent", "quick" } },
    bbm.schedulers.triggerable{ name = "trig", builderNames = { "child" } },
  },
}
'''


def builds(master, name):
    return db_rows(master.dir, "sqlite",
                   "SELECT b.number, b.results FROM builds b JOIN builders r ON "
                   "r.id = b.builderid WHERE r.name = ? ORDER BY b.number", name)


def test_stop_clean_waits_for_the_running_builds(master, workers):
    www = free_port()
    go = os.path.join(master.dir, "go")
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": www, "go": go})
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    assert api_rpc(www, "forceschedulers/force", "force", builderNames=["parent"])[0] == 200
    wait_for(lambda: len(builds(master, "parent")) == 1, what="the parent build started")
    pid = master.pid()

    stopper = subprocess.Popen([BBMASTER, "stop", "--clean", master.dir], env=master.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    master.wait_log(r"clean shutdown: no new build starts; waiting for 1 build\(s\) to finish")
    # the web still answers and takes requests; none starts
    assert api_rpc(www, "forceschedulers/force", "force", builderNames=["quick"])[0] == 200
    pending = api_get(www, "buildrequests?complete=false")["buildrequests"]
    assert [r["claimed"] for r in pending] == [True, False]
    assert stopper.poll() is None and pid_alive(pid)

    open(go, "w").close()
    out, err = stopper.communicate(timeout=120)
    assert stopper.returncode == 0, err
    assert f"sent SIGUSR1 to pid {pid}" in out and f"process {pid} is dead" in out
    assert not pid_alive(pid)
    assert builds(master, "parent") == [(1, 0)]  # finished, not RETRY
    assert builds(master, "child") == [(1, 0)]  # the child it waited for ran
    assert builds(master, "quick") == []
    log = master.log()
    assert "clean shutdown: no build is running any more" in log
    assert "clean shutdown: shutting down" in log

    master.cli("start", master.dir, check=0)  # what was queued runs now
    wait_for(lambda: builds(master, "quick") == [(1, 0)], what="the queued build ran")
    master.stop()


def test_stop_clean_of_an_idle_master_stops_it_at_once(master):
    master.configure({"w1": "p"}, {"b": ["w1"]})
    master.start()
    pid = master.pid()
    r = master.cli("stop", "--clean", master.dir, check=0)
    assert f"process {pid} is dead" in r.stdout
    assert "waiting for 0 build(s) to finish" in master.log()
    r = master.cli("checkconfig", "--clean", master.dir)
    assert r.returncode == 2 and "--clean goes with stop and restart" in r.stderr
