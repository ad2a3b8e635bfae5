"""Builds on real buildbot-workers: force scheduler -> buildset and build request ->
botmaster -> build with steps run by the worker -> logs, properties, results, in the
rows and API answers Buildbot writes.  The expected rows are those of the fixture
database Buildbot 4.3 wrote for the same configuration (shared/spec/dataapi/tools/
master.cfg: builds 1-3 and 9-11), timestamps aside.  Faults: a build stopped, a request
cancelled, a worker killed mid-step, the master stopped and killed mid-build."""

import os
import subprocess
import signal
import time
import urllib.request

import pytest

from conftest import api_get, api_rpc, db_rows, free_port, pid_alive, wait_for

CONFIG = r'''local bbm = require "bbm"
local outcome_cmd = bbm.interpolate(
    "echo 'starting outcome=%%(prop:outcome)s'; " ..
    "case '%%(prop:outcome)s' in " ..
    "  warnings) printf 'foo.c:1: %%%%s: unused variable x\\nfoo.c:2: %%%%s: implicit decl\\n' warning warning ;; " ..
    "  failure) echo 'error: something broke' >&2; exit 2 ;; " ..
    "  sleep) sleep 300 ;; " ..
    "esac; echo done")
return {
  title = "builds",
  properties = { everywhere = "yes" },
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "w1pass", { max_builds = %(max_builds)d }) },
  builders = {
    bbm.builder{ name = "alpha", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "hello", command = { "sh", "-c",
        "echo hello stdout; echo hello stderr >&2; printf 'caf\\303\\251 \\342\\234\\223 no-newline-at-end'" } },
      bbm.steps.set_property_from_command{ name = "get-uname", command = { "uname", "-s" },
        property = "kernel" },
      bbm.steps.compile{ name = "compile", command = { "sh", "-c", outcome_cmd },
        warningPattern = "^.*warning: .*$", warnOnWarnings = true },
      bbm.steps.shell{ name = "skipped-step", command = { "true" }, doStepIf = false },
      bbm.steps.shell{ name = "hidden-step", command = { "true" },
        hideStepIf = function(results, props) return results == 0 end },
      bbm.steps.shell{ name = "always", alwaysRun = true, command = { "echo",
        bbm.interpolate("%%(prop:buildername)s #%%(prop:buildnumber)s %%(prop:nosuch:-none)s") } },
    } },
    bbm.builder{ name = "serial", workernames = { "w1" }, collapseRequests = false,
      factory = bbm.factory{
      bbm.steps.shell{ name = "exclusive", command =
        "mkdir %(lock)s || exit 1; sleep 0.2; rmdir %(lock)s" },
    } },
    bbm.builder{ name = "collapsing", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "parity", workernames = { "w1" },
      collapseRequests = function(master, builder, new, old)
        return master.title == "builds" and builder.name == "parity"
          and new.buildername == "parity" and new.buildrequestid > old.buildrequestid
          and new.buildsetid %% 2 == old.buildsetid %% 2
      end,
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "gated", workernames = { "w1" },
      properties = { from_builder = "yes" },
      canStartBuild = function(builder, wfb, request)
        return builder.name == "gated" and wfb.worker.workername == "w1"
          and io.open("%(lock)s.open") ~= nil
      end,
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force",
      builderNames = { "alpha", "serial", "collapsing", "gated", "parity" },
      properties = { bbm.params.choice_string{ name = "outcome", label = "Outcome",
        choices = { "success", "warnings", "failure", "sleep" }, default = "success" } } },
  },
}
'''

ATTACHED = r"worker 'w1' attached"


class Site:
    """A master running CONFIG, its API and its database."""

    def __init__(self, master, backend, tmp_path, max_builds=1, config=CONFIG, **values):
        self.master = master
        self.port = free_port()
        self.backend = backend
        db = "sqlite:///state.sqlite" if backend == "sqlite" else backend
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(config % {"pb": master.pb_port, "www": self.port, "db": db,
                              "max_builds": max_builds, "lock": tmp_path / "lock", **values})
        master.start()

    def rpc(self, path, method, **params):
        return api_rpc(self.port, path, method, **params)

    def force(self, builder="alpha", **params):
        status, body = self.rpc("forceschedulers/force", "force", builderNames=[builder],
                                **params)
        assert status == 200, body
        bsid, brids = body["result"]
        return bsid, list(brids.values())[0]

    def get(self, path):
        return api_get(self.port, path)

    def raw(self, logid):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/logs/{logid}/raw",
                                    timeout=60) as r:
            return r.read()

    def query(self, sql, *args):
        return db_rows(self.master.dir, self.backend, sql, *args)

    def build_of(self, brid):
        rows = self.get(f"buildrequests/{brid}/builds")["builds"]
        return rows[-1] if rows else None

    def wait_request(self, brid):
        wait_for(lambda: self.get(f"buildrequests/{brid}")["buildrequests"][0]["complete"],
                 what=f"build request {brid} complete")
        return self.build_of(brid)

    def wait_running(self, brid, step):
        def running():
            b = self.build_of(brid)
            if b is None:
                return False
            steps = self.get(f"builds/{b['buildid']}/steps")["steps"]
            return any(s["name"] == step and s["started_at"] and not s["complete"]
                       for s in steps)
        wait_for(running, what=f"step {step} of request {brid} running")
        return self.build_of(brid)

    def steps(self, buildid):
        return [(s["number"], s["name"], s["state_string"], s["results"], s["hidden"])
                for s in self.get(f"builds/{buildid}/steps")["steps"]]


@pytest.fixture
def site(master, backend, workers, tmp_path):
    s = Site(master, backend, tmp_path)
    s.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    return s


