"""Both ports abused at once, as a crawler flood and a hostile network would: on the
workers' port, connections that never log in (large incomplete expressions, a thousand
idle ones replaced as soon as the master drops them); on the web port, a thousand idle
connections, slow-loris request heads and bodies, and webhook bodies of 25 MB that
never finish.  Meanwhile the known worker loses its connection and comes back, a GET
is answered and a build runs, and the master's memory stays under a ceiling.  The
attackers connect from 127.0.1.x and up (all of 127/8 is loopback); the worker and the
clients that must get through from 127.0.0.1."""

import os
import socket
import threading

from conftest import SANITIZED, api_get, api_rpc, free_port, wait_for
from test_worker_port import (Flood, big_incomplete_expression, close_all, connect_from,
                              loopbacks, raise_own_fd_limit, status)

CONFIG = '''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d, change_hook_dialects = { github = { secret = "s3cret", strict = true } } },
  workers = { bbm.worker("w1", "pass1") },
  builders = { bbm.builder{ name = "b1", workernames = { "w1" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } } },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "b1" } } },
}
'''


def web_connections(addresses, per_address, port, head=b""):
    """Connections to the web port that send `head` (a request begun) and then nothing."""
    socks = connect_from(addresses, per_address, port)
    for s in socks:
        try:
            s.setblocking(True)
            s.settimeout(2)
            if head:
                s.sendall(head)
        except OSError:
            pass  # refused or closed by the master: what it may do
    return socks


class Trickler:
    """Sends one more byte on each connection every second (slow-loris heads and bodies)."""

    def __init__(self, socks):
        self.socks = socks
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(1):
            for s in self.socks:
                try:
                    s.send(b"a", socket.MSG_DONTWAIT)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()


def test_both_ports_flooded_the_known_worker_comes_back(master, workers):
    raise_own_fd_limit(8192)
    www = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": www})
    master.start()
    pid = master.pid()
    w = workers("w1", "pass1", master.pb_port).start()
    master.wait_log("worker 'w1' attached from 127.0.0.1:")
    before = status(pid, "VmHWM")
    attackers, tricklers, flood = [], [], None
    try:
        # the workers' port: expressions that never end, then a thousand idle strangers
        big = connect_from(loopbacks(20, third=1), 10, master.pb_port)
        attackers += big
        for s in big:
            try:
                s.setblocking(True)
                s.settimeout(2)
                s.sendall(big_incomplete_expression())
            except OSError:
                pass  # dropped part way, as it should be
        flood = Flood(loopbacks(100, third=2), 10, master.pb_port)
        # the web port: a thousand idle connections, slow heads, slow bodies, huge hooks
        attackers += web_connections(loopbacks(20, third=4), 50, www)
        heads = web_connections(loopbacks(4, third=5), 50, www,
                                b"GET /api/v2/builders HTTP/1.1\r\nHost: x\r\nX-a: ")
        bodies = web_connections(loopbacks(4, third=6), 25, www,
                                 b"POST /api/v2/forceschedulers/force HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: 1000000"
                                 b"\r\n\r\n{")
        hooks = web_connections(loopbacks(10, third=7), 2, www,
                                b"POST /change_hook/github HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
                                b"Content-Length: 26000000\r\n\r\n" + b" " * (1 << 20))
        attackers += heads + bodies + hooks
        tricklers = [Trickler(heads + bodies + hooks)]

        # the known worker loses its connection and comes back through all of that
        w.kill()
        wait_for(lambda: master.count("worker 'w1' detached") >= 1, what="the worker gone")
        w = workers("w1", "pass1", master.pb_port).start()
        master.wait_log("worker 'w1' attached from 127.0.0.1:", count=2)
        # the web answers, and the engine builds
        assert [b["name"] for b in api_get(www, "builders")["builders"]] == ["b1"]
        code, answer = api_rpc(www, "forceschedulers/force", "force", builderNames=["b1"])
        assert code == 200, answer
        brid = list(answer["result"][1].values())[0]
        wait_for(lambda: api_get(www, f"buildrequests/{brid}")["buildrequests"][0]["complete"],
                 what="the build")
        assert api_get(www, f"buildrequests/{brid}/builds")["builds"][0]["results"] == 0
        grown = status(pid, "VmHWM") - before
    finally:
        for t in tricklers:
            t.close()
        if flood is not None:
            flood.close()
        close_all(attackers)
    # strangers' buffers on both ports (a few KiB each), what the two hook bodies the
    # bodies' budget takes have sent (it refuses the rest), libmicrohttpd's 32 KiB pools;
    # ASan's redzones and quarantine on top under the sanitizers
    ceiling = (96 if SANITIZED else 32) * 1024
    print(f"peak RSS grew by {grown} kB (ceiling {ceiling} kB)")
    assert grown < ceiling
    assert api_get(www, "workers")["workers"][0]["connected_to"]
