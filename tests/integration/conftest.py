"""Fixtures for integration tests: a real bbmaster started through its command
line in a temporary directory, and real Debian buildbot-worker processes, on
free loopback ports.  Everything started is stopped at teardown, killed if it
must be.  When BBM_SANITIZED=1 the binary is an ASan/UBSan (or TSan) build: its
reports go to files in the test directory and any report fails the test."""

import collections
import glob
import json
import os
import random
import re
import signal
import sqlite3
import socket
import subprocess
import time
import urllib.error
import urllib.request

import psycopg2
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BBMASTER = os.environ.get("BBMASTER", os.path.join(REPO, "build", "src", "bbmaster"))
SANITIZED = os.environ.get("BBM_SANITIZED") == "1"
TIMEOUT = 60 if SANITIZED else 30


def port_range():
    """The ports this test process chooses from: 20000-32767, below Linux's ephemeral range
    (32768-60999), or the range BBM_PORT_RANGE ("LOW-HIGH") gives (two suites on one
    machine), split between the processes that run the tests side by side (pytest-xdist's
    gw0, gw1...), so that two of them never choose the same port."""
    low, high = 20000, 32767
    given = os.environ.get("BBM_PORT_RANGE", "")
    if re.fullmatch(r"\d+-\d+", given) and 1024 <= int(given.split("-")[0]) < \
            int(given.split("-")[1]) <= 65535:
        low, high = map(int, given.split("-"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        size = (high - low + 1) // count
        low += int(worker[2:]) * size
        high = low + size - 1
    return low, high


# the PostgreSQL servers that scripts/with-pg.sh starts for this process take theirs there too
os.environ["BBM_PORT_RANGE"] = "%d-%d" % port_range()


GIVEN = collections.deque(maxlen=2000)  # the ports free_port chose last, in this process


def free_port():
    """A TCP port that no socket uses right now on any address (a client connection from
    another loopback address, 127.0.0.2..., would keep a master from listening on it),
    below Linux's ephemeral range, so that no client connection made after the choice
    (the tests', the workers') can be given it before the master listens, and in this
    process's own share of the range (port_range).  Not one it chose lately either: a
    test takes several ports before anything listens on the first (a master's worker and
    web ports), and the same random pick twice made the master fail to start."""
    low, high = port_range()
    for _ in range(1000):
        port = random.randint(low, high)
        if port in GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            GIVEN.append(port)
            return port
    raise RuntimeError(f"no free port between {low} and {high}")


def wait_for(predicate, timeout=TIMEOUT, what="condition"):
    """Polls predicate() until it is true; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def read(path):
    """The file's text; "" when it is gone (or, under /proc, its process just exited)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def db_rows(master_dir, backend, sql, *args):
    """Rows of a query on a master's database: "sqlite" (its state.sqlite) or a PostgreSQL
    URL; `?` placeholders either way."""
    if backend == "sqlite":
        db = sqlite3.connect(os.path.join(master_dir, "state.sqlite"))
        rows = db.execute(sql, args).fetchall()
    else:
        db = psycopg2.connect(backend)
        with db.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), args)
            rows = cur.fetchall()
    db.close()
    return [tuple(r) for r in rows]