def test_builds_like_buildbot(site):
    """Success, warnings through a warning pattern, failure with haltOnFailure (alwaysRun
    still runs), doStepIf false -> SKIPPED, hideStepIf, properties, logs."""
    bsid, brid = site.force(outcome="success", reason="success run")
    b = site.wait_request(brid)
    assert (b["results"], b["state_string"], b["number"]) == (0, "build successful", 1)
    assert site.steps(b["buildid"]) == [
        (0, "worker_preparation", "worker w1 ready", 0, False),
        (1, "hello", "'sh -c ...'", 0, False),
        (2, "get-uname", "property 'kernel' set", 0, False),
        (3, "compile", "compile", 0, False),
        (4, "skipped-step", "'true' (skipped)", 3, False),
        (5, "hidden-step", "'true'", 0, True),
        (6, "always", "'echo alpha #1 none'", 0, False)]
    props = site.get(f"builds/{b['buildid']}/properties")["properties"][0]
    assert props["buildername"] == ["alpha", "Builder"]
    assert props["everywhere"] == ["yes", "master.lua"]
    assert props["workername"] == ["w1", "Worker"]
    assert props["buildnumber"] == [1, "Build"]
    assert props["scheduler"] == ["force", "Scheduler"]
    assert props["outcome"] == ["success", "Force Build Form"]
    assert props["owners"] == [[""], "Build"]
    assert props["kernel"] == ["Linux", "SetPropertyFromCommand Step"]
    assert props["warnings-count"] == [0, "WarningCountingShellCommand"]
    assert props["builddir"][0].endswith("/alpha") and props["builddir"][1] == "Worker"
    assert site.query("SELECT reason, complete, results FROM buildsets WHERE id = ?", bsid) == \
        [("A build was forced by '': success run", 1, 0)]
    assert site.query("SELECT property_name, property_value FROM buildset_properties "
                      "WHERE buildsetid = ? ORDER BY property_name", bsid) == [
        ("outcome", '["success", "Force Build Form"]'), ("owner", '["", "Force Build Form"]'),
        ("reason", '["success run", "Force Build Form"]'), ("scheduler", '["force", "Scheduler"]')]
    assert site.query("SELECT masterid FROM buildrequest_claims WHERE brid = ?", brid) == \
        site.query("SELECT id FROM masters")

    hello = site.get(f"builds/{b['buildid']}/steps/1/logs")["logs"]
    assert [(l["name"], l["slug"], l["type"], l["complete"]) for l in hello] == \
        [("stdio", "stdio", "s", True)]
    lines = site.get(f"logs/{hello[0]['logid']}/contents")["logchunks"][0]["content"]
    lines = lines.split("\n")
    assert lines[0].startswith("hsh -c ") and "ohello stdout" in lines
    assert "ehello stderr" in lines and "hprogram finished with exit code 0" in lines
    assert lines[-2] == "ocaf\u00e9 \u2713 no-newline-at-end" and lines[-1] == ""
    changes = site.get(f"builds/{b['buildid']}/steps/2/logs/property_changes/contents")
    assert changes["logchunks"][0]["content"] == "kernel: 'Linux'\n"

    _, brid = site.force(outcome="warnings", reason="warnings run")
    b = site.wait_request(brid)
    assert (b["results"], b["state_string"]) == (1, "warnings compile (warnings)")
    compile_logs = site.get(f"builds/{b['buildid']}/steps/3/logs")["logs"]
    assert [l["name"] for l in compile_logs] == ["stdio", "warnings (2)"]
    warnings = site.get(f"logs/{compile_logs[1]['logid']}/contents")["logchunks"][0]["content"]
    assert warnings == "foo.c:1: warning: unused variable x\nfoo.c:2: warning: implicit decl\n"
    props = site.get(f"builds/{b['buildid']}/properties")["properties"][0]
    assert props["warnings-count"] == [2, "WarningCountingShellCommand"]

    _, brid = site.force(outcome="failure", reason="failure run")
    b = site.wait_request(brid)
    assert (b["results"], b["state_string"]) == (2, "failed compile (failure)")
    assert [s[1:4] for s in site.steps(b["buildid"])][3:] == [
        ("compile", "compile (failure)", 2), ("always", "'echo alpha #3 none'", 0)]
    assert site.get(f"buildrequests/{brid}")["buildrequests"][0]["results"] == 2


def test_stop_and_cancel(site):
    """stop on a running build: its command is killed, the build ends CANCELLED with
    Buildbot's words; cancel on a queued request completes it CANCELLED unbuilt."""
    _, running = site.force(outcome="sleep", reason="long sleep")
    # the second request once the first runs: a request still pending when another of the
    # same source stamp comes is collapsed into it, as in Buildbot
    b = site.wait_running(running, "compile")
    _, queued = site.force(outcome="success", reason="queued then cancelled")
    assert site.rpc(f"buildrequests/{queued}", "cancel", reason="no longer needed") == \
        (200, {"id": 1, "jsonrpc": "2.0", "result": None})
    assert site.rpc(f"builds/{b['buildid']}", "stop", reason="stopped by script")[0] == 200
    b = site.wait_request(running)
    assert (b["results"], b["state_string"]) == \
        (6, "cancelled (stopped by script) compile (cancelled)")
    compile_step = site.get(f"builds/{b['buildid']}/steps/3/logs")["logs"]
    assert [l["name"] for l in compile_step] == ["stdio", "cancelled"]
    stdio = site.raw(compile_step[0]["logid"]).decode()
    assert "command interrupted, attempting to kill" in stdio
    assert site.wait_request(queued) is None
    assert site.get(f"buildrequests/{queued}")["buildrequests"][0]["results"] == 6
    # stopping a finished build is not an error
    assert site.rpc(f"builds/{b['buildid']}", "stop")[0] == 200


def test_rebuild_and_graceful_shutdown(site):
    """rebuild copies the build's buildset (properties, source stamps; scheduler
    'rebuild', rebuilt_buildid); a worker told to stop gracefully finishes its build,
    starts no other, then is shut down."""
    bsid, brid = site.force(outcome="warnings", reason="first")
    first = site.wait_request(brid)
    status, body = site.rpc(f"builds/{first['buildid']}", "rebuild")
    assert status == 200
    new_bsid, brids = body["result"]
    assert list(brids) == [str(first["builderid"])]
    assert site.query("SELECT reason, rebuilt_buildid FROM buildsets WHERE id = ?",
                      new_bsid) == [("rebuild", first["buildid"])]
    again = site.wait_request(list(brids.values())[0])
    assert again["results"] == 1
    props = site.get(f"builds/{again['buildid']}/properties")["properties"][0]
    assert props["outcome"] == ["warnings", "Force Build Form"]
    assert props["scheduler"] == ["rebuild", "Scheduler"]

    _, running = site.force(outcome="sleep")
    b = site.wait_running(running, "compile")
    assert site.rpc("workers/w1", "stop", reason="maintenance")[0] == 200
    _, queued = site.force(outcome="success")
    assert site.rpc(f"builds/{b['buildid']}", "stop")[0] == 200
    site.wait_request(running)
    wait_for(lambda: not site.worker.alive(), what="the worker to shut down")
    assert site.build_of(queued) is None
    assert site.query("SELECT graceful FROM workers WHERE name = 'w1'") == [(1,)]


