"""Reporters: Buildbot's GitHubStatusPush with BuildStartEndStatusGenerator, on builds a real
buildbot-worker runs, posting to a fake GitHub API that records the statuses and answers as
GitHub does (201, or a scripted 502).  Statuses go through bbmaster's durable outbox: a 502
is retried and the status delivered once; a master stopped while GitHub is unreachable
sends what it kept when it starts again.  Configuration refusals name file and line."""

import asyncio
import http.server
import json
import os
import re
import signal
import sqlite3
import threading
import time

import psycopg2
import pytest

from conftest import api_get, api_rpc, db_rows, free_port, pid_alive, wait_for

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
    first request of that state and context; a header's value may be a function, called as
    the answer goes."""

    def __init__(self, port=0):
        self.calls = []  # (path, body, headers, status answered)
        self.arrivals = []  # (path, body) as requests come, before any answer
        self.arrived_at = []  # (time, state, context) of each
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
                fake.arrived_at.append((time.time(), body.get("state"), body.get("context")))
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
                    self.send_header(k, v() if callable(v) else v)
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


def test_github_rate_limit_headers(master, workers, github):
    """GitHub's quota headers are obeyed: after an answer with x-ratelimit-remaining 0 the
    token sends nothing until x-ratelimit-reset, and a primary rate-limit 403 is retried then
    rather than after a backoff."""
    www = free_port()
    write_config(master, github.url, www)
    resets = []

    def reset_in_2s():
        resets.append(int(time.time()) + 2)
        return str(resets[-1])

    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset_in_2s}
    github.script = [
        ("pending", "buildbot/alpha", 201, spent, {"state": "pending"}),
        ("success", "buildbot/alpha", 403, spent,
         {"message": "API rate limit exceeded for user ID 1."}),
    ]
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    built(www, force(www, "alpha", project="python/cpython", revision=SHA1))
    wait_for(lambda: len(github.delivered()) == 2 and not outbox_rows(master),
             what="both statuses delivered")
    assert [c[3] for c in github.calls] == [201, 403, 201]
    times = [t for t, state, context in github.arrived_at]
    assert len(resets) == 2
    assert times[1] >= resets[0], "the spent quota was not waited for"
    assert times[2] >= resets[1], "the rate-limit 403 was retried before the reset"
    assert master.count(r"GitHubStatusPush: the token's rate limit is spent; its next "
                        r"request in \d\.\d s") == 1
    assert master.count(r"http 403, .*API rate limit exceeded.*attempt 1 failed, next in "
                        r"\d\.\d s") == 1


BURST_CONFIG = r'''local bbm = require "bbm"
local names, builders = {}, {}
for i = 1, 90 do
  names[i] = string.format("b%%02d", i)
  builders[i] = bbm.builder{ name = names[i], workernames = { "w1" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } }
end
return {
  db_url = "sqlite:///state.sqlite",
  buildbotURL = "http://bb/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = builders,
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = names } },
  services = { bbm.reporters.github_status_push{ token = "secret-token-1", baseURL = "%(api)s" } },
}
'''


def test_a_burst_is_held_to_the_token_limits(master, github):
    """A push that makes 90 requests at once (no worker: each gets only "Build pending."):
    at most 10 requests of the token are in flight, and 80 go in the first minute; the other
    10 stay in the outbox for the next."""
    www = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(BURST_CONFIG % {"pb": master.pb_port, "www": www, "api": github.url})
    github.hold.clear()
    master.start()
    status, body = api_rpc(www, "forceschedulers/force", "force",
                           builderNames=[f"b{i:02d}" for i in range(1, 91)],
                           project="python/cpython", revision=SHA1)
    assert status == 200, body
    wait_for(lambda: len(github.arrivals) == 10, what="ten requests in flight")
    time.sleep(1)
    assert len(github.arrivals) == 10, "more than 10 requests of one token in flight"
    github.hold.set()
    wait_for(lambda: len(github.delivered()) == 80, what="80 statuses delivered")
    wait_for(lambda: len(outbox_rows(master)) == 10, what="the other ten kept")
    time.sleep(3)
    assert len(github.arrivals) == 80, "more than 80 requests in a minute"
    delivered = [(b["state"], b["description"], b["context"]) for _, b in github.delivered()]
    assert len(set(delivered)) == 80
    assert {d[:2] for d in delivered} == {("pending", "Build pending.")}
    # the windows are written while requests go: a master that dies keeps them, and the
    # next start waits for the same minute's end; so does a stop and start
    windows = lambda: [(name, json.loads(v)) for name, v in db_rows(
        master.dir, "sqlite",
        "SELECT s.name, s.value_json FROM object_state s JOIN objects o ON "
        "o.id = s.objectid WHERE o.class_name = 'bbmaster.reporters.Limits'")]
    wait_for(lambda: [(n, len(w["minute"]), len(w["hour"])) for n, w in windows()]
             == [("GitHubStatusPush", 80, 80)], what="the windows written")
    assert all("secret-token-1" not in json.dumps(w) for _, w in windows())
    pid = master.pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the master to die")
    os.remove(os.path.join(master.dir, "bbmaster.pid"))
    for restart in ("after a crash", "after a stop"):
        master.cli("start", master.dir, check=0)
        master.wait_log(r"10 notification\(s\) left undelivered by the last run",
                        count=1 if restart == "after a crash" else 2)
        time.sleep(3)
        assert len(github.arrivals) == 80, f"{restart}, the minute's 80 requests were forgotten"
        assert len(outbox_rows(master)) == 10
        master.stop()
        assert [(n, len(w["minute"])) for n, w in windows()] == [("GitHubStatusPush", 80)]


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


def events_rows(master, backend="sqlite"):
    return db_rows(master.dir, backend,
                   "SELECT s.name FROM object_state s JOIN objects o ON o.id = s.objectid "
                   "WHERE o.class_name = 'bbmaster.reporters.Events'")


def test_reports_left_queued_are_made_at_the_next_start(master, workers, backend):
    """A finished build's reports are made from a queue whose rows are stored as the build
    finishes and removed with the reports stored: none is left once they are made.  A master
    that dies in between leaves the row; the next start makes the build's reports from the
    database (a row put there, named as a master of before the rows' order named them,
    stands for such a crash)."""
    github = FakeGitHub()
    try:
        www = free_port()
        write_config(master, github.url, www, backend)
        master.start()
        workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")
        build = built(www, force(www, "alpha", project="python/cpython", revision=SHA1))
        wait_for(lambda: len(github.delivered()) == 2 and not outbox_rows(master, backend),
                 what="the build's statuses delivered")
        assert events_rows(master, backend) == []
        master.stop()
        objectid = db_rows(master.dir, backend, "SELECT id FROM objects WHERE class_name = "
                           "'bbmaster.reporters.Events'")[0][0]
        sql = "INSERT INTO object_state (objectid, name, value_json) VALUES (?, ?, '{}')"
        if backend == "sqlite":
            db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
        else:
            db = psycopg2.connect(backend)
            sql = sql.replace("?", "%s")
        db.cursor().execute(sql, (objectid, f"build.{build['buildid']}"))
        db.commit()
        db.close()
        github.calls.clear()
        master.start()
        wait_for(lambda: github.delivered() and not events_rows(master, backend),
                 what="the queued build reported")
        url = f"http://buildbot.example/all/#/builders/{build['builderid']}/builds/1"
        assert github.delivered() == [(f"/repos/python/cpython/statuses/{SHA1}", {
            "state": "success", "description": "Build done.", "target_url": url,
            "context": "buildbot/alpha"})]
        assert master.count(r"reporters: the reports of 1 event\(s\) an earlier master left "
                            "are made now") == 1
    finally:
        github.close()


def test_the_reports_thread_follows_reconfigs(master, workers, github):
    """A finished build's reports are made on a thread of their own, with master.lua loaded
    again there (what the file prints as it loads is logged once, by the master's own load),
    when the first build that a generator wants has finished: a reconfig's new formatter is
    the one the next build's status gets."""
    www = free_port()

    def configure(text):
        config = CONFIG.replace('template = "Starting." }', 'template = "Starting." },\n'
                                '        end_formatter = R.message_formatter_renderable{ '
                                f'template = "{text}" }}') \
            .replace("        end_formatter = R.message_formatter_renderable{\n"
                     "          template = bbm.interpolate(\"Build #%%(prop:buildnumber)s of "
                     "%%(prop:buildername)s \"\n            .. string.rep(\"x\", 200)) } } } },",
                     "      } } },")
        assert config.count("end_formatter") == 1, config
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(f'print("{text} loads")\n' + config % {
                "pb": master.pb_port, "www": www, "api": github.url,
                "db": "sqlite:///state.sqlite"})

    def ends():
        return [b["description"] for _, b in github.delivered()
                if b["context"].startswith("ci/") and b["state"] != "pending"]

    configure("first")
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    # a build that no generator wants (gamma: neither listed nor tagged) is not queued: the
    # reports' thread has not loaded the file while the next build runs (2 s)
    built(www, force(www, "gamma", project="python/cpython", revision=SHA1))
    beta = force(www, "beta", project="python/cpython", revision=SHA1, rc="$(sleep 2; echo 0)")
    wait_for(lambda: [b["state"] for _, b in github.delivered()] == ["pending"] * 2,
             what="beta's start statuses")
    assert master.count(r"reporters: master\.lua loaded again for the reports' thread") == 0
    built(www, beta)
    wait_for(lambda: ends() == ["first"], what="the first end status")
    configure("second")
    r = master.cli("reconfig", master.dir, check=0)
    assert "completed successfully" in r.stdout, r.stdout
    built(www, force(www, "beta", project="python/cpython", revision=SHA2))
    wait_for(lambda: ends() == ["first", "second"], what="the second end status")
    assert master.count(r"reporters: master\.lua loaded again for the reports' thread") == 2
    assert master.count("first loads") == 1 and master.count("second loads") == 1
    assert events_rows(master) == []


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
    ('bbm.reporters.telegram_bot{ bot_token = "t" }',
     "bbm.reporters.telegram_bot (Buildbot's TelegramBot) is not implemented yet"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b" }',
     "bbm.reporters.mail_notifier: give generators (Buildbot's default"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", extraRecipients = { "x y" }, '
     'generators = {} }', "extra recipient x y is not a valid email"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", generators = { '
     'bbm.reporters.build_start_end_status_generator{} } }',
     "bbm.reporters.mail_notifier: bbm.reporters.build_start_end_status_generator is not "
     "implemented for mail yet"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", generators = { '
     'bbm.reporters.build_status_generator{ add_logs = { 1 } } } }',
     "bbm.reporters.build_status_generator: 'add_logs' must be true, false or a list of log "
     "names"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", extraHeaders = { ["X Y"] = "z" }, '
     'generators = {} }', "extraHeaders must map header names to one-line strings or renderables"),
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
     "bbm.reporters.github_status_push: bbm.reporters.build_set_status_generator is only "
     "implemented for bbm.reporters.mail_notifier yet"),
    ('bbm.reporters.http_status_push{ serverUrl = "http://h/", generators = { '
     'bbm.reporters.worker_missing_generator{} } }',
     "bbm.reporters.http_status_push: bbm.reporters.worker_missing_generator reports only "
     "through bbm.reporters.mail_notifier (Buildbot's other reporters fail on its reports; "
     "IRC has the 'worker' event)"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", generators = { '
     'bbm.reporters.build_set_status_generator{ add_logs = { 1 } } } }',
     "bbm.reporters.build_set_status_generator: 'add_logs' must be true, false or a list of "
     "log names"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", generators = { '
     'bbm.reporters.build_set_status_generator{ mode = "sometimes" } } }',
     "bbm.reporters.build_set_status_generator: mode sometimes is not a valid mode"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", generators = { '
     'bbm.reporters.build_set_status_generator{ add_patch = true } } }',
     "bbm.reporters.build_set_status_generator: 'add_patch' is not implemented by bbmaster"),
    ('bbm.reporters.mail_notifier{ fromaddr = "a@b", generators = { '
     'bbm.reporters.build_set_status_generator{ report_new = true } } }',
     "bbm.reporters.build_set_status_generator: unknown parameter 'report_new'"),
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
     'bbm.reporters.message_formatter{ want_logs_content = 1 } } } }',
     "want_logs_content must be true, false or a list of log names"),
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
    letter; one of a reporter no longer configured is dropped, and a mail of a reporter that
    is now a GitHub one; an unreadable one is kept and said so; a fresh one is delivered."""
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
        # another context: the scripted 503 goes to the first row's, whichever comes first
        row("00000000000000000003", "GitHubStatusPush", "c" * 40, 60, "buildbot/gamma"),
        (oid, "00000000000000000004", "{not json"),
        (oid, "00000000000000000005", json.dumps({  # a mail of a reporter now GitHub's
            "reporter": "GitHubStatusPush", "path": "<m@x.org>", "payload": "Subject: s\r\n",
            "state": "mail", "context": "s", "created_at": time.time(), "attempts": 1,
            "kind": 3, "from": "bb@x.org", "to": "[\"a@x.org\"]"})),
        (oid, "00000000000000000006", json.dumps({  # a comment of a reporter now a status one
            "reporter": "GitHubStatusPush", "path": "/repos/o/r/issues/5/comments",
            "payload": "{\"body\": \"x\"}", "state": "build 1 finished on o/r#5",
            "context": "", "created_at": time.time(), "attempts": 1, "kind": 2}))])
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
    assert master.count(r"'GitHubStatusPush' is no longer a mail reporter: its notification "
                        r"00000000000000000005 is dropped") == 1
    assert master.count(r"'GitHubStatusPush' is no longer a GitHubCommentPush reporter: its "
                        r"notification 00000000000000000006 is dropped") == 1


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
    # the two reporters deliver side by side: in either order
    got = sorted((p, b["context"], b["state"], b["description"]) for p, b in github.delivered())
    sha2 = f"/repos/python/cpython/statuses/{SHA2}"
    assert got[2] == (sha2, "problems", "failure",
                      "new failure on gamma: BUILD FAILED: failed 'sh -c ...' (failure) "
                      "[worker_preparation=success;check=failure;] prev=0")
    body = ("A failed build has been detected on builder gamma while building "
            "python/cpython.\n\nFull details are available at:\n"
            f"    http://bb/#/builders/{bad['builderid']}/builds/{bad['number']}\n\n"
            "Build state: failed 'sh -c ...' (failure)\n")
    assert got[:2] == [(sha2, "default", "failure", body[:140])] * 2


MAIL_CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
return {
  title = "Mail",
  buildbotURL = "http://bb/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "gamma", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ name = "check", command = { "sh", "-c",
        bbm.interpolate("echo checked; exit %%(prop:rc:-0)s") } },
        bbm.steps.shell{ name = "more", command = { "echo", "more" }, alwaysRun = true } } },
    bbm.builder{ name = "delta", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ name = "check", command = { "sh", "-c",
        bbm.interpolate("echo checked; exit %%(prop:rc:-0)s") } },
        bbm.steps.shell{ name = "big", alwaysRun = true, command = { "sh", "-c",
          "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 2400000" } },
        bbm.steps.shell{ name = "more", command = { "echo", "more" }, alwaysRun = true } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "gamma", "delta" },
      properties = { bbm.params.string{ name = "rc", default = "0" } } },
  },
  services = { %(mail)s },
}
'''


MAIL_PROBLEM = r'''R.mail_notifier{ fromaddr = "Buildbot <bb@example.org>", relayhost = "127.0.0.1",
      smtpPort = SMTP_PORT, extraRecipients = { "list@example.org" }, lookup = "example.org",
      extraHeaders = { ["Reply-To"] = "list@example.org",
        ["X-Builder"] = bbm.interpolate("%(prop:buildername)s #%(prop:buildnumber)s \u{2620}") },
      generators = { R.build_status_generator{ mode = "problem",
        message_formatter = R.message_formatter{ want_logs_content = { "check.stdio" },
          template = "{{ status_detected }} on {{ buildername }}: {{ summary }}\n"
          .. "{% for s in build.steps %}{{ s.name }}={{ s.result_name }}\n"
          .. "{% for l in s.logs %}{{ l.content.content }}{% endfor %}{% endfor %}" } } } }'''


def write_mail_config(master, www, mail):
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(MAIL_CONFIG % {"pb": master.pb_port, "www": www, "mail": mail})


def problem_mail_master(master, workers):
    """A master mailing "problem" builds to a FakeSMTP not yet started, with worker w1
    attached: the web port and the FakeSMTP."""
    www, smtp_port = free_port(), free_port()
    write_mail_config(master, www, MAIL_PROBLEM.replace("SMTP_PORT", str(smtp_port)))
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    return www, FakeSMTP(smtp_port)


class FakeSMTP:
    """An SMTP server (aiosmtpd) that records each mail (envelope, message, whether the session
    was encrypted and who logged in); `replies` are answered to DATA before it accepts, as a
    relay answers when it cannot take the mail now or refuses it; with `tls` (a certificate and key)
    STARTTLS is required (with `smtps`, TLS from the start), with `login` AUTH is too; with
    `hold`, the reply to a message waits until `release` is set (`arrived` is set first)."""

    def __init__(self, port, replies=(), tls=None, login=None, smtps=False, hold=False):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        fake = self
        self.mails = []
        self.replies = list(replies)
        self.arrived, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                fake.arrived.set()
                await asyncio.get_running_loop().run_in_executor(None, fake.release.wait, 120)
                if fake.replies:
                    return fake.replies.pop(0)
                fake.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                                   envelope.content,
                                   server.transport.get_extra_info("ssl_object") is not None,
                                   getattr(session.auth_data, "login", None)))
                return "250 OK"

        def check(server, session, envelope, mechanism, data):
            return AuthResult(success=(data.login, data.password) == login, auth_data=data)

        kw = {}
        if tls is not None:
            import ssl
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*tls)
            kw.update(ssl_context=ctx) if smtps else kw.update(tls_context=ctx,
                                                               require_starttls=True)
        if login is not None:
            kw.update(authenticator=check, auth_required=True)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kw)

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()


def test_mail_notifier(master, workers):
    """MailNotifier with BuildStatusGenerator(mode="problem"): the failure after a success is
    mailed once (not the next failure), with Buildbot's headers, the interested user (the
    owner) in To and the extra recipient in CC, and the body has the content of the log its
    formatter wants; the SMTP server was down when the build ended, the master stopped, and
    the next start delivers the stored mail."""
    import email
    import email.policy

    www, smtp = problem_mail_master(master, workers)
    try:
        built(www, force(www, "gamma", project="python/cpython", revision=SHA1))
        bad = built(www, force(www, "gamma", project="python/cpython", revision=SHA2, rc="1",
                               username="Jane Doe <jane@example.org>"))
        built(www, force(www, "gamma", project="python/cpython", revision=SHA2, rc="1"))
        # nothing listens yet
        master.wait_log(r"MailNotifier: <bbmaster.*attempt 1 failed")
        master.stop()  # the mail stays stored, envelope and all, for the next start
        [(name, value)] = outbox_rows(master)
        row = json.loads(value)
        assert row["kind"] == 3 and "payload" not in row  # its message is a file's, in zstd
        outbox = os.path.join(master.dir, "outbox")
        assert os.listdir(outbox) == [row["file"]]
        with open(os.path.join(outbox, row["file"]), "rb") as f:
            assert f.read(4) == b"\x28\xb5\x2f\xfd"
        # files no row names (a mail made as a stop came, one half written) go at the start
        for orphan in ("0123456789abcdef.mail.zst", "0123456789abcdef.mail.zst.tmp.77"):
            with open(os.path.join(outbox, orphan), "wb") as f:
                f.write(b"x")
        # and a mail stored whole, as bbmaster stored them before, is still sent
        old = dict(row, payload="Subject: old\r\n\r\nstored whole\r\n",
                   path="<old@example.org>")
        del old["file"]
        db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
        db.execute("INSERT INTO object_state (objectid, name, value_json) SELECT objectid, "
                   "?, ? FROM object_state WHERE name = ?", ("0" * 20, json.dumps(old), name))
        db.commit()
        db.close()
        smtp.start()
        master.start()
        wait_for(lambda: len(smtp.mails) == 2 and not outbox_rows(master),
                 what="the mails delivered")
    finally:
        if smtp.controller.server is not None:
            smtp.stop()
    assert len(smtp.mails) == 2  # each once
    assert os.listdir(outbox) == []  # the files went with their rows
    [whole] = [m for m in smtp.mails if b"stored whole" in m[2]]
    assert whole[2] == b"Subject: old\r\n\r\nstored whole\r\n"
    sender, rcpts, content, encrypted, _ = [m for m in smtp.mails if m is not whole][0]
    assert not encrypted  # a relay that offers no STARTTLS
    assert sender == "bb@example.org"
    assert sorted(rcpts) == ["jane@example.org", "list@example.org"]
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg["From"] == "Buildbot <bb@example.org>"
    to = msg["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in to] == [("Jane Doe", "jane@example.org")]
    assert msg["CC"] == "list@example.org"
    assert msg["Reply-To"] == "list@example.org"
    assert msg["X-Builder"] == f"gamma #{bad['number']} \u2620"  # rendered, RFC 2047
    assert b"\r\nX-Builder: =?utf-8?b?" in content
    assert msg["Subject"] == "\u2620 Buildbot (Mail): gamma - failed 'sh -c ...' (failure) " \
        "((unknown revision))"  # Buildbot's '(%s)' around its '(unknown revision)'
    assert msg["Message-ID"] == f"<bbmaster.finished.{bad['buildid']}.MailNotifier@example.org>"
    assert msg["Date"]
    # the check step's stdio with its stream letters (want_logs_content), not more's, in
    # the text and, as Buildbot's createEmail attaches every log read, attached
    assert msg.get_content_type() == "multipart/mixed"
    text = msg.get_body().get_content()
    shown = re.fullmatch(r"new failure on gamma: BUILD FAILED: failed 'sh -c \.\.\.' "
                         r"\(failure\)\nworker_preparation=success\ncheck=failure\n"
                         r"(hsh -c 'echo checked; exit 1'\n(h.*\n)*ochecked\n(h.*\n)+)"
                         r"more=success\n\n\n", text)
    assert shown, text
    [log] = msg.iter_attachments()
    assert log.get_filename() == "check.stdio"
    assert log.get_content() == shown.group(1)  # the text the context read, attached whole
    assert master.count(r"MailNotifier: sent mail <bbmaster\.finished") == 1


def test_a_mail_whose_file_went_is_set_aside(master, workers):
    """A mail's message waits in outbox/.  When its file goes while the relay is down (the
    folder emptied), the next attempt says so and the mail is not tried again (it would be,
    for a day), but its row stays, as it does at a start: the file put back, the next start
    sends it."""
    www, smtp = problem_mail_master(master, workers)
    built(www, force(www, "gamma", project="python/cpython", revision=SHA1))
    built(www, force(www, "gamma", project="python/cpython", revision=SHA2, rc="1"))
    master.wait_log(r"MailNotifier: <bbmaster.*attempt 1 failed")
    [name] = os.listdir(os.path.join(master.dir, "outbox"))
    path = os.path.join(master.dir, "outbox", name)
    with open(path, "rb") as f:
        kept = f.read()
    os.remove(path)
    master.wait_log(rf"MailNotifier: mail <bbmaster\.finished.*: its message, outbox/{name}, "
                    r"is gone; not sent, its row stays in the database")
    time.sleep(1)
    assert master.count(r"attempt 2 failed") == 0
    master.stop()
    assert len(outbox_rows(master)) == 1
    with open(path, "wb") as f:
        f.write(kept)
    smtp.start()
    try:
        master.start()
        wait_for(lambda: len(smtp.mails) == 1 and not outbox_rows(master), what="the mail sent")
    finally:
        smtp.stop()


def test_outbox_folder_that_is_a_file(master):
    """The mails' messages wait in outbox/: a file of that name stops the start, saying so,
    rather than every mail failing later."""
    write_mail_config(master, free_port(), MAIL_PROBLEM.replace("SMTP_PORT", str(free_port())))
    with open(os.path.join(master.dir, "outbox"), "w") as f:
        f.write("not a folder")
    master.cli("upgrade-master", master.dir, check=0)
    r = master.cli("start", master.dir, check=1)
    assert "reporters: outbox is there and is not a folder" in r.stdout + r.stderr


def test_a_relay_slow_to_answer_holds_no_build(master, workers):
    """libcurl waits for a relay's reply to a message in a blocking poll; mails are sent from
    a thread of their own, so a relay that holds its reply holds nothing else: a build forced
    meanwhile runs to its end, and the mail is delivered at its first attempt once the relay
    answers."""
    www, smtp_port = free_port(), free_port()
    smtp = FakeSMTP(smtp_port, hold=True)
    smtp.start()
    write_mail_config(master, www, f"""R.mail_notifier{{ fromaddr = "bb@example.org",
      relayhost = "127.0.0.1", smtpPort = {smtp_port}, extraRecipients = {{ "l@example.org" }},
      generators = {{ R.build_status_generator{{ mode = "failing" }} }} }}""")
    try:
        master.start()
        workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")
        bad = built(www, force(www, "gamma", project="python/cpython", revision=SHA1, rc="1"))
        wait_for(smtp.arrived.is_set, what="the mail's message at the relay")
        ok = built(www, force(www, "gamma", project="python/cpython", revision=SHA2))
        assert (bad["results"], ok["results"], smtp.mails) == (2, 0, [])
        smtp.release.set()
        wait_for(lambda: smtp.mails and not outbox_rows(master), what="the mail delivered")
    finally:
        smtp.release.set()
        smtp.stop()
    assert master.count(r"MailNotifier: sent mail <bbmaster\.finished") == 1
    assert master.count(r"attempt 1 failed") == 0


MAIL_CONTEXT = r'''R.mail_notifier{ fromaddr = "bb@example.org", relayhost = "127.0.0.1",
      smtpPort = SMTP_PORT, extraRecipients = { "list@example.org" },
      generators = { R.build_status_generator{ mode = "failing", builders = { "gamma" },
        message_formatter = R.message_formatter{ want_logs_content = { "check.stdio" },
          build_additional_context = function(ctx)
            local log = ctx.build.steps[2].logs[1].content.content
            ctx.build.checked = log:find("\nochecked\n", 1, true) ~= nil
            return { note = "returned", buildername = ctx.buildername .. "!" }
          end,
          template = "{{ buildername }} {{ note }} {{ build.checked }} [{{ blamelist }}] "
          .. "prev={{ previous_results }} "
          .. "{% for s in build.steps %}{{ s.name }};{% endfor %}" } } } },
    R.mail_notifier{ name = "Broken", fromaddr = "bb@example.org", relayhost = "127.0.0.1",
      smtpPort = SMTP_PORT, extraRecipients = { "broken@example.org" },
      generators = { R.build_status_generator{ mode = "failing", builders = { "gamma" },
        message_formatter = R.message_formatter{ template = "{{ summary }}",
          build_additional_context = function(ctx) error("no context today") end } } } },
    R.mail_notifier{ name = "NoLogs", fromaddr = "bb@example.org", relayhost = "127.0.0.1",
      smtpPort = SMTP_PORT, extraRecipients = { "nologs@example.org" },
      generators = { R.build_status_generator{ mode = "failing", builders = { "gamma" },
        add_logs = false,
        message_formatter = R.message_formatter{ want_logs_content = true,
          build_additional_context = function(ctx)
            return { read = ctx.build.steps[2].logs[1].content ~= nil }
          end,
          template = "read={{ read }}" } } } }'''


def test_mail_build_additional_context(master, workers):
    """A message_formatter's build_additional_context (MessageFormatter.buildAdditionalContext)
    sees the template's context with the log content its formatter wants; what it sets in the
    context and the keys of the table it returns are the template's, the rest as it was (a
    None, an empty list); one that fails is logged and its reporter sends nothing, as with a
    failing message_formatter_function.  The logs read are attached; add_logs = false reads
    none, whatever the formatter wants."""
    import email
    import email.policy

    www, smtp_port = free_port(), free_port()
    smtp = FakeSMTP(smtp_port)
    write_mail_config(master, www, MAIL_CONTEXT.replace("SMTP_PORT", str(smtp_port)))
    smtp.start()
    try:
        master.start()
        workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")
        built(www, force(www, "gamma", project="python/cpython", revision=SHA1, rc="1"))
        master.wait_log(r"Broken: .*no context today")
        wait_for(lambda: len(smtp.mails) == 2, what="the mails")
    finally:
        smtp.stop()
    mails = {tuple(rcpts): email.message_from_bytes(content, policy=email.policy.default)
             for _, rcpts, content, _, _ in smtp.mails}
    msg = mails[("list@example.org",)]
    assert msg.get_body().get_content() == ("gamma! returned True [] prev= "
                                            "worker_preparation;check;more;\n\n")
    assert [a.get_filename() for a in msg.iter_attachments()] == ["check.stdio"]
    # add_logs = false takes want_logs_content's place, as in Buildbot: nothing read
    msg = mails[("nologs@example.org",)]
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == "read=False\n\n"
    assert master.count(r"sent mail") == 2


MAIL_FAILING = r'''R.mail_notifier{ fromaddr = "bb@example.org", relayhost = "127.0.0.1",
      smtpPort = SMTP_PORT, useTls = true, smtpUser = "bb", smtpPassword = "s3cret",
      dumpMailsToLog = true,
      sendToInterestedUsers = false,
      extraRecipients = { "z@example.org", "Ann <ann@example.org>", "z@example.org" },
      generators = { R.build_status_generator{ mode = "failing",
        add_logs = { "check.stdio", "stdio", "nothing" },
        message_formatter = R.message_formatter{ subject = "{{ buildername }} failed",
          template = "{{ summary }}" } } } },
    R.mail_notifier{ name = "Smtps", fromaddr = "bb@example.org", relayhost = "127.0.0.1",
      smtpPort = SMTPS_PORT, useSmtps = true, extraRecipients = { "s@example.org" },
      generators = { R.build_status_generator{ mode = "failing", builders = { "delta" } } } }'''


def test_mail_starttls_auth_and_refusals(master, workers, tmp_path):
    """useTls with a relay whose certificate is self-signed (Buildbot's Twisted sender does
    not verify it either), smtpUser and smtpPassword, sendToInterestedUsers = false (the extra
    recipients in To, sorted, without repeats); add_logs naming "check.stdio" and every
    "stdio": the logs attached up to 2 MiB, the one that passes it cut, the later one left
    out; the relay answers 451 to the first DATA: the mail is sent again later and delivered
    once; a 550 drops the next mail. A second reporter, useSmtps, to a relay that speaks TLS
    from the start."""
    import email
    import email.policy
    import subprocess

    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=relay.example"], check=True,
                   capture_output=True)
    www, smtp_port = free_port(), free_port()
    smtp = FakeSMTP(smtp_port, replies=["451 4.3.0 Try again later"], tls=(cert, key),
                    login=(b"bb", b"s3cret"))
    smtps_port = free_port()
    smtps = FakeSMTP(smtps_port, tls=(cert, key), smtps=True)
    write_mail_config(master, www, MAIL_FAILING.replace("SMTP_PORT", str(smtp_port))
                      .replace("SMTPS_PORT", str(smtps_port)))
    smtp.start()
    smtps.start()
    try:
        master.start()
        workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")
        bad = built(www, force(www, "delta", rc="1"))
        master.wait_log(r"MailNotifier: <bbmaster\.finished.*smtp 451, "
                        r"451 4\.3\.0 Try again later; attempt 1 failed")
        wait_for(lambda: smtp.mails and not outbox_rows(master), what="the mail delivered")
        smtp.replies = ["550 5.7.1 Not from you"]  # a 5xx: the next mail is dropped
        built(www, force(www, "gamma", rc="1"))
        master.wait_log(r"MailNotifier: mail <bbmaster\.finished\.2\.MailNotifier@example\.org> "
                        r"to .* refused: smtp 550, 550 5\.7\.1 Not from you; not retried")
        assert not outbox_rows(master)
    finally:
        smtp.stop()
        smtps.stop()
    # useSmtps: TLS from the first byte, no AUTH without smtpUser; only delta's build
    assert [(m[1], m[3], m[4]) for m in smtps.mails] == [(["s@example.org"], True, None)]
    assert smtp.replies == []
    assert len(smtp.mails) == 1
    sender, rcpts, content, encrypted, login = smtp.mails[0]
    assert (sender, sorted(rcpts), encrypted, login) == (
        "bb@example.org", ["ann@example.org", "z@example.org"], True, b"bb")
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    text, log, big = msg.iter_parts()
    assert text.get_content() == "BUILD FAILED: failed 'sh -c ...' (failure)\n\n"
    assert [p.get_filename() for p in (log, big)] == ["check.stdio", "big.stdio"]
    assert log.get_content_type() == "text/plain" and log["Content-Transfer-Encoding"] == "base64"
    lines = log.get_content().splitlines()
    assert "ochecked" in lines and lines[0].startswith("h") and lines[-1].startswith("h")
    cut = "\n[bbmaster: the log is cut here: the logs of a mail are at most 2097152 bytes]\n"
    text = big.get_content()
    assert text.endswith(cut)
    assert len(log.get_content().encode()) + len(text.encode()) - len(cut) == 2 * 1024 * 1024
    assert "o0123456789abcdefghijklmnopqrstuvwxyz\n" in text
    assert master.count(r"MailNotifier: mail data:.*Subject: delta failed") == 1  # dumpMailsToLog
    assert master.count(r"log 'more\.stdio' not attached: the mail's logs are at most") == 1
    assert b'\r\nTo: "Ann" <ann@example.org>, z@example.org\r\n' in content  # formatAddress
    assert msg["CC"] is None
    assert msg["Subject"] == "delta failed"
    assert msg["Message-ID"] == f"<bbmaster.finished.{bad['buildid']}.MailNotifier@example.org>"
    assert master.count(r"MailNotifier: sent mail <bbmaster\.finished") == 1
