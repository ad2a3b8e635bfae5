"""The worker port under abuse, with real buildbot-workers as the victims: a flood of
connections that never log in (large incomplete expressions, trickled bytes, idle
sockets from many addresses), a low file descriptor limit, a password brute force, and
a login name made to forge log lines.  Attackers connect from other loopback addresses
(all of 127/8 is loopback on Linux); the real worker connects from 127.0.0.1."""

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from conftest import SANITIZED, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ATTACHED = r"worker 'w1' attached from 127\.0\.0\.1:"

CONFIG = '''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "pass1") },
  builders = { bbm.builder{ name = "b1", workernames = { "w1" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } } },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "b1" } } },
}
'''


def start(master, launcher=()):
    master.www_port = free_port()
    master.launcher = list(launcher)
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": master.www_port})
    master.start()


def status(pid, key):
    """A value in kB from /proc/PID/status (VmHWM, VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def raise_own_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


def connect_from(addresses, per_address, port):
    """Non-blocking connections to the worker port, `per_address` from each address, paced
    so that the master's listen backlog does not overflow (the kernel would drop them)."""
    socks = []
    for addr in addresses:
        for _ in range(per_address):
            s = socket.socket()
            s.bind((addr, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
            if len(socks) % 50 == 0:
                time.sleep(0.02)
    return socks


def close_all(socks):
    """Closes with a reset, leaving no TIME_WAIT behind to take ports other tests want."""
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()


def open_fds(pid):
    """How many file descriptors the master holds: sockets it accepted among them (a
    connection the master never accepted can look established to the client).  The
    database's files are left out: the web's reader pool, the event feed and the release
    status thread open connections as they need them, whatever the worker port does."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        n += not target.endswith((".sqlite", ".sqlite-wal", ".sqlite-shm"))
    return n


def closed_by_peer(s):
    """True once the master closed the connection (what it sent before is read and dropped)."""
    try:
        while s.recv(65536, socket.MSG_DONTWAIT):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


class Flood:
    """Idle connections from other addresses, each one the master closes replaced at once
    (at most 100 every 50 ms), so that a freed place is taken again before a worker that
    lost its connection can come back."""

    def __init__(self, addresses, per_address, port):
        self.addresses, self.port = addresses, port
        self.socks = connect_from(addresses, per_address, port)
        self.opened = len(self.socks)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.05):
            with self.lock:
                gone = [s for s in self.socks if closed_by_peer(s)][:100]
                close_all(gone)
                kept = [s for s in self.socks if s not in set(gone)]
                n = len(gone)
                addrs = [self.addresses[(self.opened + i) % len(self.addresses)]
                         for i in range(n)]
                self.opened += n
                self.socks = kept + sum((connect_from([a], 1, self.port) for a in addrs), [])

    def close(self):
        self.stop.set()
        self.thread.join()
        close_all(self.socks)


def loopbacks(n, third=1):
    return [f"127.0.{third + i // 250}.{1 + i % 250}" for i in range(n)]


def get(master, path):
    url = f"http://127.0.0.1:{master.www_port}/api/v2/{path}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, json.loads(r.read())


def force_build(master):
    body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": "force",
                       "params": {"builderNames": ["b1"]}}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{master.www_port}/api/v2/forceschedulers/force", data=body,
        method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        bsid, brids = json.loads(r.read())["result"]
    return list(brids.values())[0]


def pbclient(port, bind, name, password, count=1):
    """Login attempts by Twisted's PB client (pbclient.py): their outcomes."""
    r = subprocess.run([sys.executable, os.path.join(HERE, "pbclient.py"), str(port), bind,
                        repr(name), repr(password), str(count)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def login_call(reqid):
    """["message", reqid, "root", "login", 1, ("tuple", b"w1"), {}] in banana, pb dialect."""
    header = bytearray()
    while True:
        header.append(reqid & 0x7f)
        reqid >>= 7
        if not reqid:
            break
    return (b"\x07\x80\x1a\x87" + bytes(header) + b"\x81\x04\x82root\x14\x87\x01\x81"
            b"\x02\x80\x0b\x87\x02\x82w1\x01\x80\x05\x87")


def unread_logins(port):
    """A stranger that sends 40,000 login calls and reads none of the answers (each a
    challenge or an error): the master must drop it once 16 KiB wait to be sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    calls = b"\x02\x82pb\x02\x80\x13\x87\x06\x81" + b"".join(
        login_call(i) for i in range(1, 40001))
    try:
        s.sendall(calls)
    except OSError:
        pass  # dropped before all was sent
    return s


def big_incomplete_expression():
    """The dialect, the version, then a list announcing 600,000 items and giving 60,000."""
    head = b"\x02\x82pb" + b"\x02\x80\x13\x87\x06\x81"
    return head + bytes([0x40, 0x4f, 0x24, 0x80]) + b"\x01\x81" * 60000


class Trickle:
    """Connections that send one byte of a plausible login every 0.3 s, never finishing."""

    # the dialect, the version, then a message whose first item is a 200-byte string
    DATA = b"\x02\x82pb\x02\x80\x13\x87\x06\x81\x07\x80\x48\x01\x82" + b"x" * 200

    def __init__(self, socks):
        self.sent = {s: 0 for s in socks}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.3):
            for s, n in self.sent.items():
                try:
                    self.sent[s] += s.send(self.DATA[n:n + 1], socket.MSG_DONTWAIT)
                except OSError:
                    pass  # not connected yet, or closed by the master

    def close(self):
        self.stop.set()
        self.thread.join()


def test_prelogin_flood_stays_small_and_a_worker_still_builds(master, workers):
    """200 connections each sending 120 kB of an expression that never completes, one that
    reads none of its answers, and 500 trickling bytes: the master's peak RSS grows by less
    than the ceiling (the old limits let each hold megabytes), the trickling ones are closed
    by the login timeout, and a real worker logs in and builds meanwhile."""
    raise_own_fd_limit(4096)
    start(master)
    pid = master.pid()
    wait_for(lambda: master.count("BuildMaster is running"), what="the master")
    before = status(pid, "VmHWM")
    fds = open_fds(pid)
    big = connect_from(loopbacks(20, third=1), 10, master.pb_port)
    payload = big_incomplete_expression()
    trickling, trickle, greedy = [], None, None
    try:
        for s in big:
            s.setblocking(True)
            s.settimeout(5)
            try:
                s.sendall(payload)
            except OSError:
                pass  # closed by the master part way: what it should do
        greedy = unread_logins(master.pb_port)
        trickling = connect_from(loopbacks(50, third=3), 10, master.pb_port)
        trickle = Trickle(trickling)
        wait_for(lambda: open_fds(pid) - fds >= 250, what="the master to take the flood")
        w = workers("w1", "pass1", master.pb_port).start()
        master.wait_log(ATTACHED)
        brid = force_build(master)
        wait_for(lambda: get(master, f"buildrequests/{brid}")[1]["buildrequests"][0]["complete"],
                 what="the build")
        build = get(master, f"buildrequests/{brid}/builds")[1]["builds"][0]
        assert build["results"] == 0
        grown = status(pid, "VmHWM") - before
        # 700 strangers at a few KiB each, the build and the web; ASan's quarantine and
        # redzones on top under the sanitizers
        ceiling = (48 if SANITIZED else 24) * 1024
        print(f"peak RSS grew by {grown} kB (ceiling {ceiling} kB)")
        assert grown < ceiling
        # what the pool held goes with the login timeout (the worker's connection stays)
        wait_for(lambda: open_fds(pid) <= fds + 4, what="login timeouts")
        assert w.alive()
    finally:
        if trickle is not None:
            trickle.close()
        close_all(big + trickling + ([greedy] if greedy else []))
    master.wait_log(r"worker port, connections in the last \d+ s: .*\d+ closed for a protocol "
                    r"error before login; 1 closed with answers left unread before login")
    assert master.count(r"connection from 127\.0\.[13]\.") == 0  # summed up, not one by one


def test_known_worker_comes_back_through_idle_flood(master, workers):
    """1,100 idle connections from 110 other addresses, more than the usual soft limit of
    1,024 descriptors the master starts with, each replaced as soon as the master closes it:
    the attached worker is killed, started again, and attaches; the idle ones hold no more
    than their pool."""
    raise_own_fd_limit(4096)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    start(master, ["prlimit", f"--nofile=1024:{hard}"])
    w = workers("w1", "pass1", master.pb_port).start()
    master.wait_log(ATTACHED)
    fds = open_fds(master.pid())
    flood = Flood(loopbacks(110, third=5), 10, master.pb_port)
    try:
        w.kill(signal.SIGKILL)
        master.wait_log(r"worker 'w1' detached")
        w.start()
        master.wait_log(ATTACHED, 2)
        held = open_fds(master.pid()) - fds
        print(f"the master holds {held} more descriptors with the idle flood; "
              f"{flood.opened} connections opened")
        assert held <= 256 + 4  # the pool of connections not logged in
    finally:
        flood.close()


def test_worker_addresses_outlive_a_restart(master, workers):
    """The address a worker logged in from is kept in the database: after a restart, with
    the port full of strangers and more arriving, a connection from that address that has
    not logged in yet is never the one pushed out to make room, and the worker attaches."""
    raise_own_fd_limit(4096)
    start(master)
    w = workers("w1", "pass1", master.pb_port).start()
    master.wait_log(ATTACHED)
    w.kill(signal.SIGKILL)
    master.stop()
    master.start()
    wait_for(lambda: master.count("BuildMaster is running") >= 2, what="the master again")
    strangers = connect_from(loopbacks(16, third=1), 16, master.pb_port)  # the whole pool
    mine = socket.socket()  # as a worker that is slow to log in
    mine.connect(("127.0.0.1", master.pb_port))
    more = []
    try:
        # each newcomer pushes out the oldest stranger, until all those before it are gone
        for third in (2, 3):
            more += connect_from(loopbacks(16, third=third), 16, master.pb_port)
        wait_for(lambda: all(closed_by_peer(s) for s in strangers),
                 what="the first strangers pushed out")
        assert not closed_by_peer(mine)
        mine.close()
        w.start()
        master.wait_log(ATTACHED, 2)
    finally:
        close_all(strangers + more)


def test_low_fd_limit_keeps_the_web_answering(master):
    """Under `prlimit --nofile=256:256` the worker port takes no more than its share: 300
    connections to it leave the web answering GETs."""
    raise_own_fd_limit(1024)
    start(master, ["prlimit", "--nofile=256:256"])
    fds = open_fds(master.pid())
    flood = connect_from(loopbacks(25, third=7), 12, master.pb_port)
    try:
        time.sleep(1)  # let the master accept what it will
        for _ in range(3):
            code, body = get(master, "workers")
            assert code == 200 and body["workers"][0]["name"] == "w1"
        held = open_fds(master.pid()) - fds
    finally:
        close_all(flood)
    line = [l for l in master.log().splitlines() if "file descriptors:" in l][0]
    m = re.search(r"limit 256 .*; (\d+) reserved, (\d+) for worker connections, (\d+) for web", line)
    assert m, line
    assert int(m.group(1)) + int(m.group(2)) + int(m.group(3)) <= 256
    assert held <= int(m.group(2))


def test_login_brute_force_is_rate_limited(master, workers):
    """40 wrong passwords from 127.0.0.5, then the right one from there: the first ten are
    logged one by one, the rest refused and summed up in one line, the right password is
    refused too while the address is over its rate, and the real worker from 127.0.0.1
    logs in."""
    start(master)
    outcomes = pbclient(master.pb_port, "127.0.0.5", "w1", "guess", 40)
    assert outcomes == ["unauthorized"] * 40
    assert pbclient(master.pb_port, "127.0.0.5", "w1", "pass1") == ["unauthorized"]
    workers("w1", "pass1", master.pb_port).start()
    master.wait_log(ATTACHED)
    assert master.count(r"worker 'w1' login refused from 127\.0\.0\.5") == 10
    master.wait_log(r"10 failed logins from 127\.0\.0\.5: further attempts from there are "
                    r"refused unchecked")
    master.wait_log(r"31 failed logins from 127\.0\.0\.5 in the last \d+ s")
    lines = [l for l in master.log().splitlines() if "127.0.0.5" in l]
    assert len(lines) == 12, "\n".join(lines)


def test_control_bytes_in_a_login_name_stay_on_one_line(master):
    """A login name carrying a newline, a forged log line and a terminal escape is logged
    once, escaped, on one line."""
    start(master)
    forged = "2030-01-01 00:00:00+0000 [info] worker 'w1' attached from 10.0.0.1"
    name = "evil\n" + forged + "\x1b[31m\r\t\x7fend"
    assert pbclient(master.pb_port, "127.0.0.1", name, "x") == ["unauthorized"]
    master.wait_log(r"unknown worker 'evil")
    log = master.log()
    assert forged not in log.splitlines()
    assert not any(l.startswith("2030-01-01") for l in log.splitlines())
    [line] = [l for l in log.splitlines() if "evil" in l]
    assert line.endswith("as unknown worker 'evil\\n2030-01-01 00:00:00+0000 [info] worker "
                         "\\'w1\\' attached from 10.0.0.1\\x1b[31m\\r\\t\\x7fend' refused")


def test_one_address_holds_at_most_16_waiting(master):
    """20 connections from one address: the master holds no more than 16 of them."""
    start(master)
    pid = master.pid()
    fds = open_fds(pid)
    same = connect_from(["127.0.9.1"], 20, master.pb_port)
    try:
        time.sleep(0.5)  # let the master accept what it will
        held = open_fds(pid) - fds
    finally:
        close_all(same)
    assert 0 < held <= 16