def test_reconfig_during_a_build(site, master):
    """A running build keeps the configuration it started under (its steps live in that
    Lua state) while builds started after a reconfig take the new one."""
    _, brid = site.force(outcome="sleep")
    b = site.wait_running(brid, "compile")
    path = os.path.join(master.dir, "master.lua")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('name = "hello"', 'name = "hello-again"'))
    master.cli("reconfig", master.dir, check=0)
    assert site.rpc(f"builds/{b['buildid']}", "stop")[0] == 200
    b = site.wait_request(brid)
    assert [x[1] for x in site.steps(b["buildid"])][:4] == [
        "worker_preparation", "hello", "get-uname", "compile"]
    assert site.steps(b["buildid"])[-1][1] == "always"  # alwaysRun, from the old config
    b = site.wait_request(site.force(outcome="success")[1])
    assert site.steps(b["buildid"])[1][1] == "hello-again"


def test_pause_outlives_a_master_restart(site, master):
    """As Buildbot: a paused worker stays paused when the master restarts and it logs in
    again; nothing starts on it until it is unpaused."""
    assert site.rpc("workers/w1", "pause", reason="disk full")[0] == 200
    master.cli("stop", master.dir, check=0)
    master.start()
    master.wait_log(ATTACHED, 2)
    _, brid = site.force(outcome="success")
    # a second action is handled after the botmaster has looked at the first one's request
    assert site.rpc(f"buildrequests/{brid}", "set_priority", priority=5)[0] == 200
    assert site.build_of(brid) is None
    assert site.rpc("workers/w1", "unpause")[0] == 200
    assert site.wait_request(brid)["results"] == 0


def test_worker_killed_mid_step_retries(site, workers, master):
    """RETRY with Buildbot's words; the request runs again once the worker is back."""
    _, brid = site.force(outcome="sleep", reason="will be retried")
    first = site.wait_running(brid, "compile")
    site.worker.kill(signal.SIGKILL)
    wait_for(lambda: site.get(f"builds/{first['buildid']}")["builds"][0]["complete"],
             what="the build to end")
    b = site.get(f"builds/{first['buildid']}")["builds"][0]
    assert (b["results"], b["state_string"]) == (5, "retry lost connection compile (retry)")
    assert site.get(f"buildrequests/{brid}")["buildrequests"][0]["complete"] is False
    site.worker.start()
    again = site.wait_running(brid, "compile")
    assert again["buildid"] != first["buildid"] and again["number"] == first["number"] + 1


def test_worker_that_stops_answering_is_dropped_with_ping_interval(master, backend, workers,
                                                                   tmp_path):
    """bbmaster's own liveness check (bbm.worker's ping_interval, off by default): a worker
    that stops answering while its connection stays up (SIGSTOP) is dropped once a ping
    goes unanswered for ping_timeout; its build ends RETRY as when a worker goes, the
    worker shows disconnected, and it attaches again once it answers again."""
    config = CONFIG.replace("{ max_builds = %(max_builds)d }",
                            "{ max_builds = %(max_builds)d, ping_interval = 1, ping_timeout = 2 }")
    site = Site(master, backend, tmp_path, config=config)
    worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    _, brid = site.force(outcome="sleep", reason="worker will hang")
    b = site.wait_running(brid, "compile")
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: site.get(f"builds/{b['buildid']}")["builds"][0]["complete"],
                 what="the build of the stopped worker to end")
        b = site.get(f"builds/{b['buildid']}")["builds"][0]
        assert (b["results"], b["state_string"]) == (5, "retry lost connection compile (retry)")
        assert site.get("workers/w1")["workers"][0]["connected_to"] == []
        assert site.get(f"buildrequests/{brid}")["buildrequests"][0]["complete"] is False
        assert master.count(r"worker 'w1' detached \(127\.0\.0\.1:\d+\): no answer to a "
                            r"ping within 2 s") == 1
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    master.wait_log(ATTACHED, 2)
    wait_for(lambda: site.get("workers/w1")["workers"][0]["connected_to"] != [],
             what="the worker to be connected again")
    assert site.rpc(f"buildrequests/{brid}", "cancel")[0] == 200


def test_build_stopped_on_a_hung_worker_ends_when_the_worker_is_dropped(master, backend,
                                                                        workers, tmp_path):
    """A stop cannot reach a worker that stopped answering; the liveness check drops it and
    the build ends: the step keeps the one 'cancelled' log the stop wrote (as Buildbot's
    interrupt does nothing for a step already interrupted), with no database error."""
    config = CONFIG.replace("{ max_builds = %(max_builds)d }",
                            "{ max_builds = %(max_builds)d, ping_interval = 1, ping_timeout = 2 }")
    site = Site(master, backend, tmp_path, config=config)
    worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    _, brid = site.force(outcome="sleep")
    b = site.wait_running(brid, "compile")
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        assert site.rpc(f"builds/{b['buildid']}", "stop", reason="hung")[0] == 200
        wait_for(lambda: site.get(f"builds/{b['buildid']}")["builds"][0]["complete"],
                 what="the stopped build to end")
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    b = site.get(f"builds/{b['buildid']}")["builds"][0]
    logs = site.get(f"builds/{b['buildid']}/steps/3/logs")["logs"]
    assert [(l["name"], l["complete"]) for l in logs] == [("stdio", True), ("cancelled", True)]
    assert site.raw(logs[1]["logid"]).decode() == "hung\n"
    assert "database:" not in master.log()
    # as Buildbot's lostRemote: the build ends RETRY, its request goes back to the queue
    assert (b["results"], b["state_string"]) == (5, "retry (hung) lost connection compile (retry)")
    assert site.rpc(f"buildrequests/{brid}", "cancel")[0] == 200


