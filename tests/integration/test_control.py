"""Control actions never make the web wait: a POST's connection is suspended while its
action waits for the engine, the control queue is bounded (a full queue answers 503 at
once), an action whose client was answered otherwise (the wait's bound passed, or the
client left) never runs, ids are parsed once with the route's rules, request bodies are
bounded per route before any byte is kept, and a push of thousands of commits is stored
a slice per loop turn while the engine goes on answering.

The engine is held deliberately: the "gated" builder's collapseRequests (Lua, run on the
engine thread for every new request against each older one) waits until the test opens
a gate file, and says so in a marker file when it starts waiting."""

import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import sqlite3

import pytest

from conftest import free_port, wait_for

QUEUE_MAX = 32  # CTL_QUEUE_MAX
SECRET = "s3cret"

CONFIG = r'''local bbm = require "bbm"
local function wait_for_gate()
  local mark = io.open("%(dir)s/engine-held", "w")
  mark:close()
  while true do
    local gate = io.open("%(dir)s/gate")
    if gate then gate:close() return end
    os.execute("sleep 0.05")
  end
end
return {
  title = "control",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d%(hooks)s },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass", { max_builds = 2 }), bbm.worker("nobody", "pw") },
  builders = {
    bbm.builder{ name = "gated", workernames = { "nobody" },
      collapseRequests = function(master, builder, new, old) wait_for_gate() return false end,
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "sleepy-a", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ name = "nap", command = { "sleep", "60" } } } },
    bbm.builder{ name = "sleepy-b", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ name = "nap", command = { "sleep", "60" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "gated", "sleepy-a", "sleepy-b" } },%(schedulers)s
  },
}
'''

HOOKS = ', change_hook_dialects = { github = { secret = "%s"%s } }'
QUEUED = r"www: force action on 'force' queued for the engine"


