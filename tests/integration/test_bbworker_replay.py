"""bbworker against recorded Buildbot 3.7 masters (../shared/fixtures/pb): the master's
frames are played back to a real bbworker over TCP, in the recorded order, and each frame
bbworker answers with is compared with what buildbot-worker 3.7 sent in the same place:
the dialect and version, the login and its challenge response, the DECREF of the login's
perspective, the answers to print, setBuilderList and startBuild, the perspective's
shutdown() and the answer to the master's, byte for byte; getWorkerInfo's answer by its
shape (the same keys in the same order, the same types, the same environment and info
files), its host-specific values (basedir, numcpus, version, the os_* of this host,
command versions) apart. Sessions: 1 up to startBuild (from startCommand on, output and
timing vary), 2 (a wrong password: nothing after the refused respond), 4 (a graceful
shutdown the worker asks for, here with SIGHUP rather than shutdown.stamp's 10 s poll);
and 3 (a command interrupted) up to startCommand's answer byte for byte, then the interrupt
by what its updates say (test_replay_interrupted_command)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, SANITIZED, read, wait_for
from test_bbworker import BBWORKER

# the protocol research beside the repository (meson's shared_dir), or BBM_SHARED_DIR
SHARED = os.environ.get("BBM_SHARED_DIR", os.path.join(REPO, "..", "shared"))
FIXTURES = os.path.join(SHARED, "fixtures", "pb")
sys.path.insert(0, os.path.join(SHARED, "spec", "pb", "tools"))
import pbdecode  # noqa: E402 (its own decoder, standard library only)

SESSIONS = {  # name: (password, the last message replayed, create-worker options)
    "session1-build": ("pass1", 21, []),
    "session2-badlogin": ("wrongpass", 10, []),
    "session4-worker-shutdown": ("pass1", 21, ["--allow-shutdown=signal"]),
}
RECORDED_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp/pbcap", "LANG": "C.UTF-8"}
HOST_SPECIFIC = {"basedir", "numcpus", "version"}


def recorded(session, last):
    with open(os.path.join(FIXTURES, "transcript.json")) as f:
        msgs = json.load(f)[session]["messages"]
    return [m for m in msgs if m["n"] <= last]


def expressions(data):
    """The complete top-level expressions of a worker's stream so far."""
    try:
        return [data[s:e] for s, e, _ in pbdecode.tokenize(data)]
    except pbdecode.BananaError as e:
        if "truncated" in str(e) or "ends inside" in str(e):
            return None  # more is coming
        raise


def os_release():
    out = {}
    for line in read("/etc/os-release").splitlines():
        k, eq, v = line.partition("=")
        if eq and v and not k.startswith("#"):
            out["os_" + k.lower()] = v.strip('"')
    return out


def unjellied(raw):
    """The answer's (request id, dict as a list of (key, value)) of getWorkerInfo."""
    v = pbdecode.tokenize(raw, 0)[0][2]
    assert bytes(v[0]) == b"answer", v
    d = pbdecode.unjelly(v[2])
    return v[1], list(d.items)


def compare_worker_info(ours, theirs, wdir):
    req, mine = unjellied(ours)
    treq, recorded = unjellied(theirs)
    assert req == treq
    info = ["admin", "host"]
    # the same keys in the same order (info/ files in directory order, compared as a set)
    assert sorted(k for k, _ in mine[:2]) == info == sorted(k for k, _ in recorded[:2])
    assert [k for k, _ in mine[2:]] == [k for k, _ in recorded[2:]], (mine, recorded)
    m, r = dict(mine), dict(recorded)
    for k in info:
        assert m[k] == r[k], k
    for k in r:
        assert type(m[k]) is type(r[k]), (k, m[k], r[k])
        if k.startswith("os_"):
            assert m[k] == os_release()[k], k
        elif k == "environ":
            env = dict(m[k].items)
            for extra in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
                env.pop(extra, None)
            assert env == dict(r[k].items)
        elif k == "worker_commands":
            assert [c for c, _ in m[k].items] == [c for c, _ in r[k].items]
            assert {v for _, v in m[k].items} == {"3.3"}  # 4.x's (max_lines)
        elif k not in HOST_SPECIFIC:
            assert m[k] == r[k], k
    assert m["basedir"] == wdir and m["numcpus"] == os.cpu_count()


