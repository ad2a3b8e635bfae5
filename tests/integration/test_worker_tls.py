"""Workers over TLS: `protocols.pb.port = "ssl:PORT:privateKey=...:certKey=..."` as
Twisted's strports spell it, with Debian's buildbot-worker and with bbworker, each created
with --use-tls (which verifies the master's certificate against the trust store: the
test's own certificate, through SSL_CERT_FILE). A build runs through each; plain PB to the
TLS port is refused; a reconfig takes a renewed certificate for new connections; a
bbworker that does not trust the certificate does not log in."""

import os
import socket
import ssl
import subprocess

import pytest

from conftest import api_get, api_rpc, free_port, read, wait_for
from test_bbworker import BBWORKER

CONFIG = '''local bbm = require "bbm"
return {
  protocols = { pb = { port = "ssl:%(pb)d:privateKey=tls/key.pem:certKey=tls/cert.pem:interface=127.0.0.1" } },
  www = { port = "tcp:%(www)d:interface=127.0.0.1" },
  workers = { bbm.worker("w1", "pass1") },
  builders = { bbm.builder{ name = "b1", workernames = { "w1" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "echo", "%(words)s" } } } } },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "b1" } } },
}
'''


def make_cert(directory, cn):
    """A self-signed certificate for `cn` (also its subjectAltName) and its key."""
    os.makedirs(directory, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", os.path.join(directory, "key.pem"),
                    "-out", os.path.join(directory, "cert.pem"), "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn}"],
                   check=True, capture_output=True)
    return read(os.path.join(directory, "cert.pem"))


def served_cert(port):
    """The certificate the port presents, as PEM."""
    return ssl.get_server_certificate(("127.0.0.1", port))


def same_cert(a, b):
    return ssl.PEM_cert_to_DER_cert(a) == ssl.PEM_cert_to_DER_cert(b)


@pytest.mark.parametrize("program", ["buildbot-worker", BBWORKER], ids=["python", "c"])
def test_worker_over_tls(master, tmp_path, program):
    tls = os.path.join(master.dir, "tls")
    first = make_cert(tls, "localhost")
    master.www_port = free_port()
    config = {"pb": master.pb_port, "www": master.www_port, "words": "over TLS"}
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % config)
    master.start()
    master.wait_log(r"listening for workers on 127\.0\.0\.1:\d+ \(TLS\)")
    assert same_cert(served_cert(master.pb_port), first)

    wdir = str(tmp_path / "worker")
    subprocess.run([program, "create-worker", "-q", "--use-tls", wdir,
                    f"localhost:{master.pb_port}", "w1", "pass1"],
                   check=True, capture_output=True)
    env = dict(os.environ, SSL_CERT_FILE=os.path.join(tls, "cert.pem"))
    worker = subprocess.Popen([program, "start", "--nodaemon", wdir], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        master.wait_log(r"worker 'w1' attached")
        status, answer = api_rpc(master.www_port, "forceschedulers/force", "force",
                                 builderid=1)
        assert status == 200, answer
        wait_for(lambda: api_get(master.www_port, "builds")["builds"]
                 and api_get(master.www_port, "builds")["builds"][0]["complete"],
                 what="the build")
        build = api_get(master.www_port, "builds")["builds"][0]
        assert build["results"] == 0
        steps = api_get(master.www_port, f"builds/{build['buildid']}/steps")["steps"]
        shell = [s for s in steps if s["name"] == "shell"][0]
        log = api_get(master.www_port, f"steps/{shell['stepid']}/logs/stdio/contents")
        assert "over TLS" in log["logchunks"][0]["content"]

        if program != BBWORKER:
            return
        # plain PB on the TLS port: the handshake fails and the connection is dropped
        # (bbmaster speaks first in plain PB; here nothing readable comes back)
        got = b""
        with socket.create_connection(("127.0.0.1", master.pb_port)) as s:
            s.sendall(b"\x04\x82pb" * 64)
            s.settimeout(60)
            while chunk := s.recv(4096):
                got += chunk
        assert b"pb" not in got
        assert "w1" in [w["name"] for w in api_get(master.www_port, "workers")["workers"]
                        if w["connected_to"]]

        # a renewed certificate under the same names is taken by a reconfig
        second = make_cert(tls, "localhost")
        master.cli("reconfig", master.dir, check=0)
        wait_for(lambda: same_cert(served_cert(master.pb_port), second),
                 what="the renewed certificate")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_bbworker_refuses_an_unknown_certificate(master, tmp_path):
    """bbworker checks the master's certificate: with the system's authorities only, the
    test's certificate is refused and the worker never logs in (its log says why)."""
    make_cert(os.path.join(master.dir, "tls"), "localhost")
    master.www_port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": master.www_port, "words": "x"})
    master.start()
    wdir = str(tmp_path / "worker")
    subprocess.run([BBWORKER, "create-worker", "-q", "--use-tls", wdir,
                    f"localhost:{master.pb_port}", "w1", "pass1"], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSL_CERT")}
    worker = subprocess.Popen([BBWORKER, "start", "--nodaemon", wdir], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = os.path.join(wdir, "twistd.log")
        wait_for(lambda: "the certificate is refused: self-signed certificate" in read(log),
                 what="the refusal in the worker's log")
        assert "worker 'w1' attached" not in master.log()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
