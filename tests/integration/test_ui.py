"""The web UI's pages over HTTP, without a browser: on Buildbot 4.3's fixture database every
page a crawler reaches from / answers 200 with well-formed HTML and the same facts /api/v2
gives; hostile names, comments and log lines from a real build come out escaped; the forms
act through the control path as JSON-RPC does, and refuse a bad token or another site."""

import html.parser
import http.client
import json
import os
import re
import threading
import urllib.parse

import pytest

from conftest import api_get, free_port, wait_for
import test_api
from test_api import FIXTURES, serve

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Checker(html.parser.HTMLParser):
    """Well-formedness as far as a page needs it: every element closed in order, no id
    twice, and the links and text collected."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.links, self.errors, self.text = [], set(), [], [], []
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            if a["id"] in self.ids:
                self.errors.append(f"id {a['id']!r} twice")
            self.ids.add(a["id"])
        for k in ("href", "src"):
            if k in a:
                self.links.append(a[k])
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}})
        if tag == "input" and self.forms and "name" in a:
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def fetch(port, path, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data, r


def page(port, path):
    """A page that must answer 200 with well-formed HTML: its parse."""
    status, body, r = fetch(port, path)
    assert status == 200, (path, status, body[:300])
    assert r.getheader("Content-Type") == "text/html; charset=utf-8", path
    assert "script-src 'self' 'sha256-" in r.getheader("Content-Security-Policy"), path
    text = body.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>"), path
    c = Checker()
    c.feed(text)
    c.close()
    assert not c.errors and c.stack == [], (path, c.errors[:5], c.stack)
    c.body = text
    return c


@pytest.fixture
def site(master):
    return serve(master, os.path.join(FIXTURES, "state-4.3-after-builds.sqlite"))


def test_a_crawl_from_home_finds_every_page_well_formed_and_no_broken_link(site):
    seen, todo, api_links, per_path = set(), ["/"], set(), {}
    while todo and len(seen) < 1000:
        path = todo.pop(0)
        bare = path.split("?")[0]
        # a few queries of each page (a waterfall's "Earlier" links go on for ever)
        if path in seen or per_path.get(bare, 0) >= 4:
            continue
        seen.add(path)
        per_path[bare] = per_path.get(bare, 0) + 1
        c = page(site, path)
        for link in c.links:
            u = urllib.parse.urlsplit(link)
            if u.scheme or u.netloc or not u.path.startswith("/"):
                continue
            target = u.path + ("?" + u.query if u.query else "")
            if u.path.startswith("/api/"):
                api_links.add(target)
            elif re.fullmatch(r"/ui\.[0-9a-f]{8}\.(css|js)", u.path):
                status, _, r = fetch(site, target)
                assert status == 200 and "immutable" in r.getheader("Cache-Control")
            elif target not in seen:
                todo.append(target)
    assert len(seen) > 60, sorted(seen)
    for link in sorted(api_links)[:40]:
        assert fetch(site, link)[0] == 200, link
    for path in ("/builders/1/builds/1", "/workers/1", "/changes/1", "/pendingbuildrequests",
                 "/builders/1/builds/1/steps/1/logs/stdio", "/masters", "/schedulers", "/about"):
        assert path in seen


def test_pages_show_what_the_api_answers(site):
    builders = api_get(site, "builders")["builders"]
    c = page(site, "/builders")
    for b in builders:
        assert f'href="/builders/{b["builderid"]}"' in c.body and b["name"] in c.body
    for build in api_get(site, "builds?limit=12")["builds"]:
        c = page(site, f'/builders/{build["builderid"]}/builds/{build["number"]}')
        results = ["success", "warnings", "failure", "skipped", "exception", "retry",
                   "cancelled"][build["results"]]
        assert f'<span class="pill {results}" id="result">{results}</span>' in c.body
        steps = api_get(site, f'builds/{build["buildid"]}/steps')["steps"]
        for s in steps:
            if not s["hidden"]:
                assert f'id="step-{s["number"]}"' in c.body
    workers = api_get(site, "workers")["workers"]
    c = page(site, "/workers")
    for w in workers:
        assert f'href="/workers/{w["workerid"]}"' in c.body
    c = page(site, "/changes")
    for ch in api_get(site, "changes?limit=10&order=-changeid")["changes"]:
        assert f'href="/changes/{ch["changeid"]}"' in c.body
    # a log page shows the log's lines, numbered from 1, with anchors
    log = api_get(site, "builders/1/builds/1/steps/1/logs/stdio")["logs"][0]
    chunk = api_get(site, f'logs/{log["logid"]}/contents')["logchunks"][0]
    c = page(site, "/builders/1/builds/1/steps/1/logs/stdio")
    assert 'id="L1"' in c.body and f'id="L{log["num_lines"]}"' in c.body
    text = "".join(c.text)
    for line in chunk["content"].splitlines():
        assert line[1:] in text


def test_tags_filter_builders_as_buildbot_does(master, monkeypatch):
    config = test_api.CONFIG.replace('tags = { "unix", "fast" }', 'tags = { "3.14", "stable" }')
    config = config.replace('tags = { "unix" }', 'tags = { "3.14", "unstable" }')
    config = config.replace('tags = { "exc" }', 'tags = { "stable" }')
    assert config.count('"3.14"') == 2
    monkeypatch.setattr(test_api, "CONFIG", config)
    port = serve(master, os.path.join(FIXTURES, "state-4.3-after-builds.sqlite"))
    ids = {b["name"]: b["builderid"] for b in api_get(port, "builders")["builders"]}

    def shown(query):
        body = page(port, "/builders" + query).body
        return {n for n in ("alpha", "beta", "gamma", "delta")
                if f'href="/builders/{ids[n]}">{n}</a>' in body}
    assert shown("") == {"alpha", "beta", "gamma", "delta"}
    assert shown("?tags=%2Bstable") == {"alpha", "gamma"}
    assert shown("?tags=-unstable") == {"alpha", "gamma", "delta"}
    assert shown("?tags=%2B3.14&tags=-unstable") == {"alpha"}
    assert shown("?tags=stable&tags=unstable") == {"alpha", "beta", "gamma"}
    assert shown("?tag=stable") == {"alpha", "gamma"}
    assert shown("?q=ET") == {"beta"}
    # builders of a branch tag are grouped under it
    assert re.search(r"<h2>3\.14</h2>.*alpha.*beta.*<h2>Other builders</h2>",
                     page(port, "/builders").body)


HOSTILE = r'''local bbm = require "bbm"
return {
  title = "hostile",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "pw") },
  builders = {
    bbm.builder{ name = %(name)s, workernames = { "w1" },
      description = "<img src=x onerror=alert(2)>",
      factory = bbm.factory{ bbm.steps.shell{ name = "<b>step</b>", command = { "sh", "-c",
        "printf 'plain <script>alert(3)</script> & \"q\"\\n\\033[31mred\\033[0m \\033[1;42mbold on green\\033[0m\\n\\033]0;title\\007osc\\r\\033[2Kprogress done\\n'; exit 1" } } } },
  },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { %(name)s },
    properties = { bbm.params.string{ name = "note", default = "" } } } },
}
'''
NAME = '"x<script>alert(1)</script>\'q\\"&"'


def test_hostile_names_comments_and_log_lines_come_out_escaped(master, workers):
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(HOSTILE % {"pb": master.pb_port, "www": port, "name": NAME})
    master.start()
    workers("w1", "pw", master.pb_port).start()
    wait_for(lambda: api_get(port, "workers/1")["workers"][0]["connected_to"], what="worker")
    c = page(port, "/builders/1/force/force")
    form = c.forms[0]
    fields = dict(form["fields"], note="<script>alert(4)</script>")
    status, _, r = fetch(port, form["action"], "POST", urllib.parse.urlencode(fields),
                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and r.getheader("Location") == "/builders/1"
    wait_for(lambda: api_get(port, "builds")["builds"]
             and api_get(port, "builds")["builds"][0]["complete"], what="build done")
    for path in ("/", "/builders", "/builders/1", "/builders/1/builds/1",
                 "/builders/1/builds/1/steps/1/logs/stdio", "/pendingbuildrequests",
                 "/workers/1", "/buildrequests/1"):
        body = page(port, path).body
        assert "<script>alert" not in body and "<img" not in body, path
        assert "onerror=alert" not in body or "&lt;img" in body, path
    body = page(port, "/builders/1/builds/1").body
    assert "x&lt;script&gt;alert(1)&lt;/script&gt;&#39;q&quot;&amp;" in body
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in body
    # the failed step is open with its last lines, colours as classes
    assert 'plain &lt;script&gt;alert(3)&lt;/script&gt; &amp; &quot;q&quot;' in body
    assert '<span class="a-f2">red</span>' in body
    assert '<span class="a-b3 a-bold">bold on green</span>' in body
    assert ">osc</span>" in body and "0;title" not in body
    assert "\x1b" not in body and "\x07" not in body


def test_forms_act_like_json_rpc_and_refuse_bad_tokens_and_other_sites(site):
    c = page(site, "/builders/1/force/force")
    form = c.forms[0]
    assert form["action"] == "/builders/1/force/force" and re.fullmatch("[0-9a-f]{32}",
                                                                          form["fields"]["csrf"])
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    fields = dict(form["fields"], reason="from the form")
    status, body, _ = fetch(site, "/builders/1/force/force", "POST",
                            urllib.parse.urlencode(dict(fields, csrf="0" * 32)), form_type)
    assert status == 403 and b"out of date" in body
    status, body, _ = fetch(site, "/builders/1/force/force", "POST",
                            urllib.parse.urlencode(fields),
                            dict(form_type, Origin="https://evil.example"))
    assert status == 403 and b"another site" in body
    status, body, _ = fetch(site, "/builders/1/force/force", "POST",
                            urllib.parse.urlencode(fields), {"Content-Type": "text/plain"})
    assert status == 415
    status, body, _ = fetch(site, "/builders/1/force/force", "POST",
                            urllib.parse.urlencode(dict(fields, outcome="nope")), form_type)
    assert status == 400 and b"does not belong to list of available choices" in body
    before = api_get(site, "buildrequests?complete=false")["buildrequests"]
    status, _, r = fetch(site, "/all/builders/1/force/force", "POST",
                         urllib.parse.urlencode(fields),
                         dict(form_type, Origin=f"http://127.0.0.1:{site}"))
    assert status == 303 and r.getheader("Location") == "/builders/1"
    new = [b for b in api_get(site, "buildrequests?complete=false&property=reason")
           ["buildrequests"] if b not in before]
    assert len(new) == 1 and new[0]["properties"]["reason"][0] == "from the form"
    brid = new[0]["buildrequestid"]
    # priority and cancel from the request's page, back where the form says
    c = page(site, f"/buildrequests/{brid}")
    token = c.forms[0]["fields"]["csrf"]
    status, _, r = fetch(site, f"/buildrequests/{brid}", "POST",
                         f"method=set_priority&priority=9&csrf={token}", form_type)
    assert status == 303 and r.getheader("Location") == f"/buildrequests/{brid}"
    assert api_get(site, f"buildrequests/{brid}")["buildrequests"][0]["priority"] == 9
    assert f'href="/buildrequests/{brid}"' in page(site, "/pendingbuildrequests").body
    status, _, r = fetch(site, f"/buildrequests/{brid}", "POST",
                         f"method=cancel&csrf={token}&back=%2Fpendingbuildrequests", form_type)
    assert status == 303 and r.getheader("Location") == "/pendingbuildrequests"
    assert api_get(site, f"buildrequests/{brid}")["buildrequests"][0]["results"] == 6
    # an unknown action is refused as the API refuses it
    status, body, _ = fetch(site, "/workers/1", "POST", f"method=explode&csrf={token}", form_type)
    assert status == 501 and b"action: explode is not supported" in body
    # schedulers: disable and enable again
    sid = api_get(site, "schedulers")["schedulers"][0]["schedulerid"]
    for enabled in ("false", "true"):
        status, _, r = fetch(site, f"/schedulers/{sid}", "POST",
                             f"method=enable&enabled={enabled}&csrf={token}&back=/schedulers",
                             form_type)
        assert status == 303 and r.getheader("Location") == "/schedulers"
        assert api_get(site, f"schedulers/{sid}")["schedulers"][0]["enabled"] == (
            enabled == "true")


def test_old_links_redirects_robots_and_errors(site):
    # the inline script that turns Buildbot's #/ links into paths comes first in <head>
    body = page(site, "/all/").body
    head = body[:body.index("</script>")]
    assert head.endswith("location.replace(p)})()") and "<meta charset" in head
    status, _, r = fetch(site, "/buildrequests/1?redirect_to_build=true")
    assert status == 302 and re.fullmatch(r"/builders/\d+/builds/\d+", r.getheader("Location"))
    status, body, r = fetch(site, "/robots.txt")
    assert status == 200 and b"Disallow: /api/" in body
    status, body, r = fetch(site, "/no/such/page")
    assert status == 404 and b"There is no page at this address." in body
    status, body, _ = fetch(site, "/builders/999")
    assert status == 404 and b"There is no such builder." in body
    status, body, _ = fetch(site, "/builders/1/builds/1/steps/1/logs/no-such-log")
    assert status == 404
    # /api/v2 is unchanged: a JSON answer, not a page
    status, body, r = fetch(site, "/api/v2/builders/1")
    assert status == 200 and json.loads(body)["builders"][0]["builderid"] == 1


def test_frontend_config_as_buildbot_serves_it(site):
    """GET /config: what Buildbot's own UI reads at start (www/config.py), in its key order
    and Python's JSON separators, without the webhook dialects."""
    status, body, r = fetch(site, "/config")
    assert status == 200 and r.getheader("Content-Type") == "application/json"
    assert r.getheader("Cache-Control") == "public,max-age=0"
    text = body.decode("ascii")
    config = json.loads(text)
    assert list(config) == ["port", "plugins", "auth", "authz", "avatar_methods", "logfileName",
                            "versions", "buildbotURL", "title", "titleURL", "multiMaster",
                            "user"]
    assert config["port"] == site and config["title"] == "fixture"
    assert config["auth"] == {"name": "NoAuth"} and config["user"] == {"anonymous": True}
    assert text.startswith('{"port": ') and "change_hook_dialects" not in text
    assert fetch(site, "/all/config")[1] == body


