"""bbworker, the C worker, against bbmaster: `create-worker` writes the directory
Debian's buildbot-worker writes, and the builds that test_builds.py runs with
buildbot-worker run with bbworker with the same steps, results and logs (a multi-step
build with properties and warnings, a build stopped mid-command, the master stopped and
killed mid-build, the worker killed mid-step, every transfer and directory step, 50 MB
of output, non-UTF-8 bytes, a timeout, logfiles); Debian's Buildbot 3.7 master runs the
same build with bbworker as with buildbot-worker; plus the shell
command's details: env expansion, want_stdout, non-UTF-8 output, logfiles, a flood of output
(batched, with back-pressure), a timeout, and the worker-directory commands."""

import os
import re
import signal
import subprocess

import pytest

import test_builds as tb
from conftest import REPO, SANITIZED, free_port, pid_alive, read, wait_for

BBWORKER = os.environ.get("BBWORKER", os.path.join(os.path.dirname(os.environ.get(
    "BBMASTER", os.path.join(REPO, "build", "src", "bbmaster"))), "..", "worker", "bbworker"))


class BBWorker:
    """A bbworker process in the foreground, with the interface of conftest.Worker."""

    def __init__(self, basedir, name, password, port, opts=()):
        self.dir = str(basedir)
        self.env = dict(os.environ)
        if SANITIZED:
            self.env["ASAN_OPTIONS"] = f"log_path={self.dir}.asan:detect_leaks=1"
            self.env["UBSAN_OPTIONS"] = f"log_path={self.dir}.ubsan:print_stacktrace=1"
            self.env["TSAN_OPTIONS"] = f"log_path={self.dir}.tsan"
        subprocess.run([BBWORKER, "create-worker", "-q", "--umask=0o22", *opts, self.dir,
                        f"127.0.0.1:{port}", name, password], check=True, capture_output=True,
                       env=self.env)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([BBWORKER, "start", "--nodaemon", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=self.env)
        return self

    def log(self):
        return read(os.path.join(self.dir, "twistd.log"))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGTERM):
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def sanitizer_reports(self):
        d = os.path.dirname(self.dir)
        base = os.path.basename(self.dir)
        return [read(os.path.join(d, f)) for f in os.listdir(d)
                if f.startswith(base + ".") and "san" in f]


@pytest.fixture
def bbworkers(tmp_path, request):
    made = []

    def make(name, password, port, opts=()):
        w = BBWorker(tmp_path / f"bbworker-{name}-{len(made)}", name, password, port, opts)
        made.append(w)
        return w

    yield make
    for w in made:
        w.kill()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(f"---- bbworker log {w.dir} ----\n" + w.log()[-4000:])
    for w in made:
        reports = w.sanitizer_reports()
        assert not reports, "bbworker sanitizer reports:\n" + "\n".join(reports)


