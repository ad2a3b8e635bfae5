"""Reporters that post messages: Buildbot's HttpStatusPush (used for Discord: a JSON body
from a MessageFormatterFunction, ?wait=true, the 2,000-character content trimmed, a 429's
retry_after obeyed) and GitHubCommentPush (a comment on the build's pull request, trimmed to
GitHub's 65,536 characters, never posted twice: a retried comment is first looked for by its
hidden marker, after an ambiguous answer and after the master was killed).  Builds are run
by a real buildbot-worker; Discord and GitHub are local servers that record the requests and
answer as they do."""

import base64
import http.server
import json
import os
import re
import shutil
import signal
import threading
import time
import urllib.parse

import pytest

from conftest import api_get, free_port, pid_alive, wait_for
from test_reporters import built, force, outbox_rows

SHA1 = "1" * 40
CPYTHON = os.path.join(os.path.dirname(__file__), "..", "..", "cpython")

CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
local function discord(ctx)
  local b = ctx.build
  if #b.changes ~= 0 then return nil end
  local msg = ":warning: **Buildbot failure** :warning:\n\nThe buildbot **" .. b.builder.name
    .. "** (" .. (b.builder.tags[1] or "tierless") .. ") has failed.\n\n"
    .. "[Jump to the build page.](" .. b.url .. ")"
  if b.properties.long == "1" then
    msg = msg .. "\n```\n" .. string.rep("test_x failed\n", 300) .. "```\n"
  end
  return { content = msg }
end
return {
  title = "push",
  buildbotURL = "http://bb/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "alpha", workernames = { "w1" }, tags = { "tier-1" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "sh", "-c",
        bbm.interpolate("exit %%(prop:rc:-0)s") } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "alpha" },
      properties = { bbm.params.string{ name = "rc", default = "0" },
                     bbm.params.string{ name = "long", default = "0" },
                     bbm.params.string{ name = "pr", default = "" } } },
  },
  services = {
%(services)s
  },
}
'''

HTTP_SERVICES = r'''
    R.http_status_push{ serverUrl = "%(url)s/api/webhooks/123/tok", name = "DiscordReporter",
      generators = { R.build_status_generator{ mode = "failing", builders = { "alpha" },
        message_formatter = R.message_formatter_function{ ["function"] = discord,
          template_type = "json" } } } },
    R.http_status_push{ serverUrl = "%(url)s/hook", auth = { "user", "pw" },
      headers = { ["X-Hook"] = "yes" } },
    R.http_status_push{ serverUrl = "%(url)s/gone", name = "Gone",
      generators = { R.build_status_generator{ mode = "failing",
        message_formatter = R.message_formatter{ template = "{{ buildername }}" } } } },
'''

COMMENT_SERVICES = r'''
    R.github_comment_push{ token = "tok", baseURL = "%(url)s",
      generators = { R.build_status_generator{ mode = "failing",
        message_formatter = R.message_formatter{
          template = "Build {{ buildername }} failed: {{ build_url }}" } } } },
    R.github_comment_push{ token = "tok", baseURL = "%(url)s", name = "PR",
      issue = function(ctx) return tonumber(ctx.build.properties.pr) end,
      generators = { R.build_status_generator{ mode = "failing",
        message_formatter = R.message_formatter_function{ template_type = "plain",
          ["function"] = function(ctx)
            return "Failed: " .. ctx.build.url .. "\n" .. string.rep("y", 70000) end } } } },