def test_master_stop_and_kill_mid_build(site, master):
    """A clean stop interrupts the build and gives its request back; after SIGKILL,
    the next start finishes what was left running (RETRY) and runs the request again."""
    _, brid = site.force(outcome="sleep", reason="interrupted")
    first = site.wait_running(brid, "compile")
    master.cli("stop", master.dir, check=0)
    assert site.query("SELECT results, state_string FROM builds WHERE id = ?",
                      first["buildid"]) == [(5, "retry (Master Shutdown) compile (cancelled)")]
    assert site.query("SELECT complete FROM buildrequests WHERE id = ?", brid) == [(0,)]
    master.start()
    second = site.wait_running(brid, "compile")
    pid = master.pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the master to die")
    os.remove(os.path.join(master.dir, "bbmaster.pid"))
    master.start()
    third = site.wait_running(brid, "compile")
    assert third["buildid"] not in (first["buildid"], second["buildid"])
    assert site.query("SELECT results, complete_at IS NOT NULL FROM builds WHERE id = ?",
                      second["buildid"]) == [(5, 1)]
    assert site.query("SELECT count(*) FROM steps WHERE buildid = ? AND results IS NULL",
                      second["buildid"]) == [(0,)]


def test_max_builds_collapse_and_can_start_build(site, tmp_path):
    """Requests queued while the worker is paused: with collapseRequests = false all run,
    one at a time (max_builds = 1; a build fails if another holds the lock directory),
    oldest first; by Buildbot's default each new request collapses the older pending ones
    (SKIPPED, no build), or as a Lua collapseRequests says; canStartBuild holds a request back until it allows it."""
    assert site.rpc("workers/w1", "pause", reason="queueing")[0] == 200
    serial = [site.force(builder="serial")[1] for _ in range(10)]
    collapsing = [site.force(builder="collapsing", outcome=o)[1]
                  for o in ["success", "warnings", "failure"] * 3]
    parity = [site.force(builder="parity") for _ in range(4)]
    assert site.query("SELECT paused, pause_reason FROM workers WHERE name = 'w1'") == \
        [(1, "queueing")]
    assert all(site.build_of(brid) is None for brid in serial)
    assert site.rpc("workers/w1", "unpause")[0] == 200
    builds = [site.wait_request(brid) for brid in serial]
    assert [b["results"] for b in builds] == [0] * 10
    assert [b["number"] for b in builds] == list(range(1, 11))
    for brid in collapsing[:-1]:
        assert site.wait_request(brid) is None
        assert site.get(f"buildrequests/{brid}")["buildrequests"][0]["results"] == 3
    assert site.wait_request(collapsing[-1])["results"] == 0
    # collapseRequests(master, builder, new, old): the same parity of buildset collapses
    assert [bsid % 2 for bsid, _ in parity] == [0, 1, 0, 1] or \
        [bsid % 2 for bsid, _ in parity] == [1, 0, 1, 0]
    for _, brid in parity[:2]:
        assert site.wait_request(brid) is None
        assert site.get(f"buildrequests/{brid}")["buildrequests"][0]["results"] == 3
    assert [site.wait_request(brid)["results"] for _, brid in parity[2:]] == [0, 0]

    _, gated = site.force(builder="gated")
    site.force(builder="serial")  # a build that ends: the botmaster looks again
    site.wait_request(site.force(builder="serial")[1])
    assert site.build_of(gated) is None
    open(f"{tmp_path / 'lock'}.open", "w").close()
    assert site.rpc("workers/w1", "unpause")[0] == 200
    b = site.wait_request(gated)
    assert b["results"] == 0
    props = site.get(f"builds/{b['buildid']}/properties")["properties"][0]
    assert props["from_builder"] == ["yes", "Builder"]


GIT_CONFIG = r'''local bbm = require "bbm"
local function git(mode, method)
  return bbm.steps.git{ repourl = "%(repo)s", mode = mode, method = method }
end
local show = bbm.steps.shell{ name = "show", command = { "cat", "file.txt" } }
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "incremental", workernames = { "w1" },
      factory = bbm.factory{ git("incremental"), show } },
    bbm.builder{ name = "fresh", workernames = { "w1" },
      factory = bbm.factory{ git("full", "fresh"), show } },
    bbm.builder{ name = "clobber", workernames = { "w1" },
      factory = bbm.factory{ git("full", "clobber"), show } },
    bbm.builder{ name = "copy", workernames = { "w1" },
      factory = bbm.factory{ git("full", "copy"), show } },
    bbm.builder{ name = "recover", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "%(repo)s", mode = "incremental", retryFetch = true,
        clobberOnFailure = true }, show } },
    bbm.builder{ name = "github", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.github{ repourl = "%(repo)s", mode = "full", method = "fresh" }, show } },
    bbm.builder{ name = "halts", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "%(repo)s-missing" }, show } },
    bbm.builder{ name = "goes-on", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "%(repo)s-missing", haltOnFailure = false }, show } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force",
      builderNames = { "incremental", "fresh", "clobber", "copy", "recover", "github",
                       "halts", "goes-on" } },
  },
}
'''


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, "GIT_AUTHOR_NAME": "A",
                                          "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "A",
                                          "GIT_COMMITTER_EMAIL": "a@x"}).stdout.strip()


def commit(repo, text):
    (repo / "file.txt").write_text(text)
    git(repo, "add", "file.txt")
    git(repo, "commit", "-q", "-m", text)
    return git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize("builder", ["incremental", "fresh", "clobber", "copy", "recover"])