def test_create_worker_writes_what_buildbot_worker_writes(tmp_path):
    """The same buildbot.tac byte for byte (options included) and the same info/ files;
    run again over an edited tac it writes buildbot.tac.new, as buildbot-worker does."""
    opts = ["--umask=0o22", "--keepalive=30", "--maxretries=5", "--numcpus=3",
            "--allow-shutdown=file", "--delete-leftover-dirs", "--log-count=4",
            "--log-size=1000"]
    for name, prog in (("py", "buildbot-worker"), ("c", BBWORKER)):
        subprocess.run([prog, "create-worker", "-q", *opts, str(tmp_path / name),
                        "[::1]:9999", "it's", 'p"w\\'], check=True, capture_output=True)
    for f in ("buildbot.tac", "info/admin", "info/host"):
        py, c = tmp_path / "py" / f, tmp_path / "c" / f
        assert c.read_bytes().replace(b"/c'", b"/py'") == py.read_bytes(), f
        assert oct(c.stat().st_mode) == oct(py.stat().st_mode), f
    tac = tmp_path / "c" / "buildbot.tac"
    tac.write_text(tac.read_text().replace("keepalive = 30", "keepalive = 60"))
    r = subprocess.run([BBWORKER, "create-worker", str(tmp_path / "c"), "h:1", "n", "p"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "creating buildbot.tac.new instead" in r.stdout
    assert "keepalive = 60" in tac.read_text()
    assert (tmp_path / "c" / "buildbot.tac.new").exists()
    r = subprocess.run([BBWORKER, "create-worker", str(tmp_path / "x"), "http://h", "n", "p"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "<master> is not a URL" in r.stderr


@pytest.fixture
def site(master, bbworkers, tmp_path):
    s = tb.Site(master, "sqlite", tmp_path)
    s.worker = bbworkers("w1", "w1pass", master.pb_port).start()
    master.wait_log(tb.ATTACHED)
    return s


def test_builds_like_buildbot_with_bbworker(site):
    """test_builds.test_builds_like_buildbot, with bbworker: every step, property, log
    line and result as with buildbot-worker; the worker's info reaches the master."""
    tb.test_builds_like_buildbot(site)
    info = site.get("workers/w1")["workers"][0]["workerinfo"]
    assert info["admin"] == "Your Name Here <admin@youraddress.invalid>\n"
    assert info["version"].startswith("3.7.0-bbworker-")
    assert f"basedir: '{site.worker.dir}'" in site.master.log()
    assert "Connected to buildmaster; worker is ready" in site.worker.log()


def test_stop_with_bbworker(site):
    """test_builds.test_stop_and_cancel with bbworker: interruptCommand kills the process
    group and the build ends CANCELLED with Buildbot's words."""
    tb.test_stop_and_cancel(site)


FEATURES = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "features", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "env", env = { GREETING = "hi ${BBW_TEST_VAR}",
          PYTHONPATH = { "/a", "/b" }, BBW_GONE = bbm.interpolate("") },
        command = "echo \"$GREETING|$PYTHONPATH|$PWD\"; echo in >&2; cat" ,
        initialStdin = "from stdin\n" },
      bbm.steps.shell{ name = "quiet", want_stdout = false,
        command = "echo not-sent; echo sent >&2" },
      bbm.steps.shell{ name = "bytes", command = { "printf", "caf\\351 \\377\\npartial" } },
      bbm.steps.shell{ name = "flood", command =
        "i=0; while [ $i -lt 20000 ]; do echo line $i of the flood with some text to make it longer; i=$((i+1)); done" },
      bbm.steps.mkdir{ dir = "build/newdir/deep" },
      bbm.steps.shell{ name = "touch", command = { "touch", "newdir/deep/f" } },
      bbm.steps.copy_directory{ src = "build/newdir", dest = "build/copied" },
      bbm.steps.rmdir{ dir = "build/newdir" },
      bbm.steps.file_exists{ file = "build/copied/deep/f" },
      bbm.steps.shell{ name = "check", command = "test -d copied/deep && test ! -e newdir" },
      bbm.steps.shell{ name = "silent", command = { "sleep", "30" }, timeout = 1 },
      bbm.steps.shell{ name = "missing", command = { "/nonexistent/prog" }, alwaysRun = true },
      bbm.steps.shell{ name = "prepare", alwaysRun = true,
        command = "echo old > tail.log; echo stale > extra.log" },
      bbm.steps.shell{ name = "logs", alwaysRun = true, decodeRC = { [0] = 0, [3] = 1 },
        logfiles = { extra = "extra.log", tail = { filename = "tail.log", follow = true } },
        command = "echo one > extra.log; echo two >> extra.log; echo new >> tail.log; exit 3" },
      bbm.steps.shell{ name = "pty", alwaysRun = true, usePTY = true,
        command = "test -t 1 && test -t 0 && echo on a terminal; echo to-stderr >&2" },
      bbm.steps.shell{ name = "pty stdin", alwaysRun = true, usePTY = true,
        initialStdin = "x", command = { "cat" } },
      bbm.steps.shell{ name = "tree", alwaysRun = true, command = "mkdir -p tree/x/y " ..
        "tree/.h && touch tree/a.txt tree/x/b.txt tree/x/y/c.txt tree/.h/d.txt tree/x/e.c" },
      bbm.steps.multiple_file_upload{ workersrcs = { "tree/**/*.txt" }, glob = true,
        masterdest = "uploads/rec", alwaysRun = true },
      bbm.steps.shell{ name = "many lines", alwaysRun = true, max_lines = 5, command =
        "i=0; while [ $i -lt 100000 ]; do echo line $i; i=$((i+1)); done; echo survived" },
    } },
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "features" } } },
}
'''


def test_shell_details_and_directory_commands(master, bbworkers, tmp_path, monkeypatch):
    monkeypatch.setenv("BBW_TEST_VAR", "there")
    s = tb.Site(master, "sqlite", tmp_path, config=FEATURES)
    s.worker = bbworkers("w1", "w1pass", master.pb_port)
    with open(os.path.join(s.worker.dir, "info", "host"), "wb") as f:
        f.write(b"caf\xe9 box\n")  # an owner's Latin-1 file: sent as valid text
    s.worker.start()
    master.wait_log(tb.ATTACHED)
    info = s.get("workers/w1")["workers"][0]["workerinfo"]
    assert info["host"] == "caf\ufffd box\n"
    b = s.wait_request(s.force("features")[1])
    steps = s.steps(b["buildid"])
    assert [x[1:4] for x in steps][1:11] == [
        ("env", "'echo \"$GREETING|$PYTHONPATH|$PWD\"; ...'", 0), ("quiet", "'echo not-sent; ...'", 0),
        ("bytes", "'printf caf\\351 \\377\\npartial'", 0), ("flood", "'i=0; while ...'", 0),
        ("MakeDirectory", "Created", 0), ("touch", "'touch newdir/deep/f'", 0), ("CopyDirectory", "Copied build/newdir to build/copied", 0),
        ("RemoveDirectory", "Deleted", 0), ("FileExists", "File found.", 0),
        ("check", "'test -d ...'", 0)], steps
    assert steps[11][1:4] == ("silent", "'sleep 30' (failure) (timed out)", 2), steps
    assert steps[12][1] == "missing" and steps[12][3] == 4, steps
    workdir = os.path.join(s.worker.dir, "features", "build")
    env = tb.stdio(s, b["buildid"], 1)
    assert f"ohi there|/a:/b:{os.environ.get('PYTHONPATH', '')}|{workdir}\n" in env
    assert "ein\n" in env and "ofrom stdin\n" in env
    assert "h writing 11 bytes to stdin\n" in env and "h using PTY: False\n" in env
    assert "hprogram finished with exit code 0" in env
    quiet = tb.stdio(s, b["buildid"], 2)
    assert "esent\n" in quiet and "onot-sent" not in quiet
    out = tb.stdio(s, b["buildid"], 3)  # the master ends the unfinished line at complete
    assert "ocaf\ufffd \ufffd\n" in out and out.endswith("\nopartial\n")
    flood = tb.stdio(s, b["buildid"], 4)
    lines = [l for l in flood.split("\n") if l.startswith("o")]
    assert lines == [f"oline {i} of the flood with some text to make it longer"
                     for i in range(20000)]
    silent = tb.stdio(s, b["buildid"], 11)
    assert "command timed out: 1 seconds without output running [b'sleep', b'30']" in silent
    assert "process killed by signal 9" in silent
    assert steps[14][1:4] == ("logs", "'echo one ...' (warnings)", 1), steps
    def log(name):
        chunks = s.get(f"builds/{b['buildid']}/steps/14/logs/{name}/contents")["logchunks"]
        return "".join(c["content"] for c in chunks)
    assert log("extra") == "oone\notwo\n"
    # follow: reading starts at the size the file has when its change is first seen (as
    # buildbot-worker's LogFileWatcher), here at the end: nothing, not even "old", is sent
    logs = s.get(f"builds/{b['buildid']}/steps/14/logs")["logs"]
    assert sorted(l["name"] for l in logs) == ["extra", "stdio"]
    header = re.search(r"h watching logfiles (.*)\n", tb.stdio(s, b["buildid"], 14)).group(1)
    assert "'extra': 'extra.log'" in header and "'follow': True" in header
    assert steps[15][1:4] == ("pty", "'test -t ...'", 0), steps
    pty = tb.stdio(s, b["buildid"], 15)
    assert "oon a terminal\noto-stderr\n" in pty and "h using PTY: True\n" in pty, pty
    # what bbworker cannot do as asked ends the step in EXCEPTION, with the reason
    assert steps[16][1] == "pty stdin" and steps[16][3] == 4, steps
    assert "initial_stdin with usePTY is not supported" in tb.stdio(s, b["buildid"], 16)
    # glob with `**` as Python's recursive glob: any depth, zero included, no hidden dirs
    assert steps[18][3] == 0, steps
    assert sorted(os.listdir(os.path.join(master.dir, "uploads", "rec"))) == \
        ["a.txt", "b.txt", "c.txt"]
    # max_lines (sent to a worker whose shell is 3.3): past it the command is killed and
    # the worker says why (failure_reason), as buildbot-worker 4.x does
    assert steps[19][1:4] == ("many lines", "'i=0; while ...' (failure) (max lines)", 2), steps
    many = tb.stdio(s, b["buildid"], 19)
    assert re.search(r"hcommand exceeds max lines: \d+/5 written/allowed running "
                     r"\[b'/bin/sh', b'-c', b'i=0; while", many), many
    assert "process killed by signal" in many and "osurvived" not in many
    assert len([l for l in many.split("\n") if l.startswith("oline ")]) < 100000
    assert not os.path.exists(os.path.join(workdir, "newdir"))
    assert os.path.isdir(os.path.join(workdir, "copied", "deep"))


def test_master_stop_and_kill_mid_build_with_bbworker(site, master):
    """test_builds.test_master_stop_and_kill_mid_build with bbworker: the command is
    interrupted at a clean stop, killed silently when the connection drops, and the
    worker logs in again (Buildbot's back-off) each time the master comes back."""
    tb.test_master_stop_and_kill_mid_build(site, master)
    assert len(re.findall(r"Connected to buildmaster; worker is ready", site.worker.log())) == 3
    assert "abandoned: the master is gone" in site.worker.log()


def test_worker_killed_mid_step_retries_with_bbworker(site, master):
    """test_builds.test_worker_killed_mid_step_retries with bbworker (SIGKILL, restart)."""
    tb.test_worker_killed_mid_step_retries(site, None, master)


FLOOD = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "flood", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "flood", command =
        "head -c 40000000 /dev/zero | tr '\\0' x | fold -w 99" },
    } },
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "flood" } } },
}
'''


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def test_output_back_pressure(master, bbworkers, tmp_path):
    """A master that stops reading (SIGSTOP) does not make bbworker buffer a flooding
    child's output: the worker stops reading the child's pipe, its memory stays bounded,
    and once the master reads again every line arrives."""
    s = tb.Site(master, "sqlite", tmp_path, config=FLOOD)
    s.worker = bbworkers("w1", "w1pass", master.pb_port).start()
    master.wait_log(tb.ATTACHED)
    _, brid = s.force("flood")
    pid = master.pid()
    wait_for(lambda: "command 0: started process" in s.worker.log(), what="the flood to start")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: "command 0: output waits for the master" in s.worker.log(),
                 what="the worker to stop reading")
        before = rss_kb(s.worker.proc.pid)
        # the child is blocked on a full pipe: the worker does not grow while it waits
        assert before < (200_000 if SANITIZED else 40_000), before
    finally:
        os.kill(pid, signal.SIGCONT)
    b = s.wait_request(brid)
    assert b["results"] == 0
    logs = s.get(f"builds/{b['buildid']}/steps/1/logs")["logs"]
    assert logs[0]["num_lines"] >= 404041  # 40,000,000 / 99 lines + the headers
    raw = s.raw(logs[0]["logid"])
    assert raw.count(b"x" * 99 + b"\n") == 404040