def api_get(port, path, timeout=60):
    """The JSON answer of GET /api/v2/PATH (an HTTP error fails the test)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/{path}", timeout=timeout) as r:
        return json.loads(r.read())


def api_rpc(port, path, method, **params):
    """A JSON-RPC control action POSTed to /api/v2/PATH: (HTTP status, the JSON answer)."""
    body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": method, "params": params})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/{path}", data=body.encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def lua_config(pb_port, workers, builders, extra=""):
    """master.lua text: workers is {name: password}, builders is {name: [workers]}."""
    ws = ",\n    ".join(f'bbm.worker("{n}", "{p}")' for n, p in workers.items())
    bs = ",\n    ".join(
        f'bbm.builder{{ name = "{n}", workernames = {{ {", ".join(repr(w) for w in wn)} }},'
        f' factory = bbm.factory{{ bbm.steps.shell{{ command = {{"true"}} }} }} }}'
        for n, wn in builders.items())
    return (f'local bbm = require "bbm"\nreturn {{\n  title = "test",\n'
            f'  protocols = {{ pb = {{ port = {pb_port} }} }},\n'
            f'  workers = {{\n    {ws}\n  }},\n  builders = {{\n    {bs}\n  }},\n{extra}}}\n')


class Master:
    """A bbmaster directory driven through the command line."""

    def __init__(self, basedir):
        self.dir = str(basedir)
        self.pb_port = free_port()
        self.launcher = []  # a command the master runs under, e.g. prlimit
        self.env = dict(os.environ)
        if SANITIZED:
            self.env["ASAN_OPTIONS"] = f"log_path={self.dir}/asan:detect_leaks=1"
            self.env["UBSAN_OPTIONS"] = f"log_path={self.dir}/ubsan:print_stacktrace=1"
            self.env["TSAN_OPTIONS"] = f"log_path={self.dir}/tsan"

    def cli(self, *args, check=None, cwd=None):
        r = subprocess.run([*self.launcher, BBMASTER, *args], capture_output=True, text=True,
                           env=self.env, timeout=120, cwd=cwd)
        if check is not None:
            assert r.returncode == check, f"{args}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def configure(self, workers, builders, extra=""):
        with open(os.path.join(self.dir, "master.lua"), "w") as f:
            f.write(lua_config(self.pb_port, workers, builders, extra))

    def start(self):
        self.cli("upgrade-master", self.dir, check=0)
        return self.cli("start", self.dir, check=0)

    def stop(self):
        return self.cli("stop", self.dir)

    def pid(self):
        text = read(os.path.join(self.dir, "bbmaster.pid")).strip()
        return int(text) if text else None

    def log(self):
        return read(os.path.join(self.dir, "bbmaster.log"))

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern, count=1):
        wait_for(lambda: self.count(pattern) >= count, what=f"master log: {pattern!r} x{count}")

    def sanitizer_reports(self):
        return [read(p) for p in glob.glob(os.path.join(self.dir, "*san*"))]


class Worker:
    """A real buildbot-worker, run in the foreground as a child process."""

    def __init__(self, basedir, name, password, port, keepalive=600):
        self.dir = str(basedir)
        subprocess.run(["buildbot-worker", "create-worker", "-q", "--umask=0o22",
                        f"--keepalive={keepalive}", self.dir, f"127.0.0.1:{port}", name,
                        password], check=True, capture_output=True)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["buildbot-worker", "start", "--nodaemon", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def log(self):
        return read(os.path.join(self.dir, "twistd.log"))

    def wait_log(self, pattern, count=1):
        wait_for(lambda: len(re.findall(pattern, self.log())) >= count,
                 what=f"worker log: {pattern!r} x{count}")

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


def failed(request):
    """True if the test body of this fixture's test failed."""
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


@pytest.fixture
def master(tmp_path, request):
    m = Master(tmp_path / "master")
    os.makedirs(m.dir)
    yield m
    pid = m.pid()
    m.stop()
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    if failed(request):
        print("---- master log ----\n" + m.log()[-6000:])
    reports = m.sanitizer_reports()
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)


class Postgres:
    """A throw-away PostgreSQL 15 cluster (scripts/with-pg.sh), or the one
    BBM_TEST_PG_URL names; each test gets databases of its own."""

    def __init__(self):
        self.dir = None
        self.url = os.environ.get("BBM_TEST_PG_URL")
        if not self.url:
            out = subprocess.run([os.path.join(REPO, "scripts", "with-pg.sh"), "--start"],
                                 capture_output=True, text=True, check=True).stdout.split()
            self.url, self.dir = out
        self.made = 0

    def admin(self, sql):
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-c", sql], check=True,
                       capture_output=True)

    def new_db(self):
        """The URL of a new, empty database."""
        self.made += 1
        name = f"bbm_test_{os.getpid()}_{self.made}"
        self.admin(f"DROP DATABASE IF EXISTS {name}")
        self.admin(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def close(self):
        if self.dir:
            subprocess.run([os.path.join(REPO, "scripts", "with-pg.sh"), "--stop", self.dir])


@pytest.fixture(scope="session")
def postgres():
    pg = Postgres()
    yield pg
    pg.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    """"sqlite", or the URL of a new PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite"
    return request.getfixturevalue("postgres").new_db()


@pytest.fixture
def workers(tmp_path, request):
    made = []

    def make(name, password, port, keepalive=600):
        w = Worker(tmp_path / f"worker-{name}-{len(made)}", name, password, port, keepalive)
        made.append(w)
        return w

    yield make
    for w in made:
        w.kill()
        if failed(request):
            print(f"---- worker log {w.dir} ----\n" + w.log()[-3000:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