class Replay:
    """A real bbworker, created in `tmp_path` and started, connected to a listener that
    plays the recorded master: send() its frames, next() the worker's next expression."""

    def __init__(self, tmp_path, password, opts):
        self.tmp_path = tmp_path
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.wdir = str(tmp_path / "worker")
        env = dict(RECORDED_ENV)
        if SANITIZED:
            env["ASAN_OPTIONS"] = f"log_path={self.wdir}.asan:detect_leaks=1"
            env["UBSAN_OPTIONS"] = f"log_path={self.wdir}.ubsan:print_stacktrace=1"
        subprocess.run([BBWORKER, "create-worker", "-q", "--umask=0o22", *opts, self.wdir,
                        f"127.0.0.1:{port}", "w1", password], check=True,
                       capture_output=True, env=env)
        self.log = os.path.join(self.wdir, "twistd.log")
        self.worker = subprocess.Popen([BBWORKER, "start", "--nodaemon", self.wdir], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.conn = None
        self.got = b""
        self.index = 0  # of the worker's expressions

    def __enter__(self):
        self.listener.settimeout(30)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(30)
        return self

    def __exit__(self, *exc):
        if self.conn is not None:
            self.conn.close()
        self.worker.terminate()
        self.worker.wait(timeout=30)
        self.listener.close()

    def send(self, raw):
        self.conn.sendall(raw)

    def next(self, what):
        deadline = time.monotonic() + 30
        while (exprs := expressions(self.got)) is None or len(exprs) <= self.index:
            assert time.monotonic() < deadline, f"no answer for {what}"
            chunk = self.conn.recv(65536)
            assert chunk, f"bbworker closed the connection before {what}"
            self.got += chunk
        self.index += 1
        return exprs[self.index - 1]

    def replay(self, session, last, before=None):
        """The recorded frames up to #last: the master's sent, the worker's compared (by
        shape for getWorkerInfo's answer, else byte for byte); before(n) runs before the
        worker's frame #n is awaited."""
        for m in recorded(session, last):
            raw = bytes.fromhex(m["hex"])
            if m["dir"] == "m2w":
                self.send(raw)
                continue
            if before is not None:
                before(m["n"])
            ours = self.next(f"#{m['n']}: {m['pb']}")
            if m["n"] == 12:
                compare_worker_info(ours, raw, self.wdir)
            else:
                assert ours == raw, (f"#{m['n']} {m['pb']}\n ours:     {ours.hex()}\n"
                                     f" recorded: {raw.hex()}")

    def nothing_more(self):
        """Nothing more than what buildbot-worker sent, whether already read or not."""
        self.conn.settimeout(0.3)
        try:
            extra = self.conn.recv(65536)
        except socket.timeout:
            extra = b""
        taken = sum(len(e) for e in (expressions(self.got) or [])[:self.index])
        left = self.got[taken:] + extra
        assert left == b"", left

    def sanitizers_quiet(self):
        reports = [read(os.path.join(self.tmp_path, f)) for f in os.listdir(self.tmp_path)
                   if "san" in f]
        assert not reports, "\n".join(reports)


@pytest.mark.parametrize("session", list(SESSIONS))
def test_replay_recorded_master(tmp_path, session):
    password, last, opts = SESSIONS[session]
    with Replay(tmp_path, password, opts) as r:
        def owner_asks(n):
            if session == "session4-worker-shutdown" and n == 18:
                # the owner asks: once logged in (the respond answer taken), SIGHUP
                wait_for(lambda: "worker is ready" in read(r.log), what="the login")
                r.worker.send_signal(signal.SIGHUP)
        r.replay(session, last, owner_asks)
        r.nothing_more()
        if session == "session4-worker-shutdown":
            assert r.worker.wait(timeout=10) == 0  # it stops by itself, as asked
    if session == "session2-badlogin":
        assert "unauthorized login; check worker name and password" in read(r.log)
    else:
        assert "message from master: attached" in read(r.log)
    if session == "session4-worker-shutdown":
        assert "worker shutting down on command from master" in read(r.log)
    r.sanitizers_quiet()


def call_of(raw):
    """A worker's call as (request id, method, its arguments unjellied), or None for an
    answer."""
    v = pbdecode.tokenize(raw, 0)[0][2]
    if bytes(v[0]) != b"message":
        return None
    return v[1], bytes(v[3]).decode(), pbdecode.unjelly(v[5])


def update_items(args, wdir):
    """The (stream, value) items of an update's list, the worker's directory and the
    elapsed seconds made neutral."""
    out = []
    for d, _ in args[0]:
        for k, v in d.items:
            if isinstance(v, str):
                v = v.replace(wdir, "WORKER")
                v = re.sub(r"elapsedTime=[0-9.]+", "elapsedTime=N", v)
            out.append((k, v))
    return out


def joined(items):
    """Adjacent text of the same stream joined: the master appends it to the same log."""
    out = []
    for k, v in items:
        if out and isinstance(v, str) and out[-1][0] == k and isinstance(out[-1][1], str):
            out[-1] = (k, out[-1][1] + v)
        else:
            out.append((k, v))
    return out


def sleeping(worker_pid):
    """Whether the recorded command's `sleep 60` runs under the worker."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if read(f"/proc/{pid}/cmdline") != "sleep\x0060\x00":
                continue
            ppid = pid
            while ppid not in ("0", "1"):
                ppid = read(f"/proc/{ppid}/stat").rsplit(")", 1)[1].split()[1]
                if ppid == str(worker_pid):
                    return True
        except IndexError:
            continue
    return False


def test_replay_interrupted_command(tmp_path):
    """Session 3: a build runs `sh -c 'echo started; sleep 60; echo never'`, and the
    master's shutdown interrupts it (interruptCommand '0', 'Master Shutdown').  bbworker
    answers the interrupt as buildbot-worker 3.7 did, kills the command, and reports the
    same: the command's header, `started`, "command interrupted, attempting to kill /
    process killed by signal 9", rc -1 and the elapsed time, then complete(None).  The
    updates are compared item by item whatever calls carry them (bbworker sends output on
    its own schedule, where buildbot-worker held `started` in its 5 s buffer), the
    worker's directory and the seconds apart.  The recorded worker's keepalive (every 4 s
    there) is left out."""
    session, recorded_msgs = "session3-interrupt", recorded("session3-interrupt", 41)
    by_n = {m["n"]: m for m in recorded_msgs}
    items, calls = [], []

    def answer(raw):
        call = call_of(raw)
        assert call is not None, raw
        req, method, args = call
        calls.append(method)
        if method == "update":
            items.extend(update_items(args, r.wdir))
        r.send(pbdecode.encode([pbdecode.Sym(b"answer"), req,
                                0 if method == "update" else [pbdecode.Sym(b"None")]]))
        return method

    with Replay(tmp_path, "pass1", []) as r:
        r.replay(session, 25)  # up to startCommand's answer
        wait_for(lambda: sleeping(r.worker.pid), what="the command's sleep")
        r.send(bytes.fromhex(by_n[28]["hex"]))  # interruptCommand('0', 'Master Shutdown')
        while True:
            raw = r.next("the interrupt's answer")
            if call_of(raw) is None:
                assert raw == bytes.fromhex(by_n[29]["hex"])  # answer req=9 None
                break
            answer(raw)
        while answer(r.next("complete()")) != "complete":
            pass
        # the master's command object is let go once complete() is sent: buildbot-worker's
        # decref comes when Python collects it, which the recorded master's shutdown beat
        assert r.next("the decref") == pbdecode.encode([pbdecode.Sym(b"decref"), 3])
        r.nothing_more()
        assert not sleeping(r.worker.pid)  # killed, with its shell
    theirs = []
    for n in range(30, 35):
        theirs.extend(update_items(call_of(bytes.fromhex(by_n[n]["hex"]))[2],
                                   "/tmp/pbcap/worker"))
    assert joined(items) == joined(theirs)
    assert calls[-1] == "complete" and "keepalive" not in calls
    assert call_of(bytes.fromhex(by_n[35]["hex"]))[2] == (None,)
    r.sanitizers_quiet()
