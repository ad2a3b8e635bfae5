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
shutdown the worker asks for, here with SIGHUP rather than shutdown.stamp's 10 s poll)."""

import json
import os
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


@pytest.mark.parametrize("session", list(SESSIONS))
def test_replay_recorded_master(tmp_path, session):
    password, last, opts = SESSIONS[session]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    wdir = str(tmp_path / "worker")
    env = dict(RECORDED_ENV)
    if SANITIZED:
        env["ASAN_OPTIONS"] = f"log_path={wdir}.asan:detect_leaks=1"
        env["UBSAN_OPTIONS"] = f"log_path={wdir}.ubsan:print_stacktrace=1"
    subprocess.run([BBWORKER, "create-worker", "-q", "--umask=0o22", *opts, wdir,
                    f"127.0.0.1:{port}", "w1", password], check=True, capture_output=True,
                   env=env)
    log = os.path.join(wdir, "twistd.log")
    worker = subprocess.Popen([BBWORKER, "start", "--nodaemon", wdir], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listener.settimeout(30)
        conn, _ = listener.accept()
        conn.settimeout(30)
        got = b""
        index = 0  # of the worker's expressions
        for m in recorded(session, last):
            raw = bytes.fromhex(m["hex"])
            if m["dir"] == "m2w":
                conn.sendall(raw)
                continue
            if session == "session4-worker-shutdown" and m["n"] == 18:
                # the owner asks: once logged in (the respond answer taken), SIGHUP
                wait_for(lambda: "worker is ready" in read(log), what="the login")
                worker.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while (exprs := expressions(got)) is None or len(exprs) <= index:
                assert time.monotonic() < deadline, f"no answer for #{m['n']}: {m['pb']}"
                chunk = conn.recv(65536)
                assert chunk, f"bbworker closed the connection before #{m['n']}: {m['pb']}"
                got += chunk
            ours = exprs[index]
            index += 1
            if m["n"] == 12:
                compare_worker_info(ours, raw, wdir)
            else:
                assert ours == raw, (f"#{m['n']} {m['pb']}\n ours:     {ours.hex()}\n"
                                     f" recorded: {raw.hex()}")
        # nothing more than what buildbot-worker sent
        conn.settimeout(0.3)
        try:
            extra = conn.recv(65536)
        except socket.timeout:
            extra = b""
        assert extra == b"", extra
        if session == "session4-worker-shutdown":
            assert worker.wait(timeout=10) == 0  # it stops by itself, as asked
        conn.close()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        listener.close()
    if session == "session2-badlogin":
        assert "unauthorized login; check worker name and password" in read(log)
    else:
        assert "message from master: attached" in read(log)
    if session == "session4-worker-shutdown":
        assert "worker shutting down on command from master" in read(log)
    reports = [read(os.path.join(tmp_path, f)) for f in os.listdir(tmp_path) if "san" in f]
    assert not reports, "\n".join(reports)