'''


class Fake:
    """Discord's webhook (/api/webhooks/...: 200 with the message with wait=true, else 204;
    400 past 2,000 characters), a plain hook (204), and GitHub's issue comments (POST 201,
    GET with since, per_page and page, and a Link header).  `script` maps a path to answers
    (status, headers, body) given once each, before (or, with `after`, after storing)."""

    def __init__(self, port=0):
        self.calls = []  # (method, path, query, headers, body, status)
        self.script = {}
        self.comments = {}  # path -> [comment]
        self.hold = threading.Event()
        self.hold.set()
        self.held = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body, headers=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                items = [c for c in fake.comments.get(url.path, [])
                         if c["updated_at"] >= q.get("since", "")]
                per, page = int(q.get("per_page", 30)), int(q.get("page", 1))
                fake.calls.append(("GET", url.path, dict(q), dict(self.headers), None, 200))
                headers = {}
                if page * per < len(items):
                    q["page"] = str(page + 1)
                    nxt = f"{fake.url}{url.path}?{urllib.parse.urlencode(q)}"
                    headers["Link"] = f'<{nxt}>; rel="next"'
                self.answer(200, items[(page - 1) * per:page * per], headers)

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n))
                script = fake.script.get(url.path, [])
                status, headers, answer = (script.pop(0) if script and not script[0][3]
                                           else (None, {}, None, False))[:3]
                if status is None and url.path.startswith("/repos/"):
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    fake.comments.setdefault(url.path, []).append(
                        {"id": len(fake.calls) + 1, "body": body["body"], "created_at": now,
                         "updated_at": now})
                    status, answer = 201, fake.comments[url.path][-1]
                    if script and script[0][3]:  # stored, then a scripted answer
                        status, headers, answer = script.pop(0)[:3]
                    if status == "hold":
                        fake.held.set()
                        fake.hold.wait(60)
                        return
                elif status is None and url.path.startswith("/api/webhooks/"):
                    if len(body.get("content", "")) > 2000:
                        status, answer = 400, {"content": ["Must be 2000 or fewer in length."]}
                    elif q.get("wait") == "true":
                        status, answer = 200, {"id": "1", "content": body["content"]}
                        if not fake.posts(url.path, 200):  # the bucket is spent, for 0.2 s
                            headers = {"X-RateLimit-Remaining": "0",
                                       "X-RateLimit-Reset-After": "0.2"}
                    else:
                        status, answer = 204, None
                elif status is None:
                    status, answer = (404, {"message": "Not Found"}) if url.path == "/gone" \
                        else (204, None)
                fake.calls.append(("POST", url.path, q, dict(self.headers), body, status))
                self.answer(status, answer, headers)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path, status=None):
        return [c for c in self.calls if c[0] == "POST" and c[1] == path and
                (status is None or c[5] == status)]

    def close(self):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = Fake()
    yield f
    f.close()


def configure(master, services, url, www):
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": www,
                          "services": services % {"url": url}})


def test_http_status_push_to_discord(master, workers, fake):
    www = free_port()
    configure(master, HTTP_SERVICES, fake.url, www)
    hook = "/api/webhooks/123/tok"
    fake.script = {hook: [(429, {}, {"message": "You are being rate limited.",
                                     "retry_after": 0.3, "global": False}, False)],
                   "/hook": [(503, {"Retry-After": "1"}, {"message": "busy"}, False)]}
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    bad = built(www, force(www, "alpha", project="octo/hello", revision=SHA1, rc="1"))
    long = built(www, force(www, "alpha", project="octo/hello", revision=SHA1, rc="1",
                            long="1"))
    ok = built(www, force(www, "alpha", project="octo/hello", revision=SHA1))
    wait_for(lambda: len(fake.posts(hook, 200)) == 2 and len(fake.posts("/hook", 204)) == 6
             and not outbox_rows(master), what="every message delivered")

    # Discord: the 429 was obeyed (retry_after 0.3 taken as 1 s), each message posted once
    # with ?wait=true, in order; the long one trimmed to 2,000 characters with a mark
    assert [c[5] for c in fake.posts(hook)] == [429, 200, 200]
    assert all(c[2] == {"wait": "true"} for c in fake.posts(hook))
    first, second = [c[4]["content"] for c in fake.posts(hook, 200)]
    assert first == (":warning: **Buildbot failure** :warning:\n\nThe buildbot **alpha** "
                     "(tier-1) has failed.\n\n[Jump to the build page.](http://bb/#/builders/"
                     f"{bad['builderid']}/builds/{bad['number']})")
    assert len(second) <= 2000 and second.startswith(first.replace(
        f"builds/{bad['number']})", f"builds/{long['number']})") + "\n```\ntest_x failed\n")
    assert re.search(r"\ntest_x failed\n```\n… \(\d+ more characters not shown\)$", second), \
        second[-200:]
    assert master.count(r"DiscordReporter: the message of build \d+ finished \(notification "
                        r"\d+\): http 429, .*attempt 1 failed, next in 1\.0 s") == 1
    # the bucket Discord said was spent (X-RateLimit-Remaining: 0) made the next one wait
    assert master.count(r"DiscordReporter: the webhook's rate limit is spent; its next "
                        r"message in 1\.0 s") == 1

    # the default generator: the build's dictionary as JSON, as it starts and as it finishes,
    # with the auth and headers given; the 503 retried
    got = [c for c in fake.posts("/hook") if c[5] == 204]
    assert [(b["number"], b["complete"], b["results"]) for *_, b, _ in got] == [
        (bad["number"], False, None), (bad["number"], True, 2),
        (long["number"], False, None), (long["number"], True, 2),
        (ok["number"], False, None), (ok["number"], True, 0)]
    assert got[1][4]["builder"] == {"builderid": bad["builderid"], "name": "alpha",
                                    "tags": ["tier-1"], "description": None}
    assert got[1][4]["properties"]["rc"] == "1"
    auth = "Basic " + base64.b64encode(b"user:pw").decode()
    assert all(c[3]["Authorization"] == auth and c[3]["X-Hook"] == "yes" and
               c[3]["Content-Type"] == "application/json" for c in fake.posts("/hook"))
    assert [c[5] for c in fake.posts("/hook")].count(503) == 1

    # a 404 is the request's fault: logged as Buildbot does and not retried
    assert [c[5] for c in fake.posts("/gone")] == [404, 404]
    assert master.count(r"Gone: unable to upload status the message of build \d+ finished "
                        r"\(notification \d+\): http 404, .*Not Found.*; not retried") == 2


# A reporter whose end reports take a while when the build's `long` is 1: the next build
# starts while the reports' thread makes them.
SLOW_SERVICES = r'''
    R.http_status_push{ serverUrl = "%(url)s/hook" },
    R.http_status_push{ serverUrl = "%(url)s/slow", name = "Slow",
      generators = { R.build_status_generator{ mode = "all",
        message_formatter = R.message_formatter_function{ template_type = "json",
          ["function"] = function(ctx)
            if ctx.build.properties.long == "1" then os.execute("sleep 4") end
            return { number = ctx.build.number } end } } } },
