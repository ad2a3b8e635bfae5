"""Live events on a real master and buildbot-worker: SSE at /events (Buildbot's routing
keys, the entity as GET /api/v2 shows it, Last-Event-ID resume, slow clients dropped) and
Buildbot's WebSocket protocol at /ws (ws.py's replies, events)."""

import http.client
import json
import os
import socket
import time

import pytest
import websocket

from conftest import api_get, api_rpc, free_port, wait_for

CONFIG = r'''local bbm = require "bbm"
return {
  title = "events",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass", { max_builds = 3 }) },
  builders = {
    bbm.builder{ name = "a", workernames = { "w1" }, collapseRequests = false, factory = bbm.factory{
      bbm.steps.shell{ name = "one", command = { "sh", "-c", "echo one" } },
      bbm.steps.shell{ name = "two", command = { "sh", "-c", "seq 1 50" } } } },
    bbm.builder{ name = "b", workernames = { "w1" }, collapseRequests = false, factory = bbm.factory{
      bbm.steps.shell{ name = "one", command = { "true" } } } },
    bbm.builder{ name = "c", workernames = { "w1" }, collapseRequests = false, tags = { "t2", "t1" },
                 factory = bbm.factory{
      bbm.steps.shell{ name = "one", command = { "true" } } } },
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "a", "b", "c" } } },
}
'''


class Site:
    def __init__(self, master, workers, env=None):
        self.master = master
        self.port = free_port()
        master.env.update(env or {})
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": master.pb_port, "www": self.port})
        master.start()
        self.worker = workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")

    def force(self, *builders):
        status, body = api_rpc(self.port, "forceschedulers/force", "force",
                               builderNames=list(builders or ["a"]))
        assert status == 200, body
        return body["result"]

    def wait_builds(self, n):
        wait_for(lambda: len([b for b in api_get(self.port, "builds")["builds"]
                              if b["complete"]]) >= n, what=f"{n} builds complete")