def test_git_step(master, workers, tmp_path, builder):
    """Buildbot's Git step on a local repository: the first build clones, the second
    updates (or clobbers, or copies) to the new commit, got_revision follows, and a
    forced revision is checked out."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first = commit(repo, "one")
    s = Site.__new__(Site)
    s.master, s.port, s.backend = master, free_port(), "sqlite"
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(GIT_CONFIG % {"pb": master.pb_port, "www": s.port, "repo": repo,
                              "db": "sqlite:///state.sqlite"})
    master.start()
    worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)

    def build(**params):
        b = s.wait_request(s.force(builder, **params)[1])
        props = s.get(f"builds/{b['buildid']}/properties")["properties"][0]
        show = s.get(f"builds/{b['buildid']}/steps/2/logs/stdio/contents")["logchunks"]
        out = [l[1:] for l in "".join(c["content"] for c in show).split("\n") if l[:1] == "o"]
        vc = s.get(f"builds/{b['buildid']}/steps/1/logs/stdio/contents")["logchunks"]
        build.log = "".join(c["content"] for c in vc)
        return b, props["got_revision"], out

    b, rev, out = build()
    assert (b["results"], rev, out) == (0, [first, "Git"], ["one"]), b
    assert s.steps(b["buildid"])[1][1:4] == ("git", "update", 0)
    assert "hgit clone " in build.log and "hgit rev-parse HEAD" in build.log
    second = commit(repo, "two")
    if builder == "recover":  # a checkout git cannot fetch into: retried, then clobbered
        head = os.path.join(worker.dir, "recover", "build", ".git", "HEAD")
        with open(head, "w") as f:
            f.write("garbage\n")
    b, rev, out = build()
    assert (b["results"], rev, out) == (0, [second, "Git"], ["two"])
    update = "hgit clone " if builder == "clobber" else "hgit fetch -f --progress "
    assert update in build.log and ("hgit clean -f -f -d -x" in build.log) == (builder == "fresh")
    if builder == "recover":
        assert build.log.count("hgit fetch -f --progress ") == 2 and "hgit clone " in build.log
    b, rev, out = build(revision=first)
    assert (b["results"], rev, out) == (0, [first, "Git"], ["one"])


def test_github_step_builds_the_merge_commit_of_a_pull_request(master, workers, tmp_path):
    """Buildbot's GitHub step: on refs/pull/N/merge it builds GitHub's merge commit, not the
    revision the change names (the pull request's head); the git step checks out that
    revision."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    head = commit(repo, "feature")
    git(repo, "checkout", "-q", "main")
    with open(repo / "other.txt", "w") as f:
        f.write("main moved on\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-q", "-m", "main moved on")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge into main", "feature")
    merge = git(repo, "rev-parse", "HEAD")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "update-ref", "refs/pull/7/merge", merge)
    git(repo, "update-ref", "refs/pull/7/head", head)
    s = Site.__new__(Site)
    s.master, s.port, s.backend = master, free_port(), "sqlite"
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(GIT_CONFIG % {"pb": master.pb_port, "www": s.port, "repo": repo,
                              "db": "sqlite:///state.sqlite"})
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    got = {}
    for builder in ("github", "incremental"):
        b = s.wait_request(s.force(builder, branch="refs/pull/7/merge", revision=head)[1])
        assert b["results"] == 0, (builder, b)
        props = s.get(f"builds/{b['buildid']}/properties")["properties"][0]
        got[builder] = props["got_revision"][0]
    assert got == {"github": merge, "incremental": head}


def test_a_failed_checkout_halts_the_build_as_buildbot_source_steps_do(master, workers,
                                                                        tmp_path):
    """Buildbot's source steps default to haltOnFailure = True: a checkout that fails ends
    the build; haltOnFailure = false lets the next step run."""
    s = Site.__new__(Site)
    s.master, s.port, s.backend = master, free_port(), "sqlite"
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(GIT_CONFIG % {"pb": master.pb_port, "www": s.port, "repo": tmp_path / "repo",
                              "db": "sqlite:///state.sqlite"})
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    halted = s.wait_request(s.force("halts")[1])
    assert halted["results"] == 2
    assert [st[1:4:2] for st in s.steps(halted["buildid"])][1:] == [("git", 2)]
    went_on = s.wait_request(s.force("goes-on")[1])
    assert went_on["results"] == 2
    assert [st[1:4:2] for st in s.steps(went_on["buildid"])][1:] == [("git", 2), ("show", 2)]


