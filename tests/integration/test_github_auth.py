"""bbm.www.github_auth: Buildbot's GitHubAuth login through the real /auth/login flow.

GitHub is the one party that cannot be reached from here: a local server plays it (serverURL
points there, as for GitHub Enterprise: /login/oauth/* and /api/v3), answering as GitHub
does (the token form-encoded, /user, /user/emails, /user/orgs in pages linked by the Link
header) and recording what it was asked.  A browser is a requests session."""

import json
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import free_port, wait_for
from test_auth import CONFIG, Site, deny

CLIENT_ID, CLIENT_SECRET, TOKEN = "the-client-id", "the-client-secret", "gho_tok123"


class FakeGitHub:
    """GitHub's OAuth and REST API v3 endpoints under one address.  `mode` makes it fail:
    "500" answers /user with 500, "hang" answers /user/emails only once released."""

    def __init__(self):
        self.calls = []
        self.mode = None
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status, body, ctype="application/json", headers=()):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def graphql(self, query):
                if self.headers.get("Authorization") != f"token {TOKEN}":
                    return self.send(401, '{"message": "Bad credentials"}')
                if "viewer" in query:
                    second = 'after: "b3JnczE="' in query
                    orgs = ["team-core"] if second else ["python", "restricted"]
                    return self.send(200, json.dumps({"data": {"viewer": {
                        "email": "", "login": "octocat", "name": "The Octocat",
                        "organizations": {
                            "pageInfo": {"hasNextPage": not second,
                                         "endCursor": None if second else "b3JnczE="},
                            "edges": [{"node": {"login": o}} for o in orgs]}}}}))
                data = {}
                for alias, org, cursor in re.findall(
                        r'(\w+): organization\(login: "([^"]+)"\) \{ teams\(first: 100'
                        r'(?:, after: "([^"]+)")?, userLogins: \["octocat"\]\)', query):
                    if org == "restricted":
                        data[alias] = None
                        continue
                    teams = {("python", ""): [("Python Core", "python-core")],
                             ("python", "dGVhbXMx"): [("python-triage", "python-triage")],
                             ("team-core", ""): [("x", "x")]}[(org, cursor)]
                    more = (org, cursor) == ("python", "")
                    data[alias] = {"teams": {
                        "pageInfo": {"hasNextPage": more,
                                     "endCursor": "dGVhbXMx" if more else None},
                        "edges": [{"node": {"name": n, "slug": sl}} for n, sl in teams]}}
                self.send(200, json.dumps({"data": data}))

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                if self.path == "/api/graphql":
                    query = json.loads(self.rfile.read(n))["query"]
                    fake.calls.append(("POST", self.path, query, dict(self.headers)))
                    return self.graphql(query)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                fake.calls.append(("POST", self.path, {k: v[0] for k, v in form.items()},
                                   dict(self.headers)))
                if self.path != "/login/oauth/access_token":
                    return self.send(404, '{"message": "Not Found"}')
                if form.get("code") != ["good"] or form.get("client_secret") != [CLIENT_SECRET]:
                    return self.send(200, "error=bad_verification_code&error_description=The+"
                                     "code+passed+is+incorrect+or+expired.&error_uri=https%3A"
                                     "%2F%2Fdocs.github.com", "application/x-www-form-urlencoded")
                self.send(200, f"access_token={TOKEN}&scope=read%3Aorg%2Cuser%3Aemail&token_type="
                          "bearer", "application/x-www-form-urlencoded")

            def do_GET(self):
                fake.calls.append(("GET", self.path, None, dict(self.headers)))
                if self.headers.get("Authorization") != f"token {TOKEN}":
                    return self.send(401, '{"message": "Requires authentication"}')
                base = f"http://127.0.0.1:{fake.port}/api/v3"
                if self.path == "/api/v3/user":
                    if fake.mode == "500":
                        return self.send(500, '{"message": "Server Error"}')
                    return self.send(200, json.dumps({"login": "octocat", "id": 1, "name":
                                                      "The Octocat", "email": None}))
                if self.path == "/api/v3/user/emails":
                    if fake.mode == "hang":
                        fake.release.wait(60)
                    return self.send(200, json.dumps([
                        {"email": "octo@users.noreply.github.com", "primary": False,
                         "verified": True, "visibility": None},
                        {"email": "octo@example.com", "primary": True, "verified": True,
                         "visibility": "public"}]))
                if self.path == "/api/v3/user/orgs?per_page=100":
                    return self.send(200, json.dumps([{"login": "python"}, {"login": "other"}]),
                                     headers=[("Link", f'<{base}/user/orgs?per_page=100&page=2>; '
                                               f'rel="next", <{base}/user/orgs?per_page=100&'
                                               'page=2>; rel="last"')])
                if self.path == "/api/v3/user/orgs?per_page=100&page=2":
                    many = [f"team-{i:04d}-{'x' * 40}" for i in range(300)] \
                        if fake.mode == "many" else []
                    return self.send(200, json.dumps([{"login": o}
                                                      for o in ["team-core"] + many]),
                                     headers=[("Link", f'<{base}/user/orgs?per_page=100&page=1>; '
                                               'rel="prev", <{base}/user/orgs?per_page=100&'
                                               'page=1>; rel="first"')])
                self.send(404, '{"message": "Not Found"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self):
        return [(m, p) for m, p, _, _ in self.calls]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github():
    g = FakeGitHub()
    yield g
    g.close()


def extra(github, auth_extra="", prefix="team-", role="core"):
    return f'''
    auth = bbm.www.github_auth{{ clientId = "{CLIENT_ID}", clientSecret = "{CLIENT_SECRET}",
                                serverURL = "{github.url}/",{auth_extra} }},
    authz = bbm.www.authz{{
      allowRules = {{ bbm.www.force_build_endpoint_matcher{{ role = "{role}" }} }},
      roleMatchers = {{ bbm.www.roles_from_groups{{ groupPrefix = "{prefix}" }} }},
    }}'''


def start_login(site, session, redirect="/builders"):
    """GET /auth/login: the 302 to GitHub's authorize page; its parameters (state included)."""
    base = f"http://localhost:{site.port}/"
    r = session.get(f"http://127.0.0.1:{site.port}/auth/login", params={"redirect": redirect},
                    allow_redirects=False)
    assert r.status_code == 302, r.text
    loc = r.headers["Location"]
    url, query = loc.split("?", 1)
    assert url == site.github.url + "/login/oauth/authorize"
    pairs = urllib.parse.parse_qsl(query)
    assert [k for k, _ in pairs] == ["client_id", "redirect_uri", "response_type", "scope",
                                     "state"]  # sorted by name, as Buildbot's
    params = dict(pairs)
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == base + "auth/login"
    assert params["response_type"] == "code"
    assert params["scope"] == "user:email read:org"
    return params["state"]


def callback(site, session, **params):
    return session.get(f"http://127.0.0.1:{site.port}/auth/login", params=params,
                       allow_redirects=False)


def make_site(master, github, auth_extra="", **kw):
    site = Site(master, www_extra=extra(github, auth_extra, **kw))
    site.github = github
    return site


def rpc_force(site, session):
    body = {"id": 1, "jsonrpc": "2.0", "method": "force",
            "params": {"builderNames": ["idle"], "reason": "r"}}
    r = session.post(f"http://127.0.0.1:{site.port}/api/v2/forceschedulers/force", json=body)
    return r.status_code, r.text


def test_github_login_then_force(master, github):
    """The whole login: GitHub's answers make the session (groups trimmed to what
    roles_from_groups can use, both pages of orgs read), the user lands on the page asked
    for, and the role from the team lets them force where anonymous is refused."""
    site = make_site(master, github, " debug = true")
    s = requests.Session()
    state = start_login(site, s)
    assert github.calls == []  # the authorize page is the browser's business
    r = callback(site, s, code="good", state=state)
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == f"http://localhost:{site.port}/#/builders"
    assert "TWISTED_SESSION" in s.cookies and "BBM_OAUTH_STATE" not in s.cookies
    assert github.paths() == [
        ("POST", "/login/oauth/access_token"), ("GET", "/api/v3/user"),
        ("GET", "/api/v3/user/emails"), ("GET", "/api/v3/user/orgs?per_page=100"),
        ("GET", "/api/v3/user/orgs?per_page=100&page=2")]
    form = github.calls[0][2]
    assert form == {"redirect_uri": f"http://localhost:{site.port}/auth/login", "code": "good",
                    "grant_type": "authorization_code", "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET}
    assert all(h.get("Authorization") == f"token {TOKEN}" for _, _, _, h in github.calls[1:])
    user = s.get(f"http://127.0.0.1:{site.port}/config").json()["user"]
    assert user == {"full_name": "The Octocat", "email": "octo@example.com",
                    "username": "octocat", "groups": ["team-core"]}
    config = s.get(f"http://127.0.0.1:{site.port}/config").json()
    assert config["auth"] == {"name": "GitHub", "oauth2": True, "fa_icon": "fa-github",
                              "autologin": False}
    status, text = rpc_force(site, s)
    assert status == 200 and '"result"' in text, text
    assert rpc_force(site, requests.Session()) == deny("core")
    master.wait_log(r"www: login: octo@example\.com")
    master.wait_log(r"www: github_auth: user details: .*\"username\":\"octocat\"")
    assert TOKEN not in master.log() and CLIENT_SECRET not in master.log()


def test_github_login_graphql_teams(master, github):
    """apiVersion = 4 with getTeamsMembership, as buildbot.python.org logs in: the viewer and
    its organizations (2 pages), then one aliased query for the teams of every organization
    (an organization that hides its teams gives null) and one for the next page of teams;
    the groups are Buildbot's ("org/name" and "org/slug"), kept under groupPrefix."""
    site = make_site(master, github, " apiVersion = 4, getTeamsMembership = true",
                     prefix="python/", role="python-triage")
    s = requests.Session()
    r = callback(site, s, code="good", state=start_login(site, s, redirect="/"))
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == f"http://localhost:{site.port}/#/"
    queries = [q for m, p, q, _ in github.calls if p == "/api/graphql"]
    assert len(queries) == 4, queries
    assert queries[0].startswith("query { viewer { email login name organizations(first: 100)")
    assert 'after: "b3JnczE="' in queries[1]
    assert queries[2].count("organization(login:") == 3
    assert queries[3].count("organization(login:") == 1 and 'after: "dGVhbXMx"' in queries[3]
    user = s.get(f"http://127.0.0.1:{site.port}/config").json()["user"]
    assert user == {"full_name": "The Octocat", "email": "", "username": "octocat",
                    "groups": ["python/Python Core", "python/python-core",
                               "python/python-triage"]}
    status, text = rpc_force(site, s)
    assert status == 200 and '"result"' in text, text
    assert rpc_force(site, requests.Session()) == deny("python-triage")
    master.wait_log(r"www: login: octocat")


def test_groups_are_cut_to_fit_a_cookie(master, github):
    """300 more organizations under the groupPrefix: the session keeps the first that fit,
    and its cookie stays under the 4 KB browsers keep."""
    site = make_site(master, github)
    github.mode = "many"
    s = requests.Session()
    r = callback(site, s, code="good", state=start_login(site, s))
    assert r.status_code == 302, r.text
    cookie = next(c for c in r.raw.headers.getlist("Set-Cookie")
                  if c.startswith("TWISTED_SESSION="))
    assert len(cookie.split(";")[0]) < 4096
    groups = s.get(f"http://127.0.0.1:{site.port}/config").json()["user"]["groups"]
    every = ["team-core"] + [f"team-{i:04d}-{'x' * 40}" for i in range(300)]
    assert 10 < len(groups) < len(every) and groups == every[:len(groups)]
    master.wait_log(r"www: github_auth: octo@example\.com: \d+ groups left out of the session")


def test_github_login_refusals(master, github):
    """A state not this browser's, a code GitHub refuses, GitHub failing, GitHub silent past
    the timeout, the user saying no: each a 403 page saying why, and no session."""
    master.env["BBM_OAUTH_TIMEOUT"] = "1"
    site = make_site(master, github)

    def refused(r, why):
        assert r.status_code == 403, r.text
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert why in r.text, r.text
        assert "TWISTED_SESSION" not in r.cookies

    s = requests.Session()
    state = start_login(site, s)
    other = start_login(site, requests.Session())
    refused(callback(site, s, code="good", state=other), "log in again")
    refused(callback(site, requests.Session(), code="good", state=state), "log in again")
    refused(callback(site, s, code="good"), "log in again")
    assert github.calls == []

    refused(callback(site, s, code="bad", state=start_login(site, s)),
            "OAuth2 session: creation failed: The code passed is incorrect or expired.")
    github.mode = "500"
    refused(callback(site, s, code="good", state=start_login(site, s)),
            "OAuth2 session: error accessing resource /user: 500")
    github.mode = "hang"
    refused(callback(site, s, code="good", state=start_login(site, s)),
            "GitHub did not answer (/user/emails)")
    github.release.set()
    refused(callback(site, s, error="access_denied", state=start_login(site, s),
                     error_description="The user has denied your application access."),
            "The user has denied your application access.")
    assert s.get(f"http://127.0.0.1:{site.port}/config").json()["user"] == {"anonymous": True}
    master.wait_log(r"www: github_auth: login refused: GitHub did not answer")


@pytest.mark.parametrize("auth_extra, message", [
    (" apiVersion = 5", "GitHubAuth apiVersion must be 3 or 4 not 5"),
    (" getTeamsMembership = true",
     "Retrieving team membership information using GitHubAuth is only possible using GitHub "
     "api v4."),
    (' serverURL = "ftp://x"', "serverURL must be an http:// or https:// URL"),
    (" autologin = true", "autologin"),
])
def test_checkconfig_refuses_bad_github_auth(master, github, auth_extra, message):
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": port, "db": "sqlite:///state.sqlite",
                          "www_extra": extra(github, auth_extra)})
    r = master.cli("checkconfig", master.dir)
    assert r.returncode != 0
    assert re.search(r"master\.lua:\d+: .*" + re.escape(message), r.stdout + r.stderr), \
        r.stdout + r.stderr


def test_stopping_answers_a_login_waiting_for_github(master, github):
    """A login waiting for GitHub when the master stops is answered (503), and the master
    stops cleanly (no leak, no crash under the sanitizers)."""
    site = make_site(master, github)
    github.mode = "hang"
    s = requests.Session()
    state = start_login(site, s)
    answers = []

    def login():
        r = callback(site, s, code="good", state=state)
        answers.append(r.status_code)
        assert "the master is stopping" in r.text

    t = threading.Thread(target=login)
    t.start()
    wait_for(lambda: ("GET", "/api/v3/user/emails") in github.paths(), what="the login's call")
    assert master.stop().returncode == 0
    t.join(60)
    assert answers == [503], answers
    github.release.set()