class Stream:
    """An SSE client reading events as a browser's EventSource would."""

    def __init__(self, port, query, headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.request("GET", "/events" + query, headers=headers or {})
        self.resp = self.conn.getresponse()

    def next(self):
        """The next event as a dict (id, event, data), or None at the end of the stream."""
        ev = {}
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "" and ev:
                if "data" in ev:
                    ev["data"] = json.loads(ev["data"])
                return ev
            if line.startswith(":") or line == "":
                continue
            field, _, value = line.partition(": ")
            ev[field] = value

    def until(self, key):
        seen = []
        while True:
            ev = self.next()
            assert ev is not None, f"the stream ended before {key}: {seen}"
            seen.append(ev)
            if ev.get("data", {}).get("k") == key:
                return seen

    def close(self):
        self.conn.close()


@pytest.fixture
def site(master, workers):
    return Site(master, workers)


def test_sse_build_events_are_the_api_entities(site):
    s = Stream(site.port, "?topic=builds/*/*&topic=steps/*/*")
    assert s.resp.status == 200
    assert s.resp.getheader("Content-Type") == "text/event-stream"
    assert s.resp.getheader("Cache-Control") == "no-store"
    assert s.resp.getheader("X-Accel-Buffering") == "no"
    site.force("a")
    seen = s.until("builds/1/finished")
    keys = [ev["data"]["k"] for ev in seen]
    assert keys[0] == "builds/1/new", keys
    assert seen[0]["data"]["m"]["buildid"] == 1
    assert seen[0]["data"]["m"]["results"] is None
    for step in api_get(site.port, "builds/1/steps")["steps"]:
        i = step["stepid"]
        assert [k for k in keys if k.startswith(f"steps/{i}/")] == [
            f"steps/{i}/new", f"steps/{i}/started", f"steps/{i}/finished"], keys
    # only the topics' keys: no builders/1/builds/1/... nor logs
    assert all(k.split("/")[0] in ("builds", "steps") and len(k.split("/")) == 3 for k in keys)
    finished = seen[-1]["data"]["m"]
    assert finished == api_get(site.port, "builds/1")["builds"][0]
    assert finished["results"] == 0 and finished["complete"]
    ids = [int(ev["id"]) for ev in seen]
    assert ids == sorted(ids)
    s.close()


def test_reconfig_sends_each_builder_as_the_api_shows_it(site):
    """A reconfig's update event per builder (read in batches) carries GET /builders/N."""
    s = Stream(site.port, "?topic=builders/*/*")
    r = site.master.cli("reconfig", site.master.dir, check=0)
    assert "completed successfully" in r.stdout, r.stdout
    builders = api_get(site.port, "builders")["builders"]
    assert [b["tags"] for b in builders] == [[], [], ["t2", "t1"]]
    got = {}
    while len(got) < len(builders):
        ev = s.next()
        assert ev is not None, got
        assert ev["data"]["k"] == f"builders/{ev['data']['m']['builderid']}/update", ev
        got[ev["data"]["m"]["builderid"]] = ev["data"]["m"]
    for b in builders:
        assert got[b["builderid"]] == api_get(site.port, f"builders/{b['builderid']}")["builders"][0]
    s.close()


def test_sse_resume_and_refusals(site):
    first = Stream(site.port, "?topic=builds/*/*&topic=logs/*/*")
    site.force("a")
    seen = first.until("builds/1/finished")
    first.close()
    start = seen[1]
    # Last-Event-ID: what followed it, from the ring, with the same ids and messages
    again = Stream(site.port, "?topic=builds/*/*&topic=logs/*/*",
                   {"Last-Event-ID": start["id"]})
    assert again.until("builds/1/finished") == seen[2:]
    again.close()
    by_arg = Stream(site.port, f"?topic=builds/*/*&last_event_id={seen[-2]['id']}")
    assert by_arg.next() == seen[-1]
    by_arg.close()
    # an id the ring does not hold: resync first, then live events
    lost = Stream(site.port, "?topic=builds/*/*", {"Last-Event-ID": "999999"})
    assert lost.next() == {"event": "resync", "data": {}}
    site.force("b")
    assert lost.until("builds/2/finished")[0]["data"]["k"] == "builds/2/new"
    lost.close()
    for query, status in (("", 400), ("?topic=", 400), ("?topic=x&topic=" + "y" * 300, 400)):
        c = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
        c.request("GET", "/events" + query)
        r = c.getresponse()
        assert r.status == status, (query, r.status, r.read())
        c.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def test_sse_slow_clients_are_dropped(master, workers):
    """A client that stops reading while the ring (16 messages here) moves on gets a resync
    and its stream ends; one that never reads is closed; the master answers meanwhile and
    holds no more for them."""
    site = Site(master, workers, {"BBM_WWW_FEED_MSGS": "16", "BBM_WWW_IDLE_TIMEOUT": "6"})
    topics = "?topic=*/*/*&topic=*/*/*/*/*&topic=*/*/*/*/*/*/*"

    def raw_stream():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", site.port))
        sock.sendall(f"GET /events{topics} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return sock

    never, paused = raw_stream(), raw_stream()
    head = paused.recv(512)
    assert head.startswith(b"HTTP/1.1 200"), head
    rss = rss_kb(master.pid())
    for _ in range(4):
        site.force("a", "b", "c")
    site.wait_builds(12)
    assert api_get(site.port, "builders")["meta"]["total"] == 3  # it answers meanwhile
    assert rss_kb(master.pid()) < rss + 32 * 1024, (rss, rss_kb(master.pid()))
    # the paused client reads again: what was in the socket buffers, then resync, then EOF
    paused.settimeout(60)
    text = b""
    while True:
        chunk = paused.recv(65536)
        if not chunk:
            break
        text += chunk
    assert b"event: resync" in text, text[-500:]
    assert text.rstrip(b"\r\n0").endswith(b"event: resync\ndata: {}"), text[-300:]
    # the one that never read is closed by the server (its idle timeout)
    never.settimeout(60)
    while never.recv(65536):
        pass
    s = Stream(site.port, "?topic=builds/*/*")  # and new clients are served
    site.force("b")
    assert s.until("builds/13/finished")[0]["data"]["k"] == "builds/13/new"
    s.close()


def ws_connect(port):
    return websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=60)


def test_ws_like_buildbot(site):
    ws = ws_connect(site.port)

    def ask(frame):
        ws.send(json.dumps(frame))
        return ws.recv()

    assert ask({"_id": 1, "cmd": "startConsuming", "path": "builds/*/*"}) == \
        '{"msg":"OK","code":200,"_id":1}'
    assert ask({"_id": 2, "cmd": "startConsuming", "path": "builds/*/*"}) == \
        '{"msg":"OK","code":200,"_id":2}'
    assert ask({"_id": 3, "cmd": "ping"}) == '{"msg":"pong","code":200,"_id":3}'
    assert ask({"_id": "x", "cmd": "frobnicate"}) == \
        '{"error":"no such command type \'frobnicate\'","code":404,"_id":"x"}'
    assert ask({"cmd": "ping"}) == \
        '{"error":"no \'_id\' or \'type\' in websocket frame","code":400,"_id":null}'
    assert ask({"_id": 4}) == '{"error":"no \'cmd\' in websocket frame","code":400,"_id":null}'
    assert ask({"_id": 5, "cmd": "startConsuming"}) == (
        '{"error":"Invalid method argument \'WsProtocol.cmd_startConsuming() missing 1 '
        'required positional argument: \'path\'\'","code":400,"_id":5}')
    assert ask({"_id": 6, "cmd": "ping", "path": "x"}) == (
        '{"error":"Invalid method argument \'WsProtocol.cmd_ping() got an unexpected keyword '
        'argument \'path\'\'","code":400,"_id":6}')
    assert ask({"_id": 7, "cmd": "stopConsuming", "path": "changes/*/*"}) == \
        '{"error":"path was not consumed \'changes/*/*\'","code":400,"_id":7}'
    assert ask({"_id": 8, "cmd": "startConsuming", "path": 5}) == \
        '{"error":"invalid path format \'5\'","code":400,"_id":8}'
    site.force("b")
    keys = []
    while not keys or keys[-1] != "builds/1/finished":
        msg = json.loads(ws.recv())
        keys.append(msg["k"])
        last = msg["m"]
    assert keys[0] == "builds/1/new" and set(keys) <= {
        "builds/1/new", "builds/1/update", "builds/1/finished"}, keys
    assert last == api_get(site.port, "builds/1")["builds"][0]
    assert ask({"_id": 9, "cmd": "stopConsuming", "path": "builds/*/*"}) == \
        '{"msg":"OK","code":200,"_id":9}'
    ws.ping("hi")  # a ping is answered with a pong; then the next reply is the command's
    assert ask({"_id": 10, "cmd": "ping"}) == '{"msg":"pong","code":200,"_id":10}'
    ws.close()
    # not an upgrade: 426 as autobahn answers (webStatus off, as Buildbot sets it); a
    # broken upgrade: 400
    c = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
    c.request("GET", "/ws")
    assert c.getresponse().status == 426
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
    c.request("GET", "/ws", headers={"Upgrade": "websocket", "Connection": "upgrade"})
    assert c.getresponse().status == 400
    c.close()
