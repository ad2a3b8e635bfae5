"""A worker that misbehaves, and builds stopped while they wait for others.  The worker
is Debian's buildbot-worker, logged in normally, with the command implementations that
tests/integration/hostile_worker.py patches: it calls the master's writer out of order,
sends archives with links and escaping names, answers globs with paths it must not,
and floods a step with log names.  Whatever it does, its step ends as Buildbot's would
(EXCEPTION for a broken protocol), nothing is written outside the destination, and the
master goes on serving the API and running builds.  Then: a master_shell_command
given a force-form value meant for the shell; stopping a build whose trigger step waits
for its child, by the API and by SIGTERM, and a clean restart after it.

One master and one worker serve the whole module; each test checks that the master
made no sanitizer report so far."""

import os
import signal
import subprocess

import pytest

from conftest import Master, api_get, api_rpc, Worker, failed, free_port, pid_alive, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = r'''local bbm = require "bbm"
local p = function(name) return bbm.interpolate("%%(prop:" .. name .. ")s") end
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  uploadRoots = { "%(root)s" },
  workers = { bbm.worker("w1", "w1pass", { max_builds = 3 }) },
  builders = {
    bbm.builder{ name = "upload_dir", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.directory_upload{ workersrc = p("trick"),
        masterdest = bbm.interpolate("%(root)s/%%(prop:dest)s") } } },
    bbm.builder{ name = "upload_dir_gz", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.directory_upload{ workersrc = p("trick"), compress = "gz",
        masterdest = bbm.interpolate("%(root)s/%%(prop:dest)s") } } },
    bbm.builder{ name = "upload_file", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.file_upload{ workersrc = p("trick"),
        masterdest = bbm.interpolate("%(root)s/%%(prop:dest)s") } } },
    bbm.builder{ name = "glob", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.multiple_file_upload{ workersrcs = { bbm.interpolate("%%(prop:trick)s/*") },
        glob = true, masterdest = "%(root)s/multi/dest" } } },
    bbm.builder{ name = "logs", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "echo", "spam-logs" },
        logfiles = { declared = "declared.log" } } } },
    bbm.builder{ name = "mastercmd", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.master_shell_command{ command =
        bbm.interpolate("echo %%(prop:a)s %%(prop:b)s > '%(root)s/said'") } } },
    bbm.builder{ name = "parent", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.trigger{ schedulerNames = { "trig" }, waitForFinish = true } } },
    bbm.builder{ name = "child", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "wait", command = "test -e '%(root)s/go' || sleep 300" } } },
    bbm.builder{ name = "quick", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "refused", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "echo", "setup-fails" } },
      bbm.steps.shell{ name = "after", command = { "true" }, alwaysRun = true } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "upload_dir", "upload_dir_gz",
      "upload_file",
      "glob", "logs", "mastercmd", "parent", "quick", "refused" },
      properties = { bbm.params.string{ name = "trick" }, bbm.params.string{ name = "dest" },
        bbm.params.string{ name = "a" }, bbm.params.string{ name = "b" } } },
    bbm.schedulers.triggerable{ name = "trig", builderNames = { "child" } },
  },
}
'''


class HostileWorker(Worker):
    """buildbot-worker started through hostile_worker.py."""

    def __init__(self, basedir, port, victim):
        super().__init__(basedir, "w1", "w1pass", port)
        self.victim = victim

    def start(self):
        env = dict(os.environ, BBM_VICTIM=str(self.victim))
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "hostile_worker.py"), self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        return self