def test_start_refuses_what_it_cannot_do(tmp_path):
    """A tac asking for a connection bbworker cannot make (a unix: endpoint) is refused,
    never replaced by another; a computed setting is refused with FILE:LINE."""
    d = tmp_path / "w"
    subprocess.run([BBWORKER, "create-worker", "-q", "--connection-string=tcp:h:1",
                    str(d), "h:1", "n", "p"], check=True)
    tac = d / "buildbot.tac"
    tac.write_text(tac.read_text().replace("'tcp:h:1'", "'unix:path=/run/master.sock'"))
    r = subprocess.run([BBWORKER, "start", "--nodaemon", str(d)], capture_output=True,
                       text=True, timeout=30)
    line = tac.read_text().split("\n").index("connection_string = 'unix:path=/run/master.sock'")
    assert r.returncode == 1 and (f"{tac}:{line + 1}: connection_string: endpoint type 'unix' "
                                  "is not supported by bbworker") in r.stderr, r.stderr
    tac.write_text(tac.read_text().replace("'unix:path=/run/master.sock'", "'tcp:h:1'").replace(
        "passwd = 'p'", "passwd = open('/etc/pw').read()"))
    r = subprocess.run([BBWORKER, "start", "--nodaemon", str(d)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    line = tac.read_text().split("\n").index("passwd = open('/etc/pw').read()") + 1
    assert f"{tac}:{line}: passwd is not a literal bbworker can read" in r.stderr


@pytest.fixture
def steps_site(master, bbworkers, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    s = tb.Site.__new__(tb.Site)
    s.master, s.port, s.backend, s.root = master, free_port(), "sqlite", root
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(tb.STEPS_CONFIG % {"pb": master.pb_port, "www": s.port, "root": root,
                                   "db": "sqlite:///state.sqlite"})
    master.start()
    s.worker = bbworkers("w1", "w1pass", master.pb_port).start()
    master.wait_log(tb.ATTACHED)
    return s


def test_transfer_and_directory_steps_with_bbworker(steps_site):
    """test_builds.test_transfer_and_directory_steps with bbworker: a 20 MB uploadFile,
    uploadDirectory (gz), downloadFile, a string download with a mode, mkdir, rmdir,
    cpdir, stat, glob and rmfile, with the same results and files."""
    tb.test_transfer_and_directory_steps(steps_site)


def test_big_output_non_utf8_and_timeout_with_bbworker(steps_site):
    """test_builds.test_big_output_non_utf8_and_timeout with bbworker: 50 MB of stdout
    whole in the log, non-UTF-8 bytes replaced, a timeout (which bbworker, as 4.x
    workers do, says is why it killed the command: failure_reason), logfiles with
    decodeRC."""
    tb.test_big_output_non_utf8_and_timeout(steps_site, why=" (timed out)")


def test_builder_directories_and_leftovers(master, bbworkers):
    """setBuilderList creates each builder's directory; with --delete-leftover-dirs a
    directory no builder uses is removed, without it only reported (as buildbot-worker)."""
    master.configure({"w1": "pw", "w2": "pw"}, {"b1": ["w1", "w2"], "b2": ["w1", "w2"]})
    master.start()
    made = []
    for name, opts in (("w1", ["--delete-leftover-dirs"]), ("w2", [])):
        w = bbworkers(name, "pw", master.pb_port, opts)
        os.mkdir(os.path.join(w.dir, "old-builder"))
        made.append(w.start())
        master.wait_log(f"worker '{name}' attached")
    wait_for(lambda: not os.path.exists(os.path.join(made[0].dir, "old-builder")),
             what="the leftover directory of w1 to go")
    for w in made:
        assert all(os.path.isdir(os.path.join(w.dir, b)) for b in ("b1", "b2"))
    assert os.path.isdir(os.path.join(made[1].dir, "old-builder"))
    assert "I have a leftover directory 'old-builder'" in made[1].log()


BUILDBOT_CFG = r"""from buildbot.plugins import worker, util, steps, schedulers
c = BuildmasterConfig = {}
c['workers'] = [worker.Worker('bbworker', 'pw'), worker.Worker('buildbot-worker', 'pw')]
c['protocols'] = {'pb': {'port': 'tcp:%(pb)d:interface=127.0.0.1'}}
c['logCompressionMethod'] = 'raw'
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
c['buildbotNetUsageData'] = None
f = util.BuildFactory()
f.addStep(steps.ShellCommand(name='hello', command=['sh', '-c',
    'echo hello; echo err >&2; printf "caf\\351 \\342\\234 no-newline"']))
f.addStep(steps.SetPropertyFromCommand(name='uname', command='uname -s', property='kernel'))
f.addStep(steps.StringDownload('payload\n', workerdest='d.txt', mode=0o600))
f.addStep(steps.FileUpload(workersrc='d.txt',
    masterdest=util.Interpolate('%%(prop:workername)s/up.txt')))
f.addStep(steps.ShellCommand(name='tree', command='mkdir -p t/sub && echo a > t/sub/a'))
f.addStep(steps.DirectoryUpload(workersrc='t',
    masterdest=util.Interpolate('%%(prop:workername)s/updir'), compress='gz'))
f.addStep(steps.MakeDirectory(dir='build/newdir'))
f.addStep(steps.FileExists(file='build/d.txt'))
f.addStep(steps.ShellCommand(name='warn', command='exit 3',
    decodeRC={0: util.SUCCESS, 3: util.WARNINGS}))
f.addStep(steps.ShellCommand(name='silent', command=['sleep', '30'], timeout=1))
c['builders'] = [util.BuilderConfig(name=w, workernames=[w], factory=f)
                 for w in ('bbworker', 'buildbot-worker')]
c['schedulers'] = [schedulers.Periodic(name='p', builderNames=['bbworker', 'buildbot-worker'],
                                       periodicBuildTimer=3600)]
"""


def test_buildbot_37_master_same_build_as_buildbot_worker(tmp_path):
    """Debian's Buildbot 3.7 master runs the same multi-step build (shell, a property from
    a command, a string download with a mode, file and directory uploads, mkdir, stat,
    decodeRC, a timeout) on bbworker and on buildbot-worker: the same results, the same
    step summaries, the same output lines, the same uploaded files."""
    import sqlite3
    mdir, port = tmp_path / "master37", free_port()
    subprocess.run(["buildbot", "create-master", "-q", str(mdir)], check=True,
                   capture_output=True)
    (mdir / "master.cfg").write_text(BUILDBOT_CFG % {"pb": port})
    procs = [subprocess.Popen(["buildbot", "start", "--nodaemon", str(mdir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    env = dict(os.environ)
    if SANITIZED:
        env["ASAN_OPTIONS"] = f"log_path={tmp_path}/bbworker.asan:detect_leaks=1"
        env["UBSAN_OPTIONS"] = f"log_path={tmp_path}/bbworker.ubsan:print_stacktrace=1"
    for prog in (BBWORKER, "buildbot-worker"):
        name = os.path.basename(prog)
        subprocess.run([prog, "create-worker", "-q", str(tmp_path / name),
                        f"127.0.0.1:{port}", name, "pw"], check=True, capture_output=True)
        procs.append(subprocess.Popen([prog, "start", "--nodaemon", str(tmp_path / name)],
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))

    def query(sql, *args):
        with sqlite3.connect(str(mdir / "state.sqlite")) as conn:
            return conn.execute(sql, args).fetchall()

    def build(name):
        """Its result, steps, the stdio lines that depend on no path, time or environment,
        and the files it uploaded."""
        bid = query("SELECT b.id FROM builds b JOIN builders r ON r.id = b.builderid "
                    "WHERE r.name = ?", name)[0][0]
        steps = query("SELECT number, name, results, state_string FROM steps "
                      "WHERE buildid = ? ORDER BY number", bid)
        lines = {}
        for number, content in query(
                "SELECT s.number, c.content FROM steps s JOIN logs l ON l.stepid = s.id "
                "JOIN logchunks c ON c.logid = l.id WHERE s.buildid = ? AND l.name = 'stdio' "
                "ORDER BY s.number, c.first_line", bid):
            text = content.decode() if isinstance(content, bytes) else content
            lines.setdefault(number, []).extend(
                l for l in text.split("\n")
                if l[:1] in ("o", "e") or re.match(r"h(program finished|process killed|"
                                                   r"command timed out)", l))
        up = mdir / name / "updir"
        files = sorted(os.path.relpath(os.path.join(d, f), up)
                       for d, _, fs in os.walk(up) for f in fs)
        return (query("SELECT results, state_string FROM builds WHERE id = ?", bid), steps,
                lines, (mdir / name / "up.txt").read_text(), files)
    try:
        wait_for(lambda: query("SELECT count(*) FROM builds WHERE complete_at IS NOT NULL")
                 == [(2,)], what="both builds on Buildbot 3.7")
        ours, theirs = build("bbworker"), build("buildbot-worker")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    reports = [read(os.path.join(tmp_path, f)) for f in os.listdir(tmp_path)
               if f.startswith("bbworker.") and "san" in f]
    assert not reports, "bbworker sanitizer reports:\n" + "\n".join(reports)
    assert theirs[0] == [(2, "failed 'sleep 30' (failure)")]
    assert "ohello" in theirs[2][1] and "eerr" in theirs[2][1], theirs[2]
    assert "ocaf\ufffd \ufffd no-newline" in theirs[2][1], theirs[2]
    assert any("command timed out: 1 seconds without output" in l for l in theirs[2][10])
    assert ours[0] == theirs[0]
    assert ours[1][0][3] == "worker bbworker ready"
    assert ours[1][1:] == theirs[1][1:]
    assert ours[2] == theirs[2]
    assert ours[3:] == theirs[3:] == ("payload\n", ["sub/a"])


def test_graceful_shutdown_with_bbworker(site):
    """test_builds.test_rebuild_and_graceful_shutdown with bbworker: told to stop
    gracefully, the worker ends its build, starts no other, and exits when the master
    calls its shutdown."""
    tb.test_rebuild_and_graceful_shutdown(site)
    assert site.worker.proc.returncode == 0
    assert "worker shutting down on command from master" in site.worker.log()
    assert not os.path.exists(os.path.join(site.worker.dir, "twistd.pid"))


def test_wrong_password_retries_and_maxretries(master, bbworkers):
    """A refused login (UnauthorizedLogin) is retried with back-off, as buildbot-worker
    does; with maxretries the worker gives up and exits 1."""
    master.configure({"w1": "right"}, {"b1": ["w1"]})
    master.start()
    w = bbworkers("w1", "wrong", master.pb_port, ["--maxretries=1"]).start()
    w.proc.wait(timeout=60)
    assert w.proc.returncode == 1
    log = w.log()
    assert log.count("unauthorized login; check worker name and password") == 2, log
    assert "giving up after 1 attempts (maxretries 1)" in log
    assert "worker 'w1' attached" not in master.log()


def test_start_stop_restart_daemonised(master, tmp_path):
    """`start` without --nodaemon detaches and writes twistd.pid; `restart` replaces the
    process; `stop` ends it and the pid file goes, as with buildbot-worker."""
    master.configure({"w1": "pw"}, {"b1": ["w1"]})
    master.start()
    d = str(tmp_path / "w")
    subprocess.run([BBWORKER, "create-worker", "-q", d, f"127.0.0.1:{master.pb_port}", "w1",
                    "pw"], check=True)
    pidfile = os.path.join(d, "twistd.pid")
    try:
        r = subprocess.run([BBWORKER, "start", d], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        master.wait_log("worker 'w1' attached")
        first = int(read(pidfile))
        r = subprocess.run([BBWORKER, "start", d], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and f"already running as pid {first}" in r.stderr
        r = subprocess.run([BBWORKER, "restart", d], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        master.wait_log("worker 'w1' attached", 2)
        second = int(read(pidfile))
        assert second != first and not pid_alive(first)
        r = subprocess.run([BBWORKER, "stop", d], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and f"worker process {second} is dead" in r.stdout
        assert not os.path.exists(pidfile)
    finally:
        text = read(pidfile).strip() if os.path.exists(pidfile) else ""
        if text.isdigit() and pid_alive(int(text)):
            os.kill(int(text), signal.SIGKILL)


def test_allow_shutdown_signal(master, bbworkers):
    """allow_shutdown = 'signal': SIGHUP asks the master for a graceful shutdown (the
    worker's `shutdown` call); the master then shuts the worker down, which exits 0."""
    master.configure({"w1": "pw"}, {"b1": ["w1"]})
    master.start()
    w = bbworkers("w1", "pw", master.pb_port, ["--allow-shutdown=signal"]).start()
    master.wait_log("worker 'w1' attached")
    wait_for(lambda: "Setting up SIGHUP handler" in w.log(), what="the SIGHUP handler")
    w.proc.send_signal(signal.SIGHUP)
    assert w.proc.wait(timeout=60) == 0
    log = w.log()
    assert "Telling the master we want to shutdown" in log
    assert "worker shutting down on command from master" in log
