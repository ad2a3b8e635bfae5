"""bbworker's ways to the master besides buildmaster_host and port: a tac's
connection_string (a Twisted client endpoint, `create-worker --connection-string`),
over tcp: and over tls: with trustRoots, the tac it writes also run by Debian's
buildbot-worker, an endpoint bbworker cannot use refused with the tac's line; and
proxy_connection_string, an HTTP CONNECT proxy (a small one in the test that records
what it was asked and can refuse)."""

import os
import re
import select
import socket
import socketserver
import subprocess
import threading

from conftest import free_port, read, wait_for
from test_bbworker import BBWORKER, bbworkers  # noqa: F401 (the fixture)
from test_worker_tls import CONFIG as TLS_CONFIG
from test_worker_tls import make_cert


def tac_line(wdir, prefix):
    """The 1-based line of buildbot.tac that starts with `prefix`."""
    lines = read(os.path.join(wdir, "buildbot.tac")).split("\n")
    return next(i + 1 for i, line in enumerate(lines) if line.startswith(prefix))


def test_connection_string_over_tcp(master, bbworkers, tmp_path):  # noqa: F811
    """`create-worker --connection-string` writes the tac buildbot-worker 3.10+ writes
    (host and port None); bbworker connects where the endpoint says, not to <master>;
    Debian's buildbot-worker runs the same tac; a key Twisted does not know is refused
    with the tac's line."""
    master.configure({"w1": "p1", "w2": "p2"}, {"b1": ["w1", "w2"]})
    master.start()
    unused = free_port()
    conn = f"tcp:host=127.0.0.1:port={master.pb_port}:timeout=10"
    w = bbworkers("w1", "p1", unused, opts=[f"--connection-string={conn}"])
    tac = read(os.path.join(w.dir, "buildbot.tac"))
    assert (f"buildmaster_host = None  # '127.0.0.1'\nport = None  # {unused}\n"
            f"connection_string = '{conn}'\n") in tac
    assert "connection_string=connection_string," in tac
    w.start()
    master.wait_log(r"worker 'w1' attached")
    assert f"Connecting to 127.0.0.1:{master.pb_port}" in w.log()

    # the same tac, written by bbworker, is one Debian's buildbot-worker runs
    py = str(tmp_path / "py-w2")
    subprocess.run([BBWORKER, "create-worker", "-q", f"--connection-string={conn}", py,
                    f"127.0.0.1:{unused}", "w2", "p2"], check=True)
    proc = subprocess.Popen(["buildbot-worker", "start", "--nodaemon", py],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        master.wait_log(r"worker 'w2' attached")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    path = os.path.join(py, "buildbot.tac")
    with open(path, "w") as f:
        f.write(tac.replace(":timeout=10", ":timeout=10:colour=red"))
    r = subprocess.run([BBWORKER, "start", "--nodaemon", py], capture_output=True, text=True,
                       timeout=30)
    line = tac_line(py, "connection_string = ")
    assert r.returncode == 1
    assert (f"{path}:{line}: connection_string: unknown key 'colour' for a tcp: endpoint"
            in r.stderr), r.stderr
    r = subprocess.run([BBWORKER, "create-worker", "-q", "--connection-string=ssl:h:1",
                        str(tmp_path / "x"), "h", "n", "p"], capture_output=True, text=True)
    assert r.returncode == 1 and "endpoint type 'ssl' is not supported" in r.stderr, r.stderr


def test_connection_string_over_tls_with_trust_roots(master, bbworkers, tmp_path):  # noqa: F811
    """tls: with trustRoots: the master's certificate is checked against the directory's
    *.pem files only (no system store involved), and the name against host=; then
    use_tls through an HTTP proxy: TLS inside the tunnel, for the master's name."""
    tls = os.path.join(master.dir, "tls")
    make_cert(tls, "localhost")
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "master.pem").write_text(read(os.path.join(tls, "cert.pem")))
    (roots / "notes.txt").write_text("not a certificate")
    master.www_port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(TLS_CONFIG % {"pb": master.pb_port, "www": master.www_port, "words": "x"})
    master.start()
    master.wait_log(r"listening for workers on 127\.0\.0\.1:\d+ \(TLS\)")
    conn = f"tls:host=localhost:port={master.pb_port}:trustRoots={roots}"
    w = bbworkers("w1", "pass1", free_port(), opts=[f"--connection-string={conn}"])
    w.env = {k: v for k, v in w.env.items() if not k.startswith("SSL_CERT")}
    w.start()
    master.wait_log(r"worker 'w1' attached")
    assert f"master localhost:{master.pb_port} (TLS)" in w.log()
    w.kill()

    # use_tls through a proxy: TLS inside the tunnel, the name checked being the master's
    proxy = Proxy()
    try:
        w2 = bbworkers("w1", "pass1", master.pb_port, opts=[
            "--use-tls", f"--proxy-connection-string=tcp:127.0.0.1:{proxy.server_address[1]}"])
        with open(os.path.join(w2.dir, "buildbot.tac")) as f:
            tac = f.read()
        with open(os.path.join(w2.dir, "buildbot.tac"), "w") as f:
            f.write(tac.replace("'127.0.0.1'", "'localhost'"))
        w2.env["SSL_CERT_FILE"] = os.path.join(tls, "cert.pem")
        w2.start()
        master.wait_log(r"worker 'w1' attached", count=2)
        assert proxy.requests == [f"CONNECT localhost:{master.pb_port} HTTP/1.1"]
    finally:
        proxy.shutdown()
        proxy.server_close()


class Proxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that knows CONNECT only: records each request's first line, then
    answers 200 and relays both ways, or answers `refuse` and closes, or sends an answer
    that never ends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.requests = []
        self.refuse = None
        self.endless = False  # an answer whose blank line never comes
        threading.Thread(target=self.serve_forever, daemon=True).start()


class ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        first = head.split(b"\r\n")[0].decode()
        self.server.requests.append(first)
        if self.server.refuse:
            self.request.sendall(self.server.refuse.encode() + b"\r\n\r\n")
            return
        if self.server.endless:
            self.request.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 20000)
            self.request.recv(1)  # until the worker gives up
            return
        host, port = first.split(" ")[1].rsplit(":", 1)
        with socket.create_connection((host, int(port))) as up:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
            if rest:
                up.sendall(rest)
            relay(self.request, up)


def relay(a, b):
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], 60)
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            peers[s].sendall(data)


def test_proxy_connection_string(master, bbworkers):  # noqa: F811
    """proxy_connection_string: the worker asks the proxy to CONNECT to the master and
    speaks PB through the tunnel; a proxy that refuses is logged with its answer, one whose
    answer does not end is dropped at 16 KiB."""
    master.configure({"w1": "p1", "w2": "p2"}, {"b1": ["w1", "w2"]})
    master.start()
    proxy = Proxy()
    try:
        opts = [f"--proxy-connection-string=tcp:127.0.0.1:{proxy.server_address[1]}"]
        w = bbworkers("w1", "p1", master.pb_port, opts=opts)
        assert (f"proxy_connection_string = 'tcp:127.0.0.1:{proxy.server_address[1]}'"
                in read(os.path.join(w.dir, "buildbot.tac")))
        w.start()
        master.wait_log(r"worker 'w1' attached")
        assert proxy.requests == [f"CONNECT 127.0.0.1:{master.pb_port} HTTP/1.1"]
        assert re.search(r"tunnel to 127\.0\.0\.1:\d+ open through the proxy", w.log())

        proxy.refuse = "HTTP/1.1 403 Forbidden"
        w2 = bbworkers("w2", "p2", master.pb_port, opts=opts).start()
        wait_for(lambda: "refused the tunnel" in w2.log(), what="the refusal in the log")
        assert (f"the proxy 127.0.0.1:{proxy.server_address[1]} refused the tunnel to "
                f"127.0.0.1:{master.pb_port}: HTTP/1.1 403 Forbidden") in w2.log()
        assert "worker 'w2' attached" not in master.log()

        proxy.refuse, proxy.endless = None, True
        w3 = bbworkers("w2", "p2", master.pb_port, opts=opts).start()
        wait_for(lambda: "its answer to CONNECT is longer than 16384 bytes" in w3.log(),
                 what="the bound on the proxy's answer")
    finally:
        proxy.shutdown()
        proxy.server_close()