class Site:
    def __init__(self, tmp):
        self.root = tmp / "root"
        self.victim = tmp / "victim-dir"
        self.root.mkdir()
        self.victim.mkdir()
        self.master = Master(tmp / "master")
        os.makedirs(self.master.dir)
        self.port = free_port()
        with open(os.path.join(self.master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": self.master.pb_port, "www": self.port, "root": self.root})
        self.master.start()
        self.worker = HostileWorker(tmp / "worker", self.master.pb_port, self.victim).start()
        self.master.wait_log("worker 'w1' attached")

    def rpc(self, path, method, **params):
        status, body = api_rpc(self.port, path, method, **params)
        assert status == 200, body
        return body["result"]

    def get(self, path):
        return api_get(self.port, path)

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

    def err_text(self, build, number):
        chunks = self.get(f"builds/{build['buildid']}/steps/{number}/logs/err_text/contents")
        return "".join(c["content"] for c in chunks["logchunks"])

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


def tree(path):
    """Every name under `path`, relative, links not followed."""
    out = []
    for d, dirs, files in os.walk(path):
        out += [os.path.relpath(os.path.join(d, n), path) for n in dirs + files]
    return sorted(out)


def still_serving(site):
    """The master answers the API and runs a build to the end."""
    assert site.get("builders")["builders"]
    assert site.run("quick")["results"] == 0


def test_start_command_refused(site):
    """A worker that answers startCommand with an error (buildbot-worker's UnknownCommand,
    or arguments its command cannot take) never calls complete: the step ends EXCEPTION
    at once with the worker's error, the build goes on to its alwaysRun step, as
    Buildbot's RemoteCommand ends on startCommand's errback."""
    b = site.run("refused")
    steps = site.steps(b)
    assert b["results"] == 4
    assert [(s["name"], s["results"]) for s in steps[1:]] == [("shell", 4), ("after", 0)]
    assert "setup-fails: this worker cannot run that" in site.err_text(b, 1)
    still_serving(site)


def test_unpack_twice(site):
    """The second unpack is a protocol error: the step ends EXCEPTION after the command,
    the first unpack's work is not freed twice (ASan), the master carries on."""
    b = site.run("upload_dir", trick="unpack-twice", dest="twice")
    assert (b["results"], site.steps(b)[1]["results"]) == (4, 4)
    assert "unpack after unpack" in site.err_text(b, 1)
    still_serving(site)


def test_links_in_archives_and_at_the_destination(site):
    """An archive holding a symbolic link is refused whole; a link already at the
    destination (planted by someone else) is never written through."""
    b = site.run("upload_dir", trick="plant-link", dest="planted")
    assert b["results"] == 4 and "symbolic link" in site.err_text(b, 1)
    assert tree(site.root / "planted") == [] and tree(site.victim) == []
    os.makedirs(site.root / "planted", exist_ok=True)
    os.symlink(site.victim, site.root / "planted" / "x")
    b = site.run("upload_dir", trick="through-link", dest="planted")
    assert b["results"] == 4 and "is a symbolic link" in site.err_text(b, 1)
    assert tree(site.victim) == [] and os.path.islink(site.root / "planted" / "x")
    assert [n for n in os.listdir(site.root) if n.startswith(".")] == []  # no staging left
    still_serving(site)


def test_escaping_names_refused(site):
    before = tree(site.root)
    b = site.run("upload_dir", trick="escape", dest="esc/inside")
    assert b["results"] == 4
    assert "'..'" in site.err_text(b, 1)
    assert tree(site.root) == sorted(before + ["esc"])  # its directory, made before
    assert tree(site.victim) == []
    still_serving(site)


def test_archive_entry_cap(site):
    b = site.run("upload_dir_gz", trick="many-entries", dest="many")
    assert b["results"] == 4 and "more than 100000 entries" in site.err_text(b, 1)
    assert not (site.root / "many").exists()


def test_directory_uploads_merge(site):
    """A plain upload (the worker's own code): files replaced, directories merged, what
    the destination held before kept; modes lose group and other write."""
    src = os.path.join(site.worker.dir, "upload_dir_gz", "build", "legit")
    os.makedirs(os.path.join(src, "sub"))
    for name, text in (("a.txt", "one\n"), ("sub/b.txt", "two\n")):
        with open(os.path.join(src, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(src, "a.txt"), 0o666)
    assert site.run("upload_dir_gz", trick="legit", dest="merged")["results"] == 0
    with open(os.path.join(src, "a.txt"), "w") as f:
        f.write("changed\n")
    os.remove(os.path.join(src, "sub", "b.txt"))
    with open(os.path.join(src, "sub", "c.txt"), "w") as f:
        f.write("three\n")
    assert site.run("upload_dir_gz", trick="legit", dest="merged")["results"] == 0
    dest = site.root / "merged"
    assert tree(dest) == ["a.txt", "sub", "sub/b.txt", "sub/c.txt"]
    assert (dest / "a.txt").read_text() == "changed\n"
    assert os.stat(dest / "a.txt").st_mode & 0o777 == 0o644


def test_destination_through_a_link_refused_before_anything_is_made(site):
    """A master path whose existing part leads out of the roots through a symbolic link
    is refused, and none of its missing directories is made (out there or here)."""
    os.symlink(site.victim, site.root / "out-link")
    b = site.run("upload_file", trick="anything", dest="out-link/new/sub/file")
    assert b["results"] == 4 and "outside" in site.err_text(b, 1)
    assert tree(site.victim) == []


@pytest.mark.parametrize("trick,error", [("write-after-close", "write after close"),
                                         ("close-twice", "close after close")])
def test_file_writer_out_of_order(site, trick, error):
    b = site.run("upload_file", trick=trick, dest=f"file-{trick}")
    assert (b["results"], site.steps(b)[1]["results"]) == (4, 4)
    assert error in site.err_text(b, 1)
    still_serving(site)


@pytest.mark.parametrize("trick,answer", [("glob-dotdot", ".."), ("glob-abs", "/etc/passwd")])
def test_glob_answers_are_not_paths(site, trick, answer):
    before = tree(site.root)
    b = site.run("glob", trick=trick)
    assert b["results"] == 4
    assert f"glob answered '{answer}'" in site.err_text(b, 1)
    assert tree(site.root) == sorted(set(before) | {"multi", "multi/dest"})
    still_serving(site)


def test_undeclared_logs_ignored(site):
    """20,000 log names from the worker: only the one the step declares becomes a log
    (Buildbot's RemoteCommand ignores the rest); the step succeeds."""
    b = site.run("logs")
    assert b["results"] == 0
    logs = site.get(f"builds/{b['buildid']}/steps/1/logs")["logs"]
    assert [l["name"] for l in logs] == ["stdio", "declared"]
    still_serving(site)


def test_master_shell_command_quotes_form_values(site):
    """A force-form value interpolated into a string master_shell_command reaches the
    command as one word: the injected command does not run, a plain value is as given."""
    pwned = site.root / "pwned"
    for a, b in (("hello", f"x; touch {pwned}"), ("it's", f"$(touch {pwned}) `touch {pwned}`")):
        assert site.run("mastercmd", a=a, b=b)["results"] == 0
        assert not pwned.exists()
        assert (site.root / "said").read_text() == f"{a} {b}\n"


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