def request(port, method, path, body=None, headers=None, src="127.0.0.1"):
    """(status, body bytes), on a connection from the loopback address `src` (several are
    used, so that no per-address connection cap is what a test measures)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(src, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def config(master, www, hooks="", schedulers=""):
    return CONFIG % {"pb": master.pb_port, "www": www, "dir": master.dir, "hooks": hooks,
                     "schedulers": schedulers}


class Site:
    def __init__(self, master, hooks="", env=None, schedulers=""):
        self.master = master
        self.port = free_port()
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(config(master, self.port, hooks, schedulers))
        master.env.update(env or {})
        master.start()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2 * QUEUE_MAX)

    def request(self, method, path, body=None, headers=None, src="127.0.0.1"):
        return request(self.port, method, path, body, headers, src)

    def rpc(self, path, method, src="127.0.0.1", **params):
        body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": method, "params": params})
        status, answer = self.request("POST", f"/api/v2/{path}", body.encode(),
                                      {"Content-Type": "application/json"}, src)
        return status, json.loads(answer)

    def force(self, reason, builder="gated", src="127.0.0.1"):
        return self.rpc("forceschedulers/force", "force", src, builderNames=[builder],
                        reason=reason)

    def force_async(self, reason, n=0):
        return self.pool.submit(self.force, reason, src=f"127.0.0.{2 + n % 4}")

    def get(self, path):
        status, body = self.request("GET", f"/api/v2/{path}")
        assert status == 200, body
        return json.loads(body)

    def reasons(self):
        db = sqlite3.connect(os.path.join(self.master.dir, "state.sqlite"))
        # "A build was forced by '': REASON"
        rows = {r.split("': ", 1)[-1] for (r,) in db.execute("SELECT reason FROM buildsets")}
        db.close()
        return rows

    def hold_engine(self):
        """The bootstrap request every later force collapses against, then a force that
        holds the engine in collapseRequests until open_gate()."""
        assert self.force("bootstrap")[0] == 200
        self.master.wait_log(QUEUED)
        held = self.force_async("held")
        wait_for(lambda: os.path.exists(os.path.join(self.master.dir, "engine-held")),
                 what="the engine held in collapseRequests")
        return held

    def open_gate(self):
        open(os.path.join(self.master.dir, "gate"), "w").close()


@pytest.fixture
def site(master):
    s = Site(master)
    yield s
    s.open_gate()
    s.pool.shutdown()


def test_get_answers_while_posts_wait(site):
    """With the engine held, more force POSTs than there are request threads wait for
    it; a GET sent after them is answered while every one of them is still waiting; once
    the engine goes on, each POST gets its answer."""
    held = site.hold_engine()
    posts = [site.force_async(f"waiting-{i}", i) for i in range(18)]
    site.master.wait_log(QUEUED, count=2 + len(posts))  # all in the queue, behind "held"
    assert [b["name"] for b in site.get("builders")["builders"]] == \
        ["gated", "sleepy-a", "sleepy-b"]
    assert not held.done() and not any(p.done() for p in posts)
    site.open_gate()
    assert held.result()[0] == 200
    assert [p.result()[0] for p in posts] == [200] * len(posts)
    assert {f"waiting-{i}" for i in range(18)} <= site.reasons()


def test_full_queue_answers_503_at_once_and_runs_nothing(site):
    """With the engine held and the queue full, the actions past its bound are answered
    503 at once, while the engine is still held; none of them runs afterwards."""
    held = site.hold_engine()
    extra = 4
    posts = [site.force_async(f"queued-{i}", i) for i in range(QUEUE_MAX + extra)]
    wait_for(lambda: sum(p.done() for p in posts) >= extra, what="the refused POSTs")
    refused = [i for i, p in enumerate(posts) if p.done()]
    assert len(refused) == extra and not held.done()
    for i in refused:
        status, body = posts[i].result()
        assert status == 503
        assert body["error"]["message"].startswith("the master is busy")
    site.open_gate()
    for i, p in enumerate(posts):
        if i not in refused:
            assert p.result()[0] == 200
    reasons = site.reasons()
    assert {f"queued-{i}" for i in refused} & reasons == set()
    assert len({f"queued-{i}" for i in range(QUEUE_MAX + extra)} & reasons) == QUEUE_MAX


def test_abandoned_post_never_runs(site):
    """A client that closes its connection while its action waits: the action is
    cancelled and never runs, though the engine gets to the queue afterwards."""
    held = site.hold_engine()
    body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": "force",
                       "params": {"builderNames": ["gated"], "reason": "abandoned"}}).encode()
    s = socket.create_connection(("127.0.0.1", site.port))
    s.sendall(b"POST /api/v2/forceschedulers/force HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    site.master.wait_log(QUEUED, count=3)
    s.close()
    site.master.wait_log(r"force action abandoned: its client closed the connection; "
                         r"it is cancelled and will not run")
    assert not held.done()
    site.open_gate()
    assert held.result()[0] == 200
    assert site.force("after")[0] == 200
    reasons = site.reasons()
    assert "after" in reasons and "abandoned" not in reasons


def test_wait_is_bounded_and_a_timed_out_action_never_runs(master):
    """The wait for the engine has a bound (BBM_ACTION_WAIT_MS shortens it here): past
    it the client gets 503 even though the engine is held; an action still queued then
    is cancelled, one already running goes on."""
    site = Site(master, env={"BBM_ACTION_WAIT_MS": "1500"})
    try:
        held = site.hold_engine()
        late = site.force_async("late")
        assert late.result()[0] == 503
        assert late.result()[1]["error"]["message"] == "the master did not answer in time"
        assert held.result()[0] == 503
        site.open_gate()
        assert site.force("after")[0] == 200
        reasons = site.reasons()
        assert "held" in reasons and "after" in reasons and "late" not in reasons
    finally:
        site.open_gate()
        site.pool.shutdown()


def test_ids_are_parsed_once_as_buildbot_does(master, workers):
    """builds/200020_9 is build 2000209 (Python's int() reads the underscore), never
    200020 as atoll would; a build named by builder and number is stopped too, and a
    worker named under a master and builder only when it is configured there."""
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(config(master, port))
    master.cli("upgrade-master", master.dir, check=0)
    db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))

    def next_build_id(buildid):
        """Makes the next build's id `buildid`: a finished build of no builder here takes the
        id before it."""
        db.execute("INSERT INTO builds (id, number, builderid, buildrequestid, masterid, "
                   "started_at, complete_at, locks_duration_s, state_string, results) "
                   "VALUES (?, ?, 9999, 9999, 9999, 1, 2, 0, 'finished', 0)",
                   (buildid - 1, buildid - 1))
        db.commit()

    next_build_id(200020)
    master.start()
    site = Site.__new__(Site)
    site.master, site.port = master, port
    site.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    try:
        workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")

        def running(builder):
            wait_for(lambda: any(not b["complete"] for b in site.get(
                f"builders/{builder}/builds")["builds"]), what=f"a build of {builder}")
            return site.get(f"builders/{builder}/builds")["builds"][0]

        assert site.force("a", "sleepy-a")[0] == 200
        a = running("sleepy-a")
        next_build_id(2000209)
        assert site.force("b", "sleepy-b")[0] == 200
        b = running("sleepy-b")
        assert (a["buildid"], b["buildid"]) == (200020, 2000209)
        assert site.rpc("builds/200020_9", "stop", reason="underscore")[0] == 200
        wait_for(lambda: site.get("builds/2000209")["builds"][0]["complete"],
                 what="build 2000209 stopped")
        assert site.get("builds/2000209")["builds"][0]["results"] == 6
        assert not site.get("builds/200020")["builds"][0]["complete"]
        assert site.rpc(f"builders/{a['builderid']}/builds/{a['number']}", "stop")[0] == 200
        wait_for(lambda: site.get("builds/200020")["builds"][0]["complete"],
                 what="build 200020 stopped by builder and number")
        # a worker named under a master and a builder: it must be configured there
        assert site.rpc("masters/999/workers/w1", "pause", reason="elsewhere")[0] == 200
        assert site.get("workers/w1")["workers"][0]["paused"] is False
        assert site.rpc(f"builders/{a['builderid']}/workers/w1", "pause")[0] == 200
        assert site.get("workers/w1")["workers"][0]["paused"] is True
    finally:
        db.close()
        site.pool.shutdown()


def raw(port, head, body=b"", src="127.0.0.1"):
    """Sends `head` (and `body`), returns (status, body) of the answer, read before any
    more is sent: a refusal that comes without the body having been read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(src, 0))
    s.sendall(head + body)
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    length = 0
    while True:
        line = f.readline().strip()
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    answer = f.read(length)
    s.close()
    return status, answer