'''


def hook_events(fake):
    return [(b["number"], b["complete"]) for *_, b, _ in fake.posts("/hook")]


def test_reports_keep_the_order_of_events(master, workers, fake):
    """A build's start is reported after the end of the build before it, though that end's
    reports were still being made when it started; and so after a stop left them queued."""
    www = free_port()
    configure(master, SLOW_SERVICES, fake.url, www)
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    builds = [built(www, force(www, "alpha", project="octo/hello", revision=SHA1, long="1"))]
    builds.append(built(www, force(www, "alpha", project="octo/hello", revision=SHA1)))
    wait_for(lambda: len(fake.posts("/slow")) == 2 and not outbox_rows(master),
             what="the reports of both builds")
    assert master.count(r"posted the message of build \d+ started") == 2

    # the master stops while it makes the third build's end: the fourth build's start and
    # end wait behind it, and are made at the next start, in that order
    builds.append(built(www, force(www, "alpha", project="octo/hello", revision=SHA1, long="1")))
    builds.append(built(www, force(www, "alpha", project="octo/hello", revision=SHA1)))
    assert master.count(r"posted the message of build \d+ started") == 3  # not the fourth's
    master.stop()
    assert master.count(r"reporters: the reports of \d+ event\(s\) an earlier master") == 0
    master.start()
    master.wait_log(r"reporters: the reports of 2 event\(s\) an earlier master left are made now")
    wait_for(lambda: len(fake.posts("/slow")) == 4 and not outbox_rows(master),
             what="the reports of the fourth build")
    assert hook_events(fake) == [(b["number"], c) for b in builds for c in (False, True)]


def test_github_comment_push(master, workers, fake):
    www = free_port()
    configure(master, COMMENT_SERVICES, fake.url, www)
    pr7 = "/repos/octo/hello/issues/7/comments"
    pr9 = "/repos/octo/hello/issues/9/comments"
    # GitHub takes the first comment on #7 but the answer is lost (a 502 from a proxy)
    fake.script = {pr7: [(502, {"Retry-After": "1"}, {"message": "Bad Gateway"}, True)]}
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    bad = built(www, force(www, "alpha", project="octo/hello", revision=SHA1, rc="1",
                           branch="refs/pull/7/merge", pr="9"))
    built(www, force(www, "alpha", project="octo/hello", revision=SHA1, branch="main"))
    wait_for(lambda: not outbox_rows(master) and fake.comments.get(pr9),
             what="the comments delivered")
    # Buildbot's issue from refs/pull/7/merge; the retry looked first, found it, posted none
    assert len(fake.comments[pr7]) == 1
    body = fake.comments[pr7][0]["body"]
    url = f"http://bb/#/builders/{bad['builderid']}/builds/{bad['number']}"
    assert re.fullmatch(rf"Build alpha failed: {re.escape(url)}\n\n"
                        r"<!-- bbmaster:outbox \d+ \d+\.\d+ -->", body), body
    assert [c[0] for c in fake.calls if c[1] == pr7] == ["POST", "GET"]
    get = [c for c in fake.calls if c[0] == "GET"][0]
    assert get[2]["per_page"] == "100" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                                       get[2]["since"])
    assert master.count(r"GitHubCommentPush: the message of build \d+ finished on "
                        r"octo/hello#7 \(notification \d+\) was posted already") == 1
    # the `issue` function's #9, and the body trimmed to GitHub's 65,536 characters
    (long,) = fake.comments[pr9]
    assert len(long["body"]) <= 65536 and long["body"].startswith(f"Failed: {url}\nyyy")
    assert re.search(r"y\n… \(\d+ more characters not shown\)\n\n<!-- bbmaster:outbox ",
                     long["body"])
    assert all(c[3]["Authorization"] == "token tok" and c[3]["User-Agent"] == "Buildbot"
               for c in fake.calls)

    # killed after GitHub took a comment and before the master heard: the next run looks
    # (past a first page of other comments) and does not post it again
    fake.comments[pr7] += [{"id": 1000 + i, "body": "other", "created_at": "2099",
                            "updated_at": "2099"} for i in range(150)]
    fake.script = {pr7: [("hold", {}, None, True)]}
    fake.hold.clear()
    built(www, force(www, "alpha", project="octo/hello", revision=SHA1, rc="1",
                     branch="refs/pull/7/head"))
    fake.held.wait(60)
    pid = master.pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the master to die")
    os.remove(os.path.join(master.dir, "bbmaster.pid"))
    fake.hold.set()
    assert len(fake.comments[pr7]) == 152
    master.start()
    wait_for(lambda: not outbox_rows(master), what="the outbox emptied")
    assert len(fake.comments[pr7]) == 152
    gets = [c for c in fake.calls if c[0] == "GET"][1:]
    assert [g[2].get("page", "1") for g in gets] == ["1", "2"]
    assert master.count(r"was posted already") == 2


@pytest.mark.parametrize("service, message", [
    ('bbm.reporters.http_status_push{ serverUrl = "ftp://x" }',
     "'serverUrl' must be an http:// or https:// URL"),
    ('bbm.reporters.http_status_push{ serverUrl = "http://x", cert = "c.pem" }',
     "'cert' is not implemented by bbmaster"),
    ('bbm.reporters.http_status_push{ serverUrl = "http://x", headers = { ["A"] = "b\\r\\nC: d" } }',
     "'headers' must map header names to values without line breaks"),
    ('bbm.reporters.http_status_push{ serverUrl = "http://x", auth = { "u" } }',
     "'auth' must be { user, password }"),
    ('bbm.reporters.github_comment_push{ token = "t", context = "c" }',
     "'context' is not implemented by bbmaster"),
    ('bbm.reporters.github_comment_push{ token = "t", generators = { '
     'bbm.reporters.build_status_generator{ message_formatter = '
     'bbm.reporters.message_formatter_function{ ["function"] = print, template_type = "xml" } '
     '} } }', "template_type \"xml\" is not \"plain\", \"html\" or \"json\""),
    ('bbm.reporters.http_status_push{ serverUrl = "http://x", generators = { '
     'bbm.reporters.build_status_generator{ message_formatter = '
     'bbm.reporters.message_formatter_function{ ["function"] = print, template_type = "json", '
     'want_logs_content = print } } } }',
     "want_logs_content must be true, false or a list of log names (\"name\" or \"step.name\"), "
     "not a function"),
])
def test_checkconfig_refuses(master, service, message):
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write('local bbm = require "bbm"\nreturn {\n  workers = {},\n'
                f'  services = {{\n    {service},\n  }},\n}}\n')
    r = master.cli("checkconfig", master.dir)
    assert r.returncode != 0
    assert re.search(r"master\.lua:5: .*" + re.escape(message), r.stdout + r.stderr), \
        r.stdout + r.stderr


CHANGES_CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
local function report(ctx)
  local issues = {}
  for _, c in ipairs(ctx.build.changes) do
    issues[#issues + 1] = c.comments:match("%%(#(%%d+)%%)") or c.comments:match("%%([Gg][Hh]%%-(%%d+)%%)")
  end
  return { content = ("changes=%%d issues=%%s"):format(#ctx.build.changes,
                                                  table.concat(issues, ",")) }
end
return {
  buildbotURL = "http://bb/",
  db_url = "%(db)s",
  protocols = { pb = { port = %(pb)d } },
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "alpha", workernames = { "w1" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "sh", "-c",
      bbm.interpolate("exit %%(prop:rc:-0)s") } } } } },
  change_source = { bbm.changes.pb{ user = "sender", passwd = "s3nd" } },
  schedulers = { bbm.schedulers.any_branch{ name = "all", builderNames = { "alpha" } } },
  services = {
    R.http_status_push{ serverUrl = "%(url)s/api/webhooks/1/t",
      generators = { R.build_status_generator{ mode = "all",
        message_formatter = R.message_formatter_function{ ["function"] = report,
          template_type = "json" } } } },
  },
}
'''


