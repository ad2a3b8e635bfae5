"""Reporters: Buildbot's GitHubStatusPush with BuildStartEndStatusGenerator, on builds a real
buildbot-worker runs, posting to a fake GitHub API that records the statuses and answers as
GitHub does (201, or a scripted 502).  Statuses go through bbmaster's durable outbox: a 502
is retried and the status delivered once; a master stopped while GitHub is unreachable
sends what it kept when it starts again.  Configuration refusals name file and line."""

import http.server
import json
import os
import re
import threading

import pytest

from conftest import api_get, api_rpc, db_rows, free_port, wait_for

SHA1 = "1" * 40
SHA2 = "2" * 40

CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
local function builder(name)
  return bbm.builder{ name = name, workernames = { "w1" }, tags = { "t-" .. name },
    factory = bbm.factory{ bbm.steps.shell{ command = { "sh", "-c",
      bbm.interpolate("exit %%(prop:rc:-0)s") } } } }
end
return {
  title = "reporters",
  db_url = "%(db)s",
  buildbotURL = "http://buildbot.example/all/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = { builder("alpha"), builder("beta"), builder("gamma") },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "alpha", "beta", "gamma" },
      properties = { bbm.params.string{ name = "rc", default = "0" } } },
  },
  services = {
    R.github_status_push{ token = "tok-1", baseURL = "%(api)s/", verbose = true,
      generators = { R.build_start_end_status_generator{ builders = { "alpha", "beta" } } } },
    R.github_status_push{ token = "tok-2", baseURL = "%(api)s", name = "Custom",
      context = bbm.interpolate("ci/%%(prop:buildername)s/%%(prop:scheduler)s"),
      generators = { R.build_start_end_status_generator{ tags = { "t-beta" },
        start_formatter = R.message_formatter_renderable{ template = "Starting." },
        end_formatter = R.message_formatter_renderable{
          template = bbm.interpolate("Build #%%(prop:buildnumber)s of %%(prop:buildername)s "
            .. string.rep("x", 200)) } } } },
  },
}
'''


class FakeGitHub:
    """POST /repos/{o}/{r}/statuses/{sha}: records each request and answers 201 with the
    status; a scripted answer (state, context, status, headers, body) is given, once, to the
    first request of that state and context."""

    def __init__(self, port=0):
        self.calls = []  # (path, body, headers, status answered)
        self.arrivals = []  # (path, body) as requests come, before any answer
        self.script = []
        self.hold = threading.Event()  # cleared: requests wait for it before they are answered
        self.hold.set()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n))
                fake.arrivals.append((self.path, body))
                fake.hold.wait(60)
                status, headers, answer = 201, {}, {"state": body.get("state")}
                for i, (state, context, st, hd, ans) in enumerate(fake.script):
                    if (state, context) == (body.get("state"), body.get("context")):
                        status, headers, answer = st, hd, ans
                        del fake.script[i]
                        break
                if not re.fullmatch(r"/repos/[^/]+/[^/]+/statuses/[0-9a-f]{40}", self.path):
                    status, answer = 404, {"message": "Not Found"}
                fake.calls.append((self.path, body, dict(self.headers), status))
                data = json.dumps(answer).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self):
        return [(p, b) for p, b, _, s in self.calls if s == 201]

    def close(self):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def write_config(master, api, www, backend="sqlite"):
    db = "sqlite:///state.sqlite" if backend == "sqlite" else backend
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": www, "api": api, "db": db})


def force(www, builder, **params):
    status, body = api_rpc(www, "forceschedulers/force", "force", builderNames=[builder],
                           **params)
    assert status == 200, body
    return body["result"]


def outbox_rows(master, backend="sqlite"):
    return db_rows(master.dir, backend,
                   "SELECT s.name, s.value_json FROM object_state s JOIN objects o "
                   "ON o.id = s.objectid WHERE o.class_name = 'bbmaster.reporters.Outbox'")


def build_of(www, brid):
    rows = api_get(www, f"buildrequests/{brid}/builds")["builds"]
    return rows[-1] if rows and rows[-1]["complete"] else None


def built(www, result):
    """The build of the forced request, once complete."""
    brid = list(result[1].values())[0]
    wait_for(lambda: build_of(www, brid), what=f"request {brid} built")
    return build_of(www, brid)


@pytest.fixture
def github():
    fake = FakeGitHub()
    yield fake
    fake.close()


def test_statuses_on_start_and_end(master, workers, github):
    www = free_port()
    write_config(master, github.url, www)
    github.script = [
        ("success", "buildbot/alpha", 502, {"Retry-After": "1"}, {"message": "Bad Gateway"}),
        ("pending", "ci/beta/force", 422, {}, {"message": "Validation Failed"}),
        ("failure", "ci/beta/force", 403, {"Retry-After": "1"},
         {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}),
    ]
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")

    a = built(www, force(www, "alpha", project="python/cpython", revision=SHA1))
    b = built(www, force(www, "beta", repository="git@github.com:octo/hello.git",
                         revision=SHA2, rc="1"))
    assert b["results"] == 2
    built(www, force(www, "gamma", project="python/cpython", revision=SHA1))
    wait_for(lambda: len(github.delivered()) == 5 and not outbox_rows(master),
             what="five statuses delivered")

    base = "http://buildbot.example/all/#/builders"
    url_a = f"{base}/{a['builderid']}/builds/{a['number']}"
    url_b = f"{base}/{b['builderid']}/builds/{b['number']}"
    long_desc = f"Build #{b['number']} of beta " + "x" * 200
    got = {(p, body["context"], body["state"]): body for p, body in github.delivered()}
    alpha = f"/repos/python/cpython/statuses/{SHA1}"
    beta = f"/repos/octo/hello/statuses/{SHA2}"
    assert sorted(got) == sorted([
        (alpha, "buildbot/alpha", "pending"), (alpha, "buildbot/alpha", "success"),
        (beta, "buildbot/beta", "pending"), (beta, "buildbot/beta", "failure"),
        (beta, "ci/beta/force", "failure")])
    assert got[(alpha, "buildbot/alpha", "pending")] == {
        "state": "pending", "description": "Build started.", "target_url": url_a,
        "context": "buildbot/alpha"}
    assert list(got[(alpha, "buildbot/alpha", "success")]) == \
        ["state", "description", "target_url", "context"]  # Buildbot's order
    assert got[(alpha, "buildbot/alpha", "success")]["description"] == "Build done."
    assert got[(beta, "buildbot/beta", "failure")]["target_url"] == url_b
    assert got[(beta, "ci/beta/force", "failure")]["description"] == long_desc[:140]

    # the 502 and the secondary rate limit were retried (after their Retry-After), the 422
    # dropped, and each status delivered once
    assert sorted(c[3] for c in github.calls) == [201] * 5 + [403, 422, 502]
    refused = [c for c in github.calls if c[3] == 422][0]
    assert refused[1] == {"state": "pending", "description": "Starting.", "target_url": url_b,
                          "context": "ci/beta/force"}
    assert master.count(r"Custom: failed to update \"pending\" for octo/hello at 2+, context "
                        r"\"ci/beta/force\": http 422, .*Validation Failed.*; not retried") == 1
    assert master.count(r"http 403, .*secondary rate limit.*attempt 1 failed, next in 1\.0 s") \
        == 1
    headers = {p: (h["Authorization"], h["User-Agent"]) for p, b, h, s in github.calls
               if b["context"].startswith("ci/")}
    assert set(headers.values()) == {("token tok-2", "Buildbot")}
    assert all(h["Authorization"] == "token tok-1" for p, b, h, s in github.calls
               if b["context"].startswith("buildbot/"))
    assert master.count(r"GitHubStatusPush: updated status with \"success\" for "
                        rf"python/cpython at {SHA1}, context \"buildbot/alpha\"") == 1
    assert master.count(r"http 502, .*attempt 1 failed, next in 1\.0 s") == 1


def test_undelivered_statuses_survive_a_restart(master, workers, backend):
    www = free_port()
    api_port = free_port()  # nothing listens there yet: GitHub is unreachable
    write_config(master, f"http://127.0.0.1:{api_port}", www, backend)
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    built(www, force(www, "alpha", project="python/cpython", revision=SHA1))
    master.wait_log(r"\"success\" for python/cpython at 1+, context \"buildbot/alpha\": .*"
                    r"attempt 1 failed")
    master.stop()
    rows = outbox_rows(master, backend)
    # the pending that never went out was superseded by the final state
    assert [json.loads(v)["state"] for _, v in rows] == ["success"], rows
    fake = FakeGitHub(api_port)
    try:
        master.start()
        wait_for(lambda: fake.delivered() and not outbox_rows(master, backend),
                 what="the kept status delivered")
        assert [(p, b["state"], b["context"]) for p, b in fake.delivered()] == \
            [(f"/repos/python/cpython/statuses/{SHA1}", "success", "buildbot/alpha")]
        assert master.count(r"1 notification\(s\) left undelivered by the last run") == 1
    finally:
        fake.close()


def test_stop_does_not_wait_for_github(master, workers, github):
    """GitHub takes a request and never answers: the master stops at once anyway, keeps
    what it could not confirm, and the next start sends only the newest state of each
    context."""
    www = free_port()
    write_config(master, github.url, www)
    github.hold.clear()
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    built(www, force(www, "alpha", project="python/cpython", revision=SHA1))
    wait_for(lambda: github.arrivals, what="the pending status in flight")
    r = master.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert master.count(r"Server Shut Down\.") == 1
    assert master.count(r"did not stop") == 0
    assert [json.loads(v)["state"] for _, v in outbox_rows(master)] == ["pending", "success"]
    github.hold.set()
    before = len(github.arrivals)
    master.start()
    wait_for(lambda: not outbox_rows(master), what="the outbox emptied")
    assert [(p, b["state"]) for p, b in github.arrivals[before:]] == \
        [(f"/repos/python/cpython/statuses/{SHA1}", "success")]


@pytest.mark.parametrize("service, message", [
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b" }',
     "bbm.reporters.mail_notifier (Buildbot's MailNotifier) is not implemented yet"),
    ('bbm.reporters.github_status_push{ token = "t", verify = false, generators = {} }',
     "'verify' is not implemented by bbmaster"),
    ('bbm.reporters.github_status_push{ token = "t", startDescription = "x", generators = {} }',
     "'startDescription' is not implemented by bbmaster"),
    ('bbm.reporters.github_status_push{ token = "t", generators = { '
     'bbm.reporters.build_request_generator{ formatter = "x" } } }',
     "bbm.reporters.build_request_generator: 'formatter' must be a "
     "bbm.reporters.message_formatter_renderable"),
    ('bbm.reporters.github_status_push{ token = "t", generators = { '
     'bbm.reporters.build_set_status_generator{} } }',
     "bbm.reporters.build_set_status_generator (Buildbot's BuildSetStatusGenerator) is not"),
    ('bbm.reporters.github_status_push{ token = "t", generators = { '
     'bbm.reporters.build_status_generator{ mode = { "failing", "all" } } } }',
     "mode 'all' is not valid in an iterator"),
    ('bbm.reporters.github_status_push{ token = "t", generators = { '
     'bbm.reporters.build_status_generator{ mode = "sometimes" } } }',
     "mode sometimes is not a valid mode"),
    ('bbm.reporters.github_status_push{ token = "t", generators = { '
     'bbm.reporters.build_status_generator{ message_formatter = '
     'bbm.reporters.message_formatter{ template = "ok\\n{{ x | upper }}" } } } }',
     "bbm.reporters.message_formatter: 'template', line 2: '|' is not part of bbmaster's "
     "template language"),
    ('bbm.reporters.github_status_push{ token = "t", generators = { '
     'bbm.reporters.build_status_generator{ message_formatter = '
     'bbm.reporters.message_formatter{ want_logs_content = true } } } }',
     "'want_logs_content' is not implemented by bbmaster"),
    ('bbm.reporters.github_status_push{ token = "t", generators = { '
     'bbm.reporters.build_start_end_status_generator{ builders = { "a" }, tags = { "b" } } } }',
     "specify only builders or tags to include - not both"),
    ('bbm.reporters.github_status_push{ generators = {} }', "missing required parameter 'token'"),
    ('"x"', "services[1] is not a reporter"),
])
def test_checkconfig_refuses(master, service, message):
    line = 4 if service == '"x"' else 5  # the services key, or the constructor's call
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write('local bbm = require "bbm"\nreturn {\n  workers = {},\n'
                f'  services = {{\n    {service},\n  }},\n}}\n')
    r = master.cli("checkconfig", master.dir)
    assert r.returncode != 0
    assert re.search(rf"master\.lua:{line}: .*" + re.escape(message), r.stdout + r.stderr), \
        r.stdout + r.stderr


DEFAULTS_CONFIG = r'''local bbm = require "bbm"
return {
  buildbotURL = "http://bb/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass"), bbm.worker("w2", "w2pass") },
  builders = {
    bbm.builder{ name = "alpha", workernames = { "w1" }, tags = { "a" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "delta", workernames = { "w2" }, tags = { "d" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "alpha", "delta" } } },
  services = { bbm.reporters.github_status_push{ token = "t", baseURL = "%(api)s" } },
}
'''


def test_default_generators_report_requests(master, workers, github):
    """Without generators, Buildbot's defaults: BuildRequestGenerator ("Build pending." with
    the request's URL, as a request is made; "error" when it is cancelled before it
    started) and BuildStartEndStatusGenerator, for every builder."""
    www = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(DEFAULTS_CONFIG % {"pb": master.pb_port, "www": www, "api": github.url})
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    result = force(www, "alpha", project="python/cpython", revision=SHA1)
    brid = list(result[1].values())[0]
    a = built(www, result)
    wait_for(lambda: not outbox_rows(master) and github.delivered() and
             github.delivered()[-1][1]["state"] == "success", what="alpha's statuses")
    alpha = f"/repos/python/cpython/statuses/{SHA1}"
    got = [(p, b["state"], b["description"], b["target_url"], b["context"])
           for p, b in github.delivered()]
    build_url = f"http://bb/#/builders/{a['builderid']}/builds/{a['number']}"
    # newer states of the context may replace one still waiting: never the order
    assert got[0] == (alpha, "pending", "Build pending.", f"http://bb/#/buildrequests/{brid}",
                      "buildbot/alpha")
    assert got[-1] == (alpha, "success", "Build done.", build_url, "buildbot/alpha")
    assert got[1:-1] in ([], [(alpha, "pending", "Build started.", build_url, "buildbot/alpha")])

    before = len(github.delivered())
    _, brids = force(www, "delta", project="python/cpython", revision=SHA2)
    brid = list(brids.values())[0]
    request_url = f"http://bb/#/buildrequests/{brid}"
    delta = f"/repos/python/cpython/statuses/{SHA2}"
    wait_for(lambda: len(github.delivered()) > before, what="delta's pending status")
    status, body = api_rpc(www, f"buildrequests/{brid}", "cancel")
    assert status == 200, body
    wait_for(lambda: not outbox_rows(master) and len(github.delivered()) == before + 2,
             what="delta's cancelled status")
    assert [(p, b["state"], b["description"], b["target_url"], b["context"])
            for p, b in github.delivered()[before:]] == [
        (delta, "pending", "Build pending.", request_url, "buildbot/delta"),
        (delta, "error", "Build pending.", request_url, "buildbot/delta")]


def test_checkconfig_accepts_what_bbmaster_does_anyway(master):
    """debug = false and verify = true are what bbmaster does: accepted."""
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write('local bbm = require "bbm"\nreturn {\n  workers = {},\n  services = {\n'
                '    bbm.reporters.github_status_push{ token = "t", debug = false, verify = true,\n'
                '      generators = { bbm.reporters.build_start_end_status_generator{\n'
                '        add_patch = false } } },\n  },\n}\n')
    r = master.cli("checkconfig", master.dir)
    assert r.returncode == 0, r.stdout + r.stderr


def test_old_and_orphaned_notifications(master, github):
    """Rows a previous run left: one past the 24 hours that GitHub still fails is a dead
    letter; one of a reporter no longer configured is dropped; an unreadable one is kept
    and said so; a fresh one is delivered."""
    import sqlite3
    import time
    write_config(master, github.url, free_port())
    master.cli("upgrade-master", master.dir, check=0)
    db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
    db.execute("INSERT INTO objects (name, class_name) VALUES "
               "('bbmaster', 'bbmaster.reporters.Outbox')")
    oid = db.execute("SELECT id FROM objects WHERE class_name = "
                     "'bbmaster.reporters.Outbox'").fetchone()[0]

    def row(name, reporter, sha, age, context="buildbot/alpha"):
        payload = json.dumps({"state": "success", "description": "Build done.",
                              "target_url": "http://x/", "context": context})
        return (oid, name, json.dumps({
            "reporter": reporter, "path": f"/repos/o/r/statuses/{sha}", "payload": payload,
            "state": "success", "context": context,
            "created_at": time.time() - age, "attempts": 7}))
    # the old one's own context: the fake's scripted 503 goes to it whichever request of
    # the two arrives first
    db.executemany("INSERT INTO object_state (objectid, name, value_json) VALUES (?, ?, ?)", [
        row("00000000000000000001", "GitHubStatusPush", "a" * 40, 25 * 3600, "buildbot/old"),
        row("00000000000000000002", "Gone", "b" * 40, 60),
        row("00000000000000000003", "GitHubStatusPush", "c" * 40, 60),
        (oid, "00000000000000000004", "{not json")])
    db.commit()
    db.close()
    github.script = [("success", "buildbot/old", 503, {}, {"message": "Unavailable"})]
    master.start()
    master.wait_log(r"dead letter: GitHubStatusPush: \"success\" for o/r at a+, context "
                    r"\"buildbot/old\" not delivered in 24 hours \(8 attempts; last: http 503")
    wait_for(lambda: len(outbox_rows(master)) == 1, what="the outbox emptied")
    assert [p for p, _ in github.delivered()] == [f"/repos/o/r/statuses/{'c' * 40}"]
    assert [name for name, _ in outbox_rows(master)] == ["00000000000000000004"]
    assert master.count(r"'Gone' is no longer configured: its notification "
                        r"00000000000000000002 is dropped") == 1
    assert master.count(r"outbox row '00000000000000000004' cannot be read") == 1


STATUS_CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
return {
  title = "Status",
  buildbotURL = "http://bb/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "gamma", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ name = "check", command = { "sh", "-c",
        bbm.interpolate("exit %%(prop:rc:-0)s") } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "gamma" },
      properties = { bbm.params.string{ name = "rc", default = "0" } } },
  },
  services = {
    R.github_status_push{ token = "t", baseURL = "%(api)s", name = "Problems",
      context = "problems",
      generators = { R.build_status_generator{ mode = "problem",
        message_formatter = R.message_formatter{ template =
          "{{ status_detected }} on {{ buildername }}: {{ summary }} "
          .. "[{%% for s in build.steps %%}{{ s.name }}={{ s.result_name }};{%% endfor %%}] "
          .. "prev={{ previous_results }}", want_steps = true } } } },
    R.github_status_push{ token = "t", baseURL = "%(api)s", name = "Default",
      context = "default",
      generators = { R.build_status_generator{ mode = { "failing", "exception" } } } },
  },
}
'''


