"""www.port binds where it is told, in Buildbot's strports forms: on 127.0.0.1 the web
port answers there and is not reachable on another local address (127.0.0.2); on IPv6's
::1 (written as Twisted writes it) it answers over IPv6; a reconfig moves it to another
port, and refuses to move the same port to another interface, which would need both
listening at once."""

import http.client
import socket

import pytest

from conftest import free_port


def answers(host, port):
    try:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/api/v2/masters")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def test_www_bound_to_loopback_is_not_reachable_elsewhere(master):
    port = free_port()
    master.configure({"w1": "pw"}, {"b1": ["w1"]},
                     extra=f'  www = {{ port = "tcp:{port}:interface=127.0.0.1" }},\n')
    master.start()
    assert answers("127.0.0.1", port)
    assert not answers("127.0.0.2", port)
    assert f"web server listening on interface 127.0.0.1, port {port}" in master.log()
    # the same port on every address cannot listen beside it: a reconfig says so and keeps
    # the port as it is; another port on every address is taken, 127.0.0.2 included
    master.configure({"w1": "pw"}, {"b1": ["w1"]}, extra=f'  www = {{ port = {port} }},\n')
    r = master.cli("reconfig", master.dir, check=1)
    assert f"www.port: port {port} cannot move to another interface while it listens; " \
        "restart the master to move it" in r.stdout + r.stderr
    assert answers("127.0.0.1", port) and not answers("127.0.0.2", port)
    other = free_port()
    master.configure({"w1": "pw"}, {"b1": ["w1"]}, extra=f'  www = {{ port = {other} }},\n')
    master.cli("reconfig", master.dir, check=0)
    assert answers("127.0.0.2", other)


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_www_on_ipv6(master):
    port = free_port()
    master.configure({"w1": "pw"}, {"b1": ["w1"]},
                     extra=f'  www = {{ port = "tcp:{port}:interface=\\\\:\\\\:1" }},\n')
    master.start()
    assert answers("::1", port)
    assert not answers("127.0.0.1", port)