def test_function_sees_the_changes_since_the_last_success(master, workers, fake, backend):
    """A formatter function's build.changes are Buildbot's builds/N/changes: the build's
    change and its parents back to the previous successful build's, on either database."""
    db = "sqlite:///state.sqlite" if backend == "sqlite" else backend
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CHANGES_CONFIG % {"pb": master.pb_port, "url": fake.url, "db": db})
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    hook = "/api/webhooks/1/t"
    for i, (comments, rc) in enumerate([("a (GH-1)", "0"), ("b (GH-2)", "1"),
                                        ("c (#3)", "1"), ("d (gh-4)", "0")]):
        r = master.cli("sendchange", "--master", f"127.0.0.1:{master.pb_port}", "--auth",
                       "sender:s3nd", "--who", "ada", "--branch", "main", "--revision",
                       str(i + 1) * 40, "--repository", "https://github.com/o/r",
                       "--comments", comments, "--property", f"rc:{rc}", "--vc", "git", "f.py")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(fake.posts(hook, 200)) == i + 1, what=f"build {i + 1} reported")
    assert [c[4]["content"] for c in fake.posts(hook, 200)] == [
        "changes=1 issues=1", "changes=1 issues=2", "changes=2 issues=3,2",
        "changes=3 issues=4,3,2"]