STEPS_CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  uploadRoots = { "%(root)s" },
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "transfers", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "make files", command =
        "mkdir -p sub && head -c 20971520 /dev/urandom > big.bin && echo hi > sub/a.txt" },
      bbm.steps.file_upload{ workersrc = "big.bin", masterdest = "uploads/big.bin" },
      bbm.steps.directory_upload{ workersrc = "sub", masterdest = "%(root)s/subdir",
        compress = "gz" },
      bbm.steps.file_download{ mastersrc = "uploads/big.bin", workerdest = "copy.bin" },
      bbm.steps.string_download{ s = bbm.interpolate("build %%(prop:buildnumber)s\n"),
        workerdest = "str.txt", mode = 384 },
      bbm.steps.mkdir{ dir = "build/newdir" },
      bbm.steps.rmdir{ dir = "build/newdir" },
      bbm.steps.copy_directory{ src = "build/sub", dest = "build/sub2" },
      bbm.steps.file_exists{ file = "build/str.txt" },
      bbm.steps.shell{ name = "check", command =
        "cmp big.bin copy.bin && cat str.txt && stat -c %%a str.txt && cat sub2/a.txt && test ! -e newdir" },
      bbm.steps.master_shell_command{ command = { "sh", "-c", "cat %(root)s/subdir/a.txt; echo err >&2" } },
      bbm.steps.multiple_file_upload{ workersrcs = { "sub/*.txt", "su?" }, glob = true,
        masterdest = "uploads/multi" },
      bbm.steps.remove_worker_file_secret{ populated_secret_list = {
        { "build/str.txt", "s" }, { "build/copy.bin", "s" } } },
    } },
    bbm.builder{ name = "parent", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } },
      bbm.steps.trigger{ schedulerNames = { "trig" }, waitForFinish = true,
        set_properties = { from_parent = bbm.interpolate("%%(prop:buildnumber)s"),
          level = "from the step" },
        copy_properties = { "outcome" } },
      bbm.steps.trigger{ schedulerNames = { "trig" }, set_properties = { reason = "by hand" } },
    } },
    bbm.builder{ name = "child", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "echo", bbm.interpolate("%%(prop:from_parent:-none)s") } },
    } },
    bbm.builder{ name = "escape", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = "echo x > f" },
      bbm.steps.file_upload{ workersrc = "f", masterdest = bbm.interpolate("%%(prop:dest)s") },
    } },
    bbm.builder{ name = "outputs", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "50MB", command =
        "head -c 50000000 /dev/zero | tr '\\0' x | fold -w 100" },
      bbm.steps.shell{ name = "not utf-8", command = { "printf", "caf\\351 \\377\\n" } },
      bbm.steps.shell{ name = "silent", command = { "sleep", "30" }, timeout = 2 },
      bbm.steps.shell{ name = "decoded", alwaysRun = true, logfiles = { extra = "extra.log" },
        decodeRC = { [0] = 0, [3] = 1 },
        command = "echo one > extra.log; echo two >> extra.log; exit 3" },
      bbm.steps.master_shell_command{ name = "on master", command = "exit 3",
        alwaysRun = true, flunkOnFailure = false },
    } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force",
      builderNames = { "transfers", "escape", "outputs", "parent" },
      properties = { bbm.params.string{ name = "dest" }, bbm.params.string{ name = "outcome" } } },
    bbm.schedulers.triggerable{ name = "trig", builderNames = { "child" },
      properties = { level = "child" } },
  },
}
'''


@pytest.fixture
def steps_site(master, workers, tmp_path, backend):
    root = tmp_path / "root"
    root.mkdir()
    s = Site.__new__(Site)
    s.master, s.port, s.backend, s.root = master, free_port(), backend, root
    db = "sqlite:///state.sqlite" if backend == "sqlite" else backend
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(STEPS_CONFIG % {"pb": master.pb_port, "www": s.port, "root": root, "db": db})
    master.start()
    s.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    return s


def stdio(s, buildid, number):
    chunks = s.get(f"builds/{buildid}/steps/{number}/logs/stdio/contents")["logchunks"]
    return "".join(c["content"] for c in chunks)


def test_transfer_and_directory_steps(steps_site):
    """Every transfer and worker-directory command: a 20 MB uploadFile, uploadDirectory
    (gz), downloadFile of it back, a string download with a mode, mkdir, rmdir, cpdir,
    stat; a master_shell_command on the master; glob, stat and both uploads for a
    multiple_file_upload; rmfile."""
    s = steps_site
    b = s.wait_request(s.force("transfers")[1])
    assert b["results"] == 0, s.steps(b["buildid"])
    assert [x[1:4] for x in s.steps(b["buildid"])][1:] == [
        ("make files", "'mkdir -p ...'", 0), ("upload", "uploading big.bin", 0),
        ("upload_1", "uploading sub", 0), ("download", "downloading to copy.bin", 0),
        ("string_download", "downloading to str.txt", 0), ("MakeDirectory", "Created", 0),
        ("RemoveDirectory", "Deleted", 0), ("CopyDirectory", "Copied build/sub to build/sub2", 0),
        ("FileExists", "File found.", 0), ("check", "'cmp big.bin ...'", 0),
        ("MasterShellCommand", "Ran", 0), ("upload_2", "uploading 2 files", 0),
        ("RemoveWorkerFileSecret", "finished", 0)]
    worker_file = os.path.join(s.worker.dir, "transfers", "build", "big.bin")
    assert not os.path.exists(os.path.join(s.worker.dir, "transfers", "build", "str.txt"))
    with open(worker_file, "rb") as a, open(os.path.join(s.master.dir, "uploads", "big.bin"),
                                             "rb") as m:
        assert a.read() == m.read()
    assert (s.root / "subdir" / "a.txt").read_text() == "hi\n"
    multi = os.path.join(s.master.dir, "uploads", "multi")
    assert sorted(os.listdir(multi)) == ["a.txt", "sub"]
    assert open(os.path.join(multi, "sub", "a.txt")).read() == "hi\n"
    check = stdio(s, b["buildid"], 10)
    assert "obuild 1" in check and "o600" in check and "ohi" in check
    ran = stdio(s, b["buildid"], 11)
    assert "ohi\n" in ran and "eerr\n" in ran and "** RUNNING ON BUILDMASTER **" in ran


@pytest.mark.parametrize("dest", ["../outside", "/etc/bbm-test", "uploads/../../x"])
def test_upload_outside_the_roots_refused(steps_site, dest):
    s = steps_site
    b = s.wait_request(s.force("escape", dest=dest)[1])
    assert b["results"] == 4 and s.steps(b["buildid"])[2][3] == 4
    err = s.get(f"builds/{b['buildid']}/steps/2/logs/err_text/contents")["logchunks"]
    assert "outside" in err[0]["content"] or "'..'" in err[0]["content"]
    assert not os.path.exists(os.path.join(os.path.dirname(s.master.dir), "outside"))


def test_trigger(steps_site):
    """trigger with waitForFinish: the child buildset as Buildbot makes it (reason,
    parent_buildid, waited_for, properties from the scheduler then the step's set_properties
    and copy_properties, the scheduler's winning a clash), the step's
    summary and URLs once the child is done; without waitForFinish the step ends at once."""
    s = steps_site
    bsid, brid = s.force("parent", outcome="warm")
    b = s.wait_request(brid)
    assert (b["results"], b["state_string"]) == (0, "build successful")
    assert [x[1:4] for x in s.steps(b["buildid"])][2:] == [
        ("trigger", "triggered trig, 1 success", 0), ("trigger_1", "triggered trig", 0)]
    rows = s.query("SELECT id, reason, parent_buildid, parent_relationship FROM buildsets "
                   "WHERE parent_buildid = ? ORDER BY id", b["buildid"])
    assert [r[1:] for r in rows] == [
        ("The Triggerable scheduler named 'trig' triggered this build", b["buildid"],
         "Triggered from"), ("by hand", b["buildid"], "Triggered from")]
    assert s.query("SELECT waited_for FROM buildrequests WHERE buildsetid IN (?, ?) ORDER BY id",
                   rows[0][0], rows[1][0]) == [(1,), (0,)]
    assert s.query("SELECT property_name, property_value FROM buildset_properties "
                   "WHERE buildsetid = ?", rows[0][0]) == [
        ("level", '["child", "Scheduler"]'), ("scheduler", '["trig", "Scheduler"]'),
        ("from_parent", '["1", "Trigger"]'), ("outcome", '["warm", "Trigger"]')]
    child_brid = s.query("SELECT id FROM buildrequests WHERE buildsetid = ?", rows[0][0])[0][0]
    child = s.get(f"buildrequests/{child_brid}/builds")["builds"][0]
    step = s.get(f"builds/{b['buildid']}/steps/2")["steps"][0]
    assert [u["name"] for u in step["urls"]] == [
        f"trig #{child['buildrequestid']}", f"success: child #{child['number']}"]
    assert "o1\n" in stdio(s, child["buildid"], 1)


def test_big_output_non_utf8_and_timeout(steps_site, why=""):
    """50 MB of stdout lands whole in the log, in chunks of at most 64 KiB; bytes that
    are not UTF-8 arrive as the worker decodes them; a step without output for longer
    than its timeout is killed by the worker and fails (`why`: what the summary adds when
    the worker says why it killed the command, as 4.x workers do)."""
    s = steps_site
    b = s.wait_request(s.force("outputs")[1])
    assert (b["results"], b["state_string"]) == (2, f"failed 'sleep 30' (failure){why}")
    logs = s.get(f"builds/{b['buildid']}/steps/1/logs")["logs"]
    assert logs[0]["num_lines"] >= 500000
    assert s.query("SELECT max(last_line - first_line + 1) < 1000, count(*) > 700 "
                   "FROM logchunks WHERE logid = ?", logs[0]["logid"]) == [(1, 1)]
    raw = s.raw(logs[0]["logid"])
    assert raw.count(b"x" * 100 + b"\n") == 500000
    assert "ocaf\ufffd \ufffd" in stdio(s, b["buildid"], 2)
    assert "command timed out: 2 seconds without output" in stdio(s, b["buildid"], 3)
    decoded = s.steps(b["buildid"])[4]
    assert decoded[1:4] == ("decoded", "'echo one ...' (warnings)", 1)
    extra = s.get(f"builds/{b['buildid']}/steps/4/logs/extra/contents")["logchunks"]
    assert "".join(c["content"] for c in extra) == "oone\notwo\n"
    assert s.steps(b["buildid"])[5][1:4] == ("on master", "failed (3) (failure)", 2)
    assert "hexit status 3\n" in stdio(s, b["buildid"], 5)


ORDER_CONFIG = r'''local bbm = require "bbm"
local function gate() return io.open("%(gate)s") ~= nil end
local step = bbm.steps.shell{ name = "work", command = { "sleep", "0.5" } }
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  collapseRequests = false,
  workers = { bbm.worker("w1", "pw", { max_builds = 1 }), bbm.worker("w2", "pw", { max_builds = 1 }) },
  builders = {
    bbm.builder{ name = "x", workernames = { "w1", "w2" }, canStartBuild = gate,
      factory = bbm.factory{ step }, %(custom)s },
    bbm.builder{ name = "y", workernames = { "w1", "w2" }, canStartBuild = gate,
      factory = bbm.factory{ step }, %(custom_y)s },
  },
  %(prioritize)s
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "x", "y" } } },
}
'''

NEXT_BUILD = r'''
  nextBuild = function(builder, requests)
    table.sort(requests, function(a, b) return a.id > b.id end)
    return requests[1]
  end'''
CUSTOM = NEXT_BUILD + r''',
  nextWorker = function(builder, workers, request) return workers[#workers] end'''

PRIORITIZE = r'''
  select_next_worker = function(builder, workers, request) return workers[#workers].name end,
  prioritizeBuilders = function(master, builders)
    table.sort(builders, function(a, b) return a.name > b.name end)
    return builders
  end,'''


@pytest.mark.parametrize("custom", [False, True], ids=["buildbot-order", "lua-functions"])
def test_builder_order(master, backend, workers, tmp_path, custom):
    """Requests x1, then y2 and x3 a second later, are held back by canStartBuild; x4
    comes a second later, once it allows them.
    Buildbot's order: builders by their oldest request, each starting all it can before
    the next, so x1 and x3 take both workers and y2 waits although older than x3; as
    builds end, y2 (older) goes before x4.  With master.lua's prioritizeBuilders (y
    first), nextBuild (newest first), x's nextWorker and master.lua's select_next_worker for
    y (the last offered): y2 on w2, x4 on w1, then x3, then x1.  No request collapses:
    collapseRequests = false at the top."""
    site = Site(master, backend, tmp_path, config=ORDER_CONFIG, gate=tmp_path / "gate",
                custom=CUSTOM if custom else "", custom_y=NEXT_BUILD if custom else "",
                prioritize=PRIORITIZE if custom else "")
    for name in ("w1", "w2"):
        workers(name, "pw", master.pb_port).start()
    master.wait_log(ATTACHED)
    master.wait_log(r"worker 'w2' attached")
    x1 = site.force(builder="x")[1]
    time.sleep(1.1)  # submitted_at counts seconds; a tie goes to the builder's name
    y2, x3 = site.force(builder="y")[1], site.force(builder="x")[1]
    assert all(site.build_of(brid) is None for brid in (x1, y2, x3))
    time.sleep(1.1)
    open(tmp_path / "gate", "w").close()
    x4 = site.force(builder="x")[1]
    builds = {brid: site.wait_request(brid) for brid in (x1, y2, x3, x4)}
    order = sorted(builds, key=lambda brid: builds[brid]["buildid"])
    assert all(b["results"] == 0 for b in builds.values())
    workername = {brid: site.get(f"workers/{b['workerid']}")["workers"][0]["name"]
                  for brid, b in builds.items()}
    if custom:
        assert order == [y2, x4, x3, x1]
        assert (workername[y2], workername[x4]) == ("w2", "w1")
    else:
        assert order == [x1, x3, y2, x4]
        assert (workername[x1], workername[x3]) == ("w1", "w2")


TWICE_CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "pw") },
  builders = {
    bbm.builder{ name = "x", workernames = { "w1", "w1" }, workername = "w1",
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } },
      nextWorker = function(builder, workers, request)
        local f = io.open("%(offered)s", "a")
        f:write(#workers, "\n")
        f:close()
        return workers[1]
      end },
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "x" } } },
}
'''


def test_worker_named_twice(master, backend, workers, tmp_path):
    """Buildbot 4.3 accepts a worker named more than once in a builder's workernames (and
    workername): the builder is linked to it once and nextWorker is offered it once."""
    site = Site(master, backend, tmp_path, config=TWICE_CONFIG, offered=tmp_path / "offered")
    workers("w1", "pw", master.pb_port).start()
    master.wait_log(ATTACHED)
    b = site.wait_request(site.force(builder="x")[1])
    assert b["results"] == 0
    assert (tmp_path / "offered").read_text() == "1\n"
    [w] = site.get("workers")["workers"]
    assert [c["builderid"] for c in w["configured_on"]] == [b["builderid"]]
    assert site.query("SELECT COUNT(*) FROM configured_workers") == [(1,)]


# CPython's Test step (buildmaster-config's custom/steps.py) ported line by line: its
# evaluateCommand override sets properties that later steps test.
EVALUATE_CONFIG = r'''local bbm = require "bbm"
local R = bbm.results
local function cpython_test(command)
  return bbm.steps.test{ command = command, descriptionSuffix = { "on", "3.x" },
    warningPattern = ".*(?:Warning -- |FAIL: )", warnOnWarnings = true,
    decodeRC = { [0] = R.SUCCESS, [5] = R.WARNINGS },
    evaluateCommand = function(step, cmd)
      if cmd.didFail then
        step:setProperty("test_failed_to_build", true)
        step:setProperty("want_xml_upload", true)
      elseif cmd.results == R.WARNINGS then
        local tags = {}
        for _, t in ipairs(step.builder.tags) do tags[t] = true end
        if tags["stable"] and tags["3.x"] then step:setProperty("want_xml_upload", true) end
      end
      return cmd.results
    end }