def post_head(path, length, ctype=b"application/json", extra=b""):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (path, ctype, length, extra))


def test_bodies_bounded_per_route(master):
    """Bounds chosen on the request's head, before any body byte is read: 1 MiB on API
    POSTs, 64 KiB on other routes (the web UI's forms), a dialect that is not configured refused with Buildbot's
    400; a chunked body past the bound is dropped and answered 413; a body whose JSON
    would take the parser far more memory than its size is refused unparsed."""
    site = Site(master)
    try:
        status, body = raw(site.port, post_head(b"/api/v2/builds/1", 2 << 20))
        assert status == 413
        assert json.loads(body)["error"]["message"] == "request body too large"
        status, body = raw(site.port, post_head(b"/change_hook/github", 5 << 20))
        assert (status, body) == \
            (400, b"The dialect specified, 'github', wasn't whitelisted in change_hook")
        status, body = raw(site.port, b"GET /api/v2/builders HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 10\r\n\r\n")
        assert status == 413
        status, body = raw(site.port, post_head(b"/nosuch", 65 << 10))
        assert status == 413

        def chunks():
            for _ in range(40):
                yield b"x" * 65536

        c = http.client.HTTPConnection("127.0.0.1", site.port, timeout=60)
        c.request("POST", "/api/v2/builds/1", body=chunks(), encode_chunked=True,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 413 and json.loads(r.read())["error"]["message"] == \
            "request body too large"
        # within the bound, but what it would make the request thread parse is bounded too
        bomb = b"[" + b"{}," * 300000 + b"{}]"
        status, body = site.request("POST", "/api/v2/builds/1", bomb,
                                    {"Content-Type": "application/json"})
        assert (status, json.loads(body)["error"]["message"]) == \
            (400, "the request is too big: 600003 JSON values and 300001 objects "
                  "(at most 100000 and 10000)")
        # a body within the bounds still reaches the action
        assert site.force("within bounds")[0] == 200
    finally:
        site.pool.shutdown()


def signed(payload):
    data = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
    return data, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                  "X-Hub-Signature-256": sig}


