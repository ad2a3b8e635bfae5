"""systemd's readiness protocol: `bbmaster start --nodaemon` under a unit of Type=notify
(NOTIFY_SOCKET set) sends READY=1 once the master is up, RELOADING=1 then READY=1 around
a reconfig, and STOPPING=1 when it stops."""

import os
import signal
import socket
import subprocess

from conftest import BBMASTER, lua_config


def test_ready_reloading_stopping(master, tmp_path):
    master.configure({"w1": "pw"}, {"b1": ["w1"]})
    master.cli("upgrade-master", master.dir, check=0)
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    proc = subprocess.Popen([BBMASTER, "start", "--nodaemon", master.dir],
                            env={**master.env, "NOTIFY_SOCKET": path},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert sock.recv(4096) == b"READY=1"
        assert "BuildMaster is running" in master.log()
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(lua_config(master.pb_port, {"w1": "pw"}, {"b1": ["w1"], "b2": ["w1"]}))
        proc.send_signal(signal.SIGHUP)
        assert sock.recv(4096) == b"RELOADING=1"
        assert sock.recv(4096) == b"READY=1"
        assert "configuration update complete" in master.log()
        proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