# upstream's custom/pr_reporter.py and custom/discord_reporter.py, verbatim
UPSTREAM_PR_MESSAGE = """\
:warning::warning::warning: Buildbot failure :warning::warning::warning:
------------------------------------------------------------------------

Hi! The buildbot **{buildername}** ({tier}) has failed when building commit {sha}.

What do you need to do:

1. Don't panic.
2. Check [the buildbot page in the devguide](https://devguide.python.org/buildbots/) \
if you don't know what the buildbots are or how they work.
3. Go to the page of the buildbot that failed ({build_url}) \
and take a look at the build logs.
4. Check if the failure is related to this commit ({sha}) or \
if it is a false positive.
5. If the failure is related to this commit, please, reflect \
that on the issue and make a new Pull Request with a fix.

You can take a look at the buildbot page here:

{build_url}

{failed_test_text}

Summary of the results of the build (if available):

{summary_text}

<details>
<summary>Click to see traceback logs</summary>

{tracebacks}

</details>
"""
UPSTREAM_DISCORD_MESSAGE = """\
:warning: **Buildbot failure** :warning:

The buildbot **{buildername}** ({tier}) has failed when building commit \
[{sha:.12}](https://github.com/python/cpython/commit/{sha}).

[Jump to the build page.]({build_url})
"""

CPYTHON_CONFIG = r'''local bbm = require "bbm"
local pr_reporter = require "custom.pr_reporter"
local discord_reporter = require "custom.discord_reporter"
return {
  buildbotURL = "http://bb/all/",
  protocols = { pb = { port = %(pb)d } },
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "AMD64 Debian root 3.x", workernames = { "w1" },
    tags = { "3.x", "stable", "tier-2", "tier-1" },
    factory = bbm.factory{
      bbm.steps.shell{ name = "compile", command = { "sh", "-c", "echo compiled; echo oops >&2" } },
      bbm.steps.shell{ name = "test", command = { "sh", "-c", "cat '%(log)s'; exit 2" } } } } },
  change_source = { bbm.changes.pb{ user = "sender", passwd = "s3nd" } },
  schedulers = { bbm.schedulers.any_branch{ name = "all",
    builderNames = { "AMD64 Debian root 3.x" } } },
  services = {
    pr_reporter.GitHubPullRequestReporter("tok", { builders = { "AMD64 Debian root 3.x" },
      buildbot_url = "http://bb/all/", verbose = true, baseURL = "%(url)s" }),
    discord_reporter.DiscordReporter("%(url)s/api/webhooks/1/t",
      { builders = { "AMD64 Debian root 3.x" } }),
  },
}
'''


