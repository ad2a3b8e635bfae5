"""Helpers the benchmarks share: processes, ports, /proc figures, HTTP and JSON-RPC,
and masters (bbmaster or Buildbot) with real buildbot-workers attached."""

import json
import os
import shutil
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ../shared beside the repository, or BBM_SHARED_DIR (as meson's shared_dir option)
SHARED = os.environ.get("BBM_SHARED_DIR", os.path.join(REPO, "..", "shared"))
WWW_STUB = os.path.join(SHARED, "tools", "buildbot-www-stub")
MB = 1048576
# The worker program the masters get: Debian's buildbot-worker, or bbworker
# (BENCH_WORKER=build/worker/bbworker, or a bench's --workers bbworker), which takes
# the same command line.
WORKER = os.environ.get("BENCH_WORKER", "buildbot-worker")
WORKER_CHOICES = ("buildbot-worker", "bbworker")


def worker_program(choice, bbmaster=None):
    """The program for --workers CHOICE: Debian's buildbot-worker, or the bbworker
    built beside `bbmaster` (build/worker/bbworker)."""
    if choice == "buildbot-worker":
        return "buildbot-worker"
    build = (os.path.dirname(os.path.dirname(os.path.abspath(bbmaster))) if bbmaster
             else os.path.join(REPO, "build"))
    path = os.path.join(build, "worker", "bbworker")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path}: no bbworker there (make build)")
    return path


def say(*a):
    print(*a, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(url, timeout=60):
    """(status, body bytes); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def get_json(url):
    status, body = http_get(url)
    return json.loads(body) if status == 200 else None


def rpc(url, method, **params):
    body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": method, "params": params})
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def run(cmd, what, env=None):
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(f"{what} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return time.monotonic() - t


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def median(values):
    return statistics.median(values) if values else float("nan")


class Master:
    """A master directory run through its command line: bbmaster, or Buildbot
    (with the www stand-in that serves /api/v2) when `binary` is None."""

    def __init__(self, workdir, binary, lua, cfg, worker=None, prepare=None):
        """`prepare(dir)`, when given, is called on bbmaster's new directory before its
        master.lua is written (to put the modules it requires there)."""
        self.bin = binary
        self.worker = worker or WORKER
        self.name = "bbmaster" if binary else "Buildbot"
        self.dir = os.path.join(workdir, self.name.lower())
        self.pb, self.www = free_port(), free_port()
        self.env = dict(os.environ, PYTHONPATH=WWW_STUB)
        if binary:
            os.makedirs(self.dir)
            if prepare is not None:
                prepare(self.dir)
            with open(os.path.join(self.dir, "master.lua"), "w") as f:
                f.write(lua(self.pb, self.www))
            run([binary, "upgrade-master", self.dir], "bbmaster upgrade-master")
        else:
            run(["buildbot", "create-master", "-q", self.dir], "buildbot create-master")
            with open(os.path.join(self.dir, "master.cfg"), "w") as f:
                f.write(cfg(self.pb, self.www))
            run(["buildbot", "upgrade-master", self.dir], "buildbot upgrade-master",
                env=self.env)
        self.workers = []

    @property
    def api(self):
        return f"http://127.0.0.1:{self.www}/api/v2"

    def start(self):
        if self.bin:
            run([self.bin, "start", self.dir], "bbmaster start")
        else:
            run(["buildbot", "start", "--start_timeout=900", self.dir], "buildbot start",
                env=self.env)
        deadline = time.monotonic() + 300
        while get_json(f"{self.api}/builders") is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: the API did not answer")
            time.sleep(0.2)

    def pid(self):
        name = "bbmaster.pid" if self.bin else "twistd.pid"
        with open(os.path.join(self.dir, name)) as f:
            return int(f.read())

    def add_worker(self, name, password):
        wdir = os.path.join(os.path.dirname(self.dir), f"{self.name.lower()}-{name}")
        run([self.worker, "create-worker", "-q", "--umask=0o22", wdir,
             f"127.0.0.1:{self.pb}", name, password], f"{self.worker} create-worker")
        run([self.worker, "start", wdir], f"{self.worker} start")
        self.workers.append(wdir)

    def wait_workers(self, n, seconds=120):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            workers = (get_json(f"{self.api}/workers") or {}).get("workers", [])
            if sum(1 for w in workers if w.get("connected_to")) >= n:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: {n} workers did not attach")

    def stop(self):
        for w in self.workers:
            subprocess.run([self.worker, "stop", w], capture_output=True)
        if self.bin:
            subprocess.run([self.bin, "stop", self.dir], capture_output=True)
        else:
            subprocess.run(["buildbot", "stop", self.dir], capture_output=True)


def have_buildbot():
    return shutil.which("buildbot") is not None and os.path.isdir(WWW_STUB)