end
local upload = bbm.steps.shell{ name = "upload", command = { "true" },
  doStepIf = function(props) return props:getProperty("want_xml_upload") == true end }
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "stable", workernames = { "w1" }, tags = { "stable", "3.x" },
      factory = bbm.factory{
        cpython_test{ "sh", "-c", "echo 'Warning -- leak'; echo ok; exit 5" }, upload,
        bbm.steps.compile{ name = "many", command = { "sh", "-c", "echo w: a; echo w: b" },
          warningPattern = "^w: ", maxWarnCount = 1, updateBuildSummaryPolicy = false } } },
    bbm.builder{ name = "unstable", workernames = { "w1" }, tags = { "3.x" },
      factory = bbm.factory{ cpython_test{ "sh", "-c", "echo 'FAIL: x'; exit 5" }, upload,
        bbm.steps.compile{ name = "fewer", command = { "sh", "-c", "echo w: a" },
          warningPattern = "^w: ", maxWarnCount = 1 } } },
    bbm.builder{ name = "broken", workernames = { "w1" }, tags = { "stable", "3.x" },
      factory = bbm.factory{ cpython_test{ "sh", "-c", "exit 2" }, upload } },
  },
  schedulers = { bbm.schedulers.force{ name = "force",
    builderNames = { "stable", "unstable", "broken" } } },
}
'''


def test_evaluate_command_and_warning_limits(master, workers, tmp_path):
    """evaluateCommand(step, cmd) sees decodeRC's and the warnings' result, sets
    properties a later doStepIf reads and gives the step's result; maxWarnCount fails a
    step with more warnings; descriptionSuffix follows the description;
    updateBuildSummaryPolicy keeps a step out of the build's summary."""
    site = Site(master, "sqlite", tmp_path, config=EVALUATE_CONFIG)
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    result = {}
    for builder in ("stable", "unstable", "broken"):
        b = site.wait_request(site.force(builder=builder)[1])
        props = site.get(f"builds/{b['buildid']}/properties")["properties"][0]
        result[builder + " summary"] = b["state_string"]
        result[builder] = (b["results"], site.steps(b["buildid"]),
                           {k: v for k, v in props.items()
                            if k in ("want_xml_upload", "test_failed_to_build")})
    assert result["stable"] == (2, [
        (0, "worker_preparation", "worker w1 ready", 0, False),
        (1, "test", "test on 3.x (warnings)", 1, False),
        (2, "upload", "'true'", 0, False),
        (3, "many", "compile (failure)", 2, False)], {"want_xml_upload": [True, "Step"]})
    # updateBuildSummaryPolicy = false keeps "many" out of the build's summary
    assert result["stable summary"] == "failed test on 3.x (warnings)"
    assert result["unstable"] == (1, [
        (0, "worker_preparation", "worker w1 ready", 0, False),
        (1, "test", "test on 3.x (warnings)", 1, False),
        (2, "upload", "'true' (skipped)", 3, False),
        (3, "fewer", "compile (warnings)", 1, False)], {})
    assert result["broken"][0] == 2
    assert result["broken"][1][1:] == [(1, "test", "test on 3.x (failure)", 2, False),
                                       (2, "upload", "'true'", 0, False)]
    assert result["broken"][2] == {"want_xml_upload": [True, "Step"],
                                   "test_failed_to_build": [True, "Step"]}


COMPRESSION_CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  logCompressionMethod = "%(method)s",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "talk", workernames = { "w1" }, factory = bbm.factory{
    bbm.steps.shell{ name = "talk", command = { "sh", "-c",
      "i=0; while [ $i -lt 300 ]; do echo \"test_$i ... ok (0.0$i s) caf\u{e9}\"; i=$((i+1)); done" } } } } },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "talk" } } },
}
'''