def test_build_status_generator(master, workers, github):
    """BuildStatusGenerator: mode "problem" reports a failure after a success, once (not the
    next failure), with the message_formatter's template rendered against Buildbot's context;
    mode {"failing", "exception"} with Buildbot's default body (its description cut to 140)."""
    www = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(STATUS_CONFIG % {"pb": master.pb_port, "www": www, "api": github.url})
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    ok = built(www, force(www, "gamma", project="python/cpython", revision=SHA1))
    bad = built(www, force(www, "gamma", project="python/cpython", revision=SHA2, rc="1"))
    built(www, force(www, "gamma", project="python/cpython", revision=SHA2, rc="1"))
    assert (ok["results"], bad["results"]) == (0, 2)
    wait_for(lambda: len(github.delivered()) == 3 and not outbox_rows(master),
             what="three statuses delivered")
    got = [(p, b["context"], b["state"], b["description"]) for p, b in github.delivered()]
    sha2 = f"/repos/python/cpython/statuses/{SHA2}"
    assert got[0] == (sha2, "problems", "failure",
                      "new failure on gamma: BUILD FAILED: failed 'sh -c ...' (failure) "
                      "[worker_preparation=success;check=failure;] prev=0")
    body = ("A failed build has been detected on builder gamma while building "
            "python/cpython.\n\nFull details are available at:\n"
            f"    http://bb/#/builders/{bad['builderid']}/builds/{bad['number']}\n\n"
            "Build state: failed 'sh -c ...' (failure)\n")
    assert got[1:] == [(sha2, "default", "failure", body[:140])] * 2