# What CPython's test suite prints when a test fails (`make buildbottest`), and what
# upstream's custom/testsuite_utils.py finds in it (checked with upstream's code).
CPYTHON_TEST_LOG = """\
0:00:00 load avg: 1.00 Run 2 tests sequentially
0:00:01 load avg: 1.00 [1/2] test_foo
======================================================================
FAIL: test_len (test.test_foo.FooTest.test_len)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/w/Lib/test/test_foo.py", line 10, in test_len
    self.assertEqual(len(x), 2)
AssertionError: 1 != 2

test_foo failed (1 failure)
0:00:02 load avg: 1.00 [2/2] test_bar
test_bar leaked [1, 1, 1] references, sum=3

== Tests result: FAILURE ==

1 test failed:
    test_foo

1 test OK.

Total duration: 2 sec
Tests result: FAILURE
"""
UPSTREAM_FAILING = ("Failed tests:\n\n- test_foo\n\nFailed subtests:\n\n"
                    "- test_len - test.test_foo.FooTest.test_len\n\n"
                    "Test leaking resources:\n\n- test_bar: references\n")
UPSTREAM_SUMMARY = ("== Tests result: FAILURE ==\n\n1 test failed:\n    test_foo\n\n"
                    "1 test OK.\n\nTotal duration: 2 sec\n")
UPSTREAM_TRACEBACK = ('Traceback (most recent call last):\n'
                      '  File "/w/Lib/test/test_foo.py", line 10, in test_len\n'
                      '    self.assertEqual(len(x), 2)\nAssertionError: 1 != 2\n')


def test_cpython_pr_and_discord_reporters(master, workers, fake):
    """cpython/custom's ports of BPO's GitHubPullRequestReporter and DiscordReporter: a
    failing build of one change comments on the first "(GH-n)"/"(#n)" of its message and
    posts to Discord, both in upstream's words, with the failed tests, the test summary and
    the traceback that custom/testsuite_utils.lua reads from the `test` step's log (the
    formatters' want_logs_content, the log written by a real worker); a failing build of two
    changes does neither."""
    shutil.copytree(os.path.join(CPYTHON, "custom"), os.path.join(master.dir, "custom"))
    log = os.path.join(master.dir, "test.log")
    with open(log, "w") as f:
        f.write(CPYTHON_TEST_LOG)
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CPYTHON_CONFIG.replace("%(url)s", fake.url).replace("%(log)s", log)
                % {"pb": master.pb_port})
    r = master.cli("checkconfig", master.dir)
    assert r.returncode == 0, r.stdout + r.stderr
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    sha = "0123456789abcdef0123456789abcdef01234567"
    for i, (rev, comments) in enumerate([(sha, "[3.13] gh-1: x (GH-456) (#789)"),
                                         ("f" * 40, "gh-2: y (#790)")]):
        r = master.cli("sendchange", "--master", f"127.0.0.1:{master.pb_port}", "--auth",
                       "sender:s3nd", "--who", "ada", "--branch", "main", "--revision", rev,
                       "--repository", "https://github.com/python/cpython", "--project",
                       "python/cpython", "--comments", comments, "--vc", "git", "f.py")
        assert r.returncode == 0, r.stderr
        master.wait_log(rf"build {i + 1}: .* finished: failure")
    wait_for(lambda: not outbox_rows(master) and fake.posts("/api/webhooks/1/t", 200),
             what="the messages delivered")
    url = "http://bb/all/#/builders/1/builds/1"
    (comment,) = fake.comments["/repos/python/cpython/issues/456/comments"]
    body = re.sub(r"\n\n<!-- bbmaster:outbox \d+ [\d.]+ -->$", "", comment["body"])
    assert body == UPSTREAM_PR_MESSAGE.format(
        buildername="AMD64 Debian root 3.x", tier="tier-1", sha=sha, build_url=url,
        failed_test_text=UPSTREAM_FAILING, summary_text=UPSTREAM_SUMMARY,
        tracebacks=f"```python-traceback\n{UPSTREAM_TRACEBACK}\n```")
    discord = UPSTREAM_DISCORD_MESSAGE.format(buildername="AMD64 Debian root 3.x",
                                              tier="tier-1", sha=sha, build_url=url)
    discord += f"\n```\n{UPSTREAM_FAILING}\n```\n"
    assert [c[4] for c in fake.posts("/api/webhooks/1/t")] == [{"content": discord}]
    assert len([c for c in fake.calls if c[1].startswith("/repos/")]) == 1