def test_log_compression_methods_as_buildbot(master, workers):
    """logCompressionMethod: each of Buildbot's methods (changed by a reconfig, as Buildbot
    reads it at each chunk) writes its own logchunks.compressed code, which Buildbot's own
    decoders (Debian's Buildbot 3.7 has 0 to 3) and /api/v2 read back."""
    from buildbot.db.logs import LogsConnectorComponent
    www = free_port()
    want = "".join(f"test_{i} ... ok (0.0{i} s) caf\u00e9\n" for i in range(300)).encode()
    codes = {"raw": 0, "gz": 1, "bz2": 2, "lz4": 3, "zstd": 4, "br": 5}
    for n, method in enumerate(["gz", "bz2", "lz4", "br", "raw", "zstd"]):
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(COMPRESSION_CONFIG % {"pb": master.pb_port, "www": www, "method": method})
        if n == 0:
            master.start()
            workers("w1", "w1pass", master.pb_port).start()
            master.wait_log(ATTACHED)
        else:
            master.cli("reconfig", master.dir, check=0)
        status, body = api_rpc(www, "forceschedulers/force", "force", builderNames=["talk"])
        assert status == 200, body
        wait_for(lambda: len(api_get(www, "builders/talk/builds?complete=true")["builds"])
                 == n + 1, what=f"build {n + 1} with {method}")
        build = api_get(www, f"builders/talk/builds/{n + 1}")["builds"][0]
        assert build["results"] == 0
        logid = api_get(www, f"builds/{build['buildid']}/steps/talk/logs/stdio")["logs"][0]["logid"]
        rows = db_rows(master.dir, "sqlite", "SELECT compressed, content FROM logchunks "
                       "WHERE logid = ? ORDER BY first_line", logid)
        assert {code for code, _ in rows} == {codes[method]}, (method, rows)
        if codes[method] in LogsConnectorComponent.COMPRESSION_BYID:
            read = LogsConnectorComponent.COMPRESSION_BYID[codes[method]]["read"]
            lines = b"\n".join(read(bytes(content)) for _, content in rows).split(b"\n")
            assert b"".join(line[1:] + b"\n" for line in lines if line[:1] == b"o") == want, \
                method
        with urllib.request.urlopen(f"http://127.0.0.1:{www}/api/v2/logs/{logid}/raw",
                                    timeout=60) as r:
            assert want in r.read(), method