def commit(i, message="a commit"):
    sha = hashlib.sha1(str(i).encode()).hexdigest()
    return {"id": sha, "message": message, "timestamp": "2026-11-30T10:00:00+01:00",
            "url": f"https://github.com/python/cpython/commit/{sha}", "distinct": True,
            "author": {"name": "Ada", "email": "ada@example.org"},
            "committer": {"name": "Ada", "email": "ada@example.org"},
            "added": [f"Lib/f{i}.py"], "modified": [], "removed": []}


def push(commits):
    return {"ref": "refs/heads/main", "commits": commits, "head_commit": commits[-1],
            "repository": {"name": "cpython", "full_name": "python/cpython",
                           "html_url": "https://github.com/python/cpython"},
            "pusher": {"name": "ada"}}


def test_hook_bodies_bounded_and_budgeted(master):
    """On a configured dialect a webhook may bring 25 MiB: a 5 MiB push is taken, a
    declared 26 MiB is refused at once; bodies in flight share one 64 MiB budget (two
    25 MiB bodies held open leave no room for a third, answered 503 at once)."""
    site = Site(master, hooks=HOOKS % (SECRET, ", strict = true"))
    try:
        data, headers = signed(push([commit(1, "m" * (5 << 20))]))
        assert len(data) > 5 << 20
        status, body = site.request("POST", "/change_hook/github", data, headers)
        assert (status, body) == (202, b"1 change found")
        status, body = raw(site.port, post_head(b"/change_hook/github", 26 << 20))
        assert (status, body) == (413, b"request body too large")
        held = []
        for i in range(2):  # reserved once the master says "100 Continue"
            s = socket.create_connection(("127.0.0.1", site.port))
            s.sendall(post_head(b"/all/change_hook/github", 25 << 20,
                                extra=b"Expect: 100-continue\r\n"))
            assert s.recv(64).startswith(b"HTTP/1.1 100 Continue")
            held.append(s)
        status, body = raw(site.port, post_head(b"/change_hook/github", 25 << 20))
        assert (status, body) == (503, b"too many request bodies in flight; try again later")
        for s in held:
            s.close()
        status, body = site.request("POST", "/change_hook/github", *signed(push([commit(2)])))
        assert (status, body) == (202, b"1 change found")
    finally:
        site.pool.shutdown()


def test_big_push_is_stored_in_slices(master):
    """A signed push of 5,000 commits: every change stored, in order, with its files;
    while it is being stored the engine answers a force, and the webhook's own answer
    comes once the last change is in."""
    site = Site(master, hooks=HOOKS % (SECRET, ", strict = true"))
    try:
        n = 5000
        data, headers = signed(push([commit(i) for i in range(n)]))
        hook = site.pool.submit(site.request, "POST", "/change_hook/github", data, headers)
        db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"), timeout=60)
        count = lambda: db.execute("SELECT COUNT(*) FROM changes").fetchone()[0]
        wait_for(lambda: count() > 0, what="the first changes stored")
        assert site.force("during the push", "sleepy-a")[0] == 200
        assert not hook.done()  # answered while the push was still being stored
        assert hook.result() == (202, b"%d change found" % n)
        rows = db.execute("SELECT c.changeid, c.revision, f.filename FROM changes c "
                          "JOIN change_files f ON f.changeid = c.changeid "
                          "ORDER BY c.changeid").fetchall()
        db.close()
        assert [(r, f) for (_, r, f) in rows] == \
            [(hashlib.sha1(str(i).encode()).hexdigest(), f"Lib/f{i}.py") for i in range(n)]
        assert "during the push" in site.reasons()
    finally:
        site.pool.shutdown()