def test_www_redirects_send_short_paths_on_and_bad_ones_are_refused(master, monkeypatch):
    """www.redirects: buildbot.python.org's nginx shortcuts (/3.x -> the grid of a branch)
    as a master.lua key; a path that would hide the API is refused at checkconfig."""
    www = 'www = { port = %(www)d, redirects = { ["/3.x"] = "/grid?branch=main&tags=stable",\n' \
          '    ["/stable"] = "/builders?tags=%%2Bstable" } },'
    config = test_api.CONFIG.replace("www = { port = %(www)d },", www)
    assert config != test_api.CONFIG
    monkeypatch.setattr(test_api, "CONFIG", config)
    port = serve(master, os.path.join(FIXTURES, "state-4.3-after-builds.sqlite"))
    status, _, r = fetch(port, "/3.x")
    assert status == 302 and r.getheader("Location") == "/grid?branch=main&tags=stable"
    status, _, r = fetch(port, "/all/stable")
    assert status == 302 and r.getheader("Location") == "/builders?tags=%2Bstable"
    assert fetch(port, "/3.y")[0] == 404
    master.stop()
    with open(os.path.join(master.dir, "master.lua")) as f:
        text = f.read()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(text.replace('["/stable"]', '["/api/v2/builders"]'))
    line = 1 + text[:text.index('["/stable"]')].count("\n")
    r = master.cli("checkconfig", master.dir)
    assert r.returncode != 0
    assert (f"master.lua:{line - 1}: www.redirects: '/api/v2/builders': it would hide the home "
            "page, the API or /all/") in r.stdout + r.stderr


