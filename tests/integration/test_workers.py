"""The master's life cycle and real Debian buildbot-workers logging in: attach
with worker info, wrong passwords and unknown names refused while the worker
keeps retrying, a killed worker noticed, reconnection after a master restart,
reconfig adding, changing and removing workers, duplicate logins, stop
always returning, and stop and reconfig run by `bbmaster` alone, without
`bbmaster-core` and the master's libraries."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request

from conftest import BBMASTER, free_port, pid_alive, read, wait_for

ATTACHED = r"worker 'w1' attached from 127\.0\.0\.1:\d+; version: '3\.7[^']*', system: 'posix'"


def start_with_w1(master, workers, builders=None):
    master.configure({"w1": "pass1"}, builders or {"b1": ["w1"]})
    master.start()
    w = workers("w1", "pass1", master.pb_port).start()
    master.wait_log(ATTACHED)
    return w


def test_create_checkconfig_start_attach_stop(master, workers):
    r = master.cli("create-master", master.dir, check=0)
    assert "buildmaster configured" in r.stdout
    assert "Config file is good!" in master.cli("checkconfig", master.dir, check=0).stdout
    w = start_with_w1(master, workers)
    w.wait_log(r"Connected to buildmaster; worker is ready")
    line = [l for l in master.log().splitlines() if "attached from" in l][-1]
    assert f"basedir: '{w.dir}'" in line
    assert "numcpus: " in line and "; 1 builder(s)" in line
    assert os.path.isdir(os.path.join(w.dir, "b1"))  # made by the worker on setBuilderList
    pid = master.pid()
    r = master.cli("stop", master.dir, check=0)
    assert "is dead" in r.stdout
    assert not pid_alive(pid)
    assert not os.path.exists(os.path.join(master.dir, "bbmaster.pid"))
    assert "Server Shut Down." in master.log()


def test_wrong_password_refused_and_worker_retries(master, workers):
    master.configure({"w1": "pass1"}, {"b1": ["w1"]})
    master.start()
    w = workers("w1", "wrong", master.pb_port).start()
    master.wait_log(r"worker 'w1' login refused from 127\.0\.0\.1:\d+: wrong password", 2)
    w.wait_log(r"unauthorized login; check worker name and password", 2)
    assert w.alive()
    assert "attached" not in master.log()


def test_unknown_worker_refused(master, workers):
    master.configure({"w1": "pass1"}, {"b1": ["w1"]})
    master.start()
    w = workers("ghost", "pass1", master.pb_port).start()
    master.wait_log(r"login from 127\.0\.0\.1:\d+ as unknown worker 'ghost' refused", 2)
    w.wait_log(r"unauthorized login")
    assert w.alive()


def test_killed_worker_is_noticed(master, workers):
    w = start_with_w1(master, workers)
    w.kill(signal.SIGKILL)
    master.wait_log(r"worker 'w1' detached \(127\.0\.0\.1:\d+\): connection closed by the worker")


def test_worker_reconnects_after_master_restart(master, workers):
    w = start_with_w1(master, workers)
    old = master.pid()
    master.cli("restart", master.dir, check=0)
    assert master.pid() != old
    master.wait_log(ATTACHED, 2)
    assert w.alive()


def test_reconfig_adds_changes_and_removes_workers(master, workers):
    w1 = start_with_w1(master, workers)
    w2 = workers("w2", "pass2", master.pb_port).start()
    master.wait_log(r"unknown worker 'w2' refused")
    # add w2 and give w1 a second builder
    master.configure({"w1": "pass1", "w2": "pass2"}, {"b1": ["w1"], "b2": ["w1", "w2"]})
    r = master.cli("reconfig", master.dir, check=0)
    assert "completed successfully" in r.stdout
    master.wait_log(r"worker 'w2' attached from")
    master.wait_log(r"worker 'w1': builders changed, sending a new builder list")
    wait_for(lambda: os.path.isdir(os.path.join(w1.dir, "b2")), what="w1 to create b2")
    # remove w2
    master.configure({"w1": "pass1"}, {"b1": ["w1"], "b2": ["w1"]})
    master.cli("reconfig", master.dir, check=0)
    master.wait_log(r"worker 'w2' is no longer configured: disconnecting it")
    master.wait_log(r"worker 'w2' detached")
    assert w2.alive()  # it keeps retrying, and is refused
    master.wait_log(r"unknown worker 'w2' refused", 2)
    # a broken config changes nothing
    with open(os.path.join(master.dir, "master.lua"), "a") as f:
        f.write("this is not lua\n")
    r = master.cli("reconfig", master.dir, check=1)
    assert "master.lua:" in r.stdout and "Reconfiguration failed" in r.stdout
    assert master.count(r"worker 'w1' detached") == 0
    assert pid_alive(master.pid())


def test_stop_returns_with_workers_connected(master, workers):
    start_with_w1(master, workers)
    pid = master.pid()
    r = master.cli("stop", "--timeout", "10", master.dir, check=0)
    assert "is dead" in r.stdout
    assert not pid_alive(pid)


def test_stop_and_reconfig_need_only_the_light_program(master, tmp_path):
    master.configure({"w1": "pass1"}, {"b1": ["w1"]})
    master.start()
    pid = master.pid()
    # start ran bbmaster-core in bbmaster's place: the same command line, the core's program
    assert os.readlink(f"/proc/{pid}/exe").endswith("/bbmaster-core")
    assert BBMASTER.encode() in read_bytes(f"/proc/{pid}/cmdline")
    lone = tmp_path / "bin" / "bbmaster"  # bbmaster without bbmaster-core beside it
    lone.parent.mkdir()
    shutil.copy(BBMASTER, lone)
    libs = subprocess.run(["ldd", str(lone)], capture_output=True, text=True).stdout
    assert "libuv" not in libs and "liblua" not in libs and "libsqlite3" not in libs, libs

    def run(*args):
        return subprocess.run([str(lone), *args], capture_output=True, text=True,
                              env=master.env, timeout=120)
    master.configure({"w1": "pass1", "w2": "pass2"}, {"b1": ["w1", "w2"]})
    r = run("reconfig", master.dir)
    assert r.returncode == 0 and "completed successfully" in r.stdout, r.stdout + r.stderr
    r = run("checkconfig", master.dir)  # a verb only bbmaster-core has
    assert r.returncode == 1 and "cannot run" in r.stderr and "bbmaster-core" in r.stderr
    r = run("stop", master.dir)
    assert r.returncode == 0 and "is dead" in r.stdout, r.stdout + r.stderr
    assert not pid_alive(pid)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_start_refuses_running_master_and_replaces_stale_pidfile(master, workers):
    master.configure({"w1": "pass1"}, {"b1": ["w1"]})
    master.start()
    r = master.cli("start", master.dir, check=1)
    assert "already running" in r.stderr
    master.cli("stop", master.dir, check=0)
    with open(os.path.join(master.dir, "bbmaster.pid"), "w") as f:
        f.write("999999\n")
    r = master.cli("start", master.dir, check=0)
    assert "removing stale pidfile" in r.stdout
    assert "appears to have (re)started correctly" in r.stdout


def test_start_with_broken_config_fails_with_the_error(master):
    master.configure({"w1": "pass1"}, {"b1": ["w9"]})
    r = master.cli("start", master.dir, check=1)
    assert "workernames names unknown worker 'w9'" in r.stdout
    assert "failed to start" in r.stdout
    assert not os.path.exists(os.path.join(master.dir, "bbmaster.pid"))


def test_duplicate_login_refused_while_first_answers(master, workers):
    first = start_with_w1(master, workers)
    second = workers("w1", "pass1", master.pb_port).start()
    master.wait_log(r"worker 'w1': refusing a second connection")
    # Buildbot's RuntimeError makes the Python worker give up, as with Buildbot
    wait_for(lambda: not second.alive(), what="the duplicate worker to exit")
    assert "rejecting duplicate worker" in second.log()
    assert first.alive()
    assert master.count(r"worker 'w1' detached") == 0


def test_checkconfig_reports_file_and_line(master):
    path = os.path.join(master.dir, "master.lua")
    with open(path, "w") as f:
        f.write('local bbm = require "bbm"\nreturn {\n'
                '  workers = { bbm.worker("w1", "p", { max_build = 1 }) },\n'
                '  protocols = { pb = { port = 0 } },\n}\n')
    r = master.cli("checkconfig", master.dir, check=1)
    assert f"{path}:3: bbm.worker: unknown parameter 'max_build'; did you mean 'max_builds'?" \
        in r.stderr
    assert f"{path}:4: protocols.pb.port must be between 1 and 65535, not 0" in r.stderr


def test_reconfig_moves_the_pb_port(master, workers):
    import socket
    from conftest import free_port
    w1 = start_with_w1(master, workers)
    old_port, master.pb_port = master.pb_port, free_port()
    master.configure({"w1": "pass1", "w2": "pass2"}, {"b1": ["w1", "w2"]})
    master.cli("reconfig", master.dir, check=0)
    master.wait_log(rf"listening for workers on 0\.0\.0\.0:{master.pb_port}")
    workers("w2", "pass2", master.pb_port).start()
    master.wait_log(r"worker 'w2' attached from")
    assert w1.alive() and master.count(r"worker 'w1' detached") == 0
    with socket.socket() as s:  # the old port is closed
        assert s.connect_ex(("127.0.0.1", old_port)) != 0
    # a port that is taken: the reconfig is refused and the master keeps its port
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        new_port, master.pb_port = master.pb_port, taken.getsockname()[1]
        master.configure({"w1": "pass1", "w2": "pass2"}, {"b1": ["w1", "w2"]})
        r = master.cli("reconfig", master.dir, check=1)
        assert "cannot listen for workers" in r.stdout
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", new_port)) == 0


def test_connected_workers_in_the_database_and_the_api(master, workers):
    """Buildbot's rows for a connected worker: connected_workers while it is attached
    (kept across a reconfig), workers.info with the four keys Buildbot keeps."""
    port = free_port()
    www = f"  www = {{ port = {port} }},\n"
    master.configure({"w1": "pass1", "w2": "pass2"}, {"b1": ["w1", "w2"]}, www)
    master.start()
    w = workers("w1", "pass1", master.pb_port).start()
    master.wait_log(ATTACHED)

    def worker(name):
        url = f"http://127.0.0.1:{port}/api/v2/workers/{name}"
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.loads(r.read())["workers"][0]

    w1 = worker("w1")
    masterid = w1["configured_on"][0]["masterid"]
    assert w1["connected_to"] == [{"masterid": masterid}]
    assert sorted(w1["workerinfo"]) == ["access_uri", "admin", "host", "version"]
    assert w1["workerinfo"]["version"].startswith("3.7") and w1["workerinfo"]["access_uri"] is None
    assert worker("w2")["connected_to"] == []
    master.configure({"w1": "pass1", "w2": "pass2"}, {"b1": ["w1"], "b2": ["w2"]}, www)
    master.cli("reconfig", master.dir, check=0)
    assert worker("w1")["connected_to"] == [{"masterid": masterid}]
    w.kill()
    master.wait_log(r"worker 'w1' detached")
    assert worker("w1")["connected_to"] == []
    assert worker("w1")["workerinfo"]["admin"] == w1["workerinfo"]["admin"]  # info stays
    w.start()
    master.wait_log(ATTACHED, 2)
    master.cli("stop", master.dir, check=0)
    db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
    assert db.execute("SELECT count(*) FROM connected_workers").fetchone() == (0,)
    assert db.execute("SELECT active FROM masters").fetchall() == [(0,)]
    db.close()