def test_webhooks_in_progress_are_bounded(master):
    """At most 8 webhooks are in progress: nine pushes of 300 commits reaching the engine
    at once (it was held while they came) make eight jobs, the ninth is answered 503 and
    stores nothing; the eight are stored whole."""
    site = Site(master, hooks=HOOKS % (SECRET, ", strict = true"))
    try:
        held = site.hold_engine()
        hooks = [site.pool.submit(site.request, "POST", "/change_hook/github",
                                  *signed(push([commit(1000 * k + i) for i in range(300)])))
                 for k in range(9)]
        site.master.wait_log(r"www: hook action on 'github' queued", count=9)
        site.open_gate()
        assert held.result()[0] == 200
        answers = sorted(h.result() for h in hooks)
        assert answers == [(202, b"300 change found")] * 8 + \
            [(503, b"too many webhooks in progress; try again later")]
        db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
        assert db.execute("SELECT COUNT(*) FROM changes").fetchone()[0] == 8 * 300
        db.close()
    finally:
        site.pool.shutdown()

def test_checkconfig_warns_of_a_secret_without_strict(master):
    """As Buildbot, a secret without strict accepts an unsigned webhook: checkconfig and
    start say so (the configuration is still good).  What an unsigned webhook can make the
    master parse is bounded."""
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(config(master, port, HOOKS % (SECRET, "")))
    r = master.cli("checkconfig", master.dir, check=0)
    warning = ("change_hook_dialects.github: a secret without strict = true: a webhook "
               "that carries no signature is accepted unchecked")
    assert warning in r.stderr and "master.lua:" in r.stderr
    assert "Config file is good!" in r.stdout
    master.start()
    assert warning in master.log()
    # and an unsigned push is indeed accepted, as Buildbot accepts it
    data, headers = signed(push([commit(3)]))
    del headers["X-Hub-Signature-256"]
    assert request(port, "POST", "/change_hook/github", data, headers) == \
        (202, b"1 change found")
    # but what it may make the master parse is bounded: 1.2 MB of objects is refused unparsed
    bomb = b"[" + b"{}," * 400000 + b"{}]"
    assert request(port, "POST", "/change_hook/github", bomb, headers) == \
        (400, b"the payload is too big: 800003 JSON values and 400001 objects would take "
              b"354 MiB parsed (at most 128)")



def sighup_pending(pid):
    """Whether SIGHUP sent to the process still waits to be delivered."""
    with open(f"/proc/{pid}/status") as f:
        pending = [int(line.split()[1], 16) for line in f if line.startswith("ShdPnd:")]
    return bool(pending[0] & (1 << (signal.SIGHUP - 1)))


GATED_MAIN = r'''
    bbm.schedulers.single_branch{ name = "main", builderNames = { "gated" },
      change_filter = bbm.change_filter{ branch = "main" }, treeStableTimer = 600,
      fileIsImportant = function(change) wait_for_gate() return true end },'''


def test_replaced_web_server_answers_at_once_and_the_push_goes_on(master):
    """A reconfig that moves the web port while a push is being stored: the old server
    stops without waiting for the engine (its webhook is answered 503), the engine goes on
    storing every change, and the new server answers.  (The push's first change holds the
    engine in the scheduler's fileIsImportant until SIGHUP has been delivered; the loop
    runs a second slice before it reads the signal, and there are five.)"""
    site = Site(master, hooks=HOOKS % (SECRET, ", strict = true"), schedulers=GATED_MAIN)
    try:
        n = 1000
        data, headers = signed(push([commit(i) for i in range(n)]))
        hook = site.pool.submit(site.request, "POST", "/change_hook/github", data, headers)
        wait_for(lambda: os.path.exists(os.path.join(master.dir, "engine-held")),
                 what="the engine held by the push's first change")
        moved = free_port()
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(config(master, moved, HOOKS % (SECRET, ", strict = true"), GATED_MAIN))
        os.kill(master.pid(), signal.SIGHUP)
        wait_for(lambda: not sighup_pending(master.pid()), what="SIGHUP delivered")
        site.open_gate()
        master.wait_log(r"configuration update complete")
        assert hook.result() == (503, b"the web server is stopping")
        db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
        wait_for(lambda: db.execute("SELECT COUNT(*) FROM changes").fetchone()[0] == n,
                 what="every change stored")
        db.close()
        assert request(moved, "GET", "/api/v2/changes?limit=1&order=-changeid")[0] == 200
    finally:
        site.pool.shutdown()