def test_pages_for_many_clients_at_once_and_a_stop_meanwhile(site, master):
    """Pages are rendered on threads of their own while their connections wait (jobs.c):
    twelve clients at once each get their own build's page whole while JSON-RPC is answered
    beside them; and a stop with pages still queued answers each one whole, or 503, or
    closes it: never another client's page (`make tsan` runs this too)."""
    builds = api_get(site, "builds?limit=12")["builds"]
    names = {b["builderid"]: b["name"] for b in api_get(site, "builders")["builders"]}
    errors = []

    def view(k, i):
        b = builds[(k + i) % len(builds)]
        status, body, _ = fetch(site, f'/builders/{b["builderid"]}/builds/{b["number"]}'
                                      f'?client={k}&view={i}')
        return status, body.decode(), f'<title>{names[b["builderid"]]} #{b["number"]} - '

    def client(k):
        try:
            for i in range(6):
                status, body, title = view(k, i)
                assert status == 200 and title in body and body.endswith("</html>\n"), \
                    (k, i, status, body[:200])
        except Exception as e:  # an assertion, or an HTTP error
            errors.append(f"client {k}: {e!r}")

    def rpc():
        try:
            for _ in range(4):
                body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": "stop", "params": {}})
                status, text, _ = fetch(site, "/api/v2/builds/1", "POST", body,
                                        {"Content-Type": "application/json"})
                assert status in (200, 400) and b'"jsonrpc"' in text, (status, text[:200])
        except Exception as e:
            errors.append(f"rpc: {e!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(12)]
    threads.append(threading.Thread(target=rpc))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    outcomes = []

    def at_stop(k):  # views until the master is gone
        seen = set()
        for i in range(10000):
            try:
                status, body, title = view(k, i)
            except (OSError, http.client.HTTPException):
                seen.add("closed")
                break
            if not ((status == 200 and title in body and body.endswith("</html>\n"))
                    or status == 503):
                errors.append(f"client {k}: {status} {body[:200]}")
            seen.add(status)
        outcomes.append(seen)

    threads = [threading.Thread(target=at_stop, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    stopped = master.stop()
    for t in threads:
        t.join()
    assert stopped.returncode == 0, (stopped.stdout, stopped.stderr)
    assert not errors and len(outcomes) == 16 and all("closed" in o for o in outcomes), \
        (errors, outcomes)
