"""Sessions, logins and authorization over real HTTP, as Buildbot's www does them.

Sessions are Buildbot's: an HS256 JWT {"user_info": ..., "exp": ...} in the TWISTED_SESSION
cookie, signed with the secret Buildbot keeps in object_state.  The tests mint and check
tokens with the standard library's HMAC, exactly as PyJWT does, with the secret read from
the database, so a session of either master is good on the other.  Authorization is
buildbot.python.org's rule table, checked cell by cell with Buildbot's exact 403 answers."""

import base64
import hashlib
import hmac
import html
import http.client
import json
import os
import re
import socket
import subprocess
import time

import bcrypt
import pytest
import requests
from requests.auth import HTTPDigestAuth

from conftest import db_rows, free_port, wait_for

WWW_CLASS = "buildbot.www.service.WWWService"

CONFIG = r'''local bbm = require "bbm"
return {
  title = "auth",
  buildbotURL = "http://localhost:%(www)d/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d,%(www_extra)s },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "sleepy", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ name = "nap", command = { "sleep", "60" } } } },
    bbm.builder{ name = "idle", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "sleepy", "idle" } },
  },
}
'''

# buildbot.python.org's custom/auth.py, verbatim order
BPO_AUTHZ = r'''
    auth = bbm.www.user_password_auth{ users = { alice = "alicepw", bob = "bobpw" } },
    authz = bbm.www.authz{
      allowRules = {
        bbm.www.any_endpoint_matcher{ role = "admins", defaultDeny = false },
        bbm.www.stop_build_endpoint_matcher{ role = "owner", defaultDeny = false },
        bbm.www.stop_build_endpoint_matcher{ role = "buildbot-owners", defaultDeny = false },
        bbm.www.stop_build_endpoint_matcher{ role = "python-triage", defaultDeny = false },
        bbm.www.stop_build_endpoint_matcher{ role = "python-core" },
        bbm.www.rebuild_build_endpoint_matcher{ role = "owner", defaultDeny = false },
        bbm.www.rebuild_build_endpoint_matcher{ role = "python-triage", defaultDeny = false },
        bbm.www.rebuild_build_endpoint_matcher{ role = "buildbot-owners", defaultDeny = false },
        bbm.www.rebuild_build_endpoint_matcher{ role = "python-core" },
        bbm.www.force_build_endpoint_matcher{ role = "owner", defaultDeny = false },
        bbm.www.force_build_endpoint_matcher{ role = "python-triage", defaultDeny = false },
        bbm.www.force_build_endpoint_matcher{ role = "python-core" },
        bbm.www.enable_scheduler_endpoint_matcher{ role = "python-release-managers" },
        bbm.www.any_control_endpoint_matcher{ role = "admins" },
      },
      roleMatchers = {
        bbm.www.roles_from_groups{ groupPrefix = "python/" },
        bbm.www.roles_from_owner{ role = "owner" },
        bbm.www.roles_from_username{ roles = { "admins" }, usernames = { "zware", "vstinner" } },
      },
    }'''


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(secret, user_info, exp=None, alg="HS256"):
    """A token as PyJWT writes it for Buildbot's BuildbotSession.uid."""
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":"),
                            sort_keys=True).encode())
    claims = {"user_info": user_info, "exp": int(time.time()) + 3600 if exp is None else exp}
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    signing = f"{header}.{payload}".encode()
    sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def verify(secret, token):
    """PyJWT's decode: the claims of a good HS256 token, else an AssertionError."""
    header, payload, sig = token.split(".")
    assert json.loads(unb64(header)) == {"alg": "HS256", "typ": "JWT"}
    want = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(want, unb64(sig)), "bad signature"
    claims = json.loads(unb64(payload))
    assert claims["exp"] > time.time()
    return claims


class Site:
    def __init__(self, master, backend="sqlite", www_extra=""):
        self.master = master
        self.port = free_port()
        self.backend = backend
        db = "sqlite:///state.sqlite" if backend == "sqlite" else backend
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": master.pb_port, "www": self.port, "db": db,
                              "www_extra": www_extra})
        master.start()

    def secret(self):
        rows = db_rows(self.master.dir, self.backend,
                       "SELECT s.value_json FROM object_state s JOIN objects o ON o.id = "
                       "s.objectid WHERE o.name = ? AND o.class_name = ? AND s.name = ?",
                       "www", WWW_CLASS, "session_secret")
        assert len(rows) == 1, rows
        return json.loads(rows[0][0])

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            c.close()

    def user(self, token=None, headers=None):
        h = dict(headers or {})
        if token is not None:
            h["Cookie"] = f"other=1; TWISTED_SESSION={token}"
        status, _, body = self.request("GET", "/config", headers=h)
        assert status == 200
        return json.loads(body)["user"]

    def login(self, user, password):
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.request("GET", "/auth/login?redirect=/builders",
                            headers={"Authorization": f"Basic {auth}"})

    def digest(self, user, password):
        """/auth/login as python-requests logs in with HTTP Digest: a first request, its 401
        challenge, then the answer."""
        return requests.get(f"http://127.0.0.1:{self.port}/auth/login?redirect=/builders",
                            auth=HTTPDigestAuth(user, password), allow_redirects=False,
                            timeout=60)

    def rpc(self, path, method, token=None, **params):
        body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": method, "params": params})
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Cookie"] = f"TWISTED_SESSION={token}"
        status, _, answer = self.request("POST", f"/api/v2/{path}", body.encode(), headers)
        return status, answer.decode()


def cookie_of(headers):
    values = [v for k, v in headers if k.lower() == "set-cookie"]
    assert len(values) == 1, headers
    m = re.fullmatch(r"TWISTED_SESSION=([^;]+); Path=/; HttpOnly; SameSite=Lax", values[0])
    assert m, values[0]
    return m.group(1)


def ws_open(port, token=None):
    """A WebSocket handshake on /ws: the status line and the bytes that follow the head up
    to the connection's end (a refusal), or the pong to a ping (an accepted socket)."""
    cookie = f"Cookie: TWISTED_SESSION={token}\r\n" if token is not None else ""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{cookie}\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0].decode()
        if not status.startswith("HTTP/1.1 101"):
            while chunk := s.recv(4096):
                rest += chunk
            return status, rest
        payload = b'{"cmd":"ping","_id":1}'
        mask = b"\x01\x02\x03\x04"
        s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                  bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while len(rest) < 2 or len(rest) < 2 + rest[1]:
            rest += s.recv(4096)
        return status, rest[2:2 + rest[1]]


def challenges(headers):
    """The WWW-Authenticate values of a 401, in order."""
    return [v for k, v in headers if k.lower() == "www-authenticate"]


def test_digest_login(master):
    """Buildbot's /auth/login offers Twisted's Digest (MD5, qop auth, realm buildbot) before
    Basic; python-requests' HTTPDigestAuth logs in; a challenge is good only with its own
    nonce, from its client, signed by this master."""
    site = Site(master, www_extra=VIEWERS_AUTHZ)
    status, headers, body = site.request("GET", "/auth/login")
    assert (status, body) == (401, b"Unauthorized")
    digest, basic = challenges(headers)
    assert re.fullmatch(r'Digest nonce="[0-9a-f]{24}", opaque="[0-9a-f]{64}-[A-Za-z0-9+/]+=*", '
                        r'qop="auth", algorithm="MD5", realm="buildbot"', digest), digest
    assert basic == 'Basic realm="buildbot"'
    r = site.digest("alice", "alicepw")
    assert r.status_code == 302 and r.headers["Location"] == f"http://localhost:{site.port}/#/builders"
    assert site.user(cookie_of(list(r.headers.items()))) == {"username": "alice", "email": "alice"}
    assert site.digest("alice", "bobpw").status_code == 401
    assert site.digest("carol", "x").status_code == 401
    # an answer computed by hand (RFC 2617), first right, then with a nonce the opaque
    # was not made for, and with a forged opaque
    nonce = re.search(r'nonce="([^"]+)"', digest).group(1)
    opaque = re.search(r'opaque="([^"]+)"', digest).group(1)

    def md5(text):
        return hashlib.md5(text.encode()).hexdigest()

    def answer(nonce, opaque, password="bobpw"):
        ha1, ha2 = md5(f"bob:buildbot:{password}"), md5("GET:/auth/login")
        response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
        value = (f'Digest username="bob", realm="buildbot", nonce="{nonce}", '
                 f'uri="/auth/login", response="{response}", opaque="{opaque}", qop=auth, '
                 f'nc=00000001, cnonce="c0ffee", algorithm=MD5')
        return site.request("GET", "/auth/login", headers={"Authorization": value})[0]
    assert answer(nonce, opaque) == 302
    assert answer(nonce, opaque, "alicepw") == 401
    assert answer("0" * 24, opaque) == 401
    forged = opaque.split("-")[1]
    assert answer(nonce, "0" * 64 + "-" + forged) == 401
    master.wait_log(r"www: login refused: bob \(a Digest answer to no current challenge\)")
    master.wait_log(r"www: login: alice")


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def test_sessions_are_buildbots_both_ways(master, backend):
    """The secret is Buildbot's (object_state, JSON string of 32 hex characters); a token
    Buildbot would mint is accepted, bbmaster's verify with Buildbot's algorithm, anything
    wrong with a token is anonymous, and the secret survives a restart."""
    site = Site(master, backend, "\n    auth = bbm.www.user_password_auth{ users = "
                                 "{ alice = \"alicepw\" } }")
    secret = site.secret()
    assert re.fullmatch(r"[0-9a-f]{32}", secret)
    status, _, body = site.request("GET", "/config")
    assert json.loads(body)["auth"] == {"name": "UserPasswordAuth"}
    anonymous = {"anonymous": True}
    assert site.user() == anonymous

    jane = {"full_name": "Jane Doe", "email": "jane@example.org", "username": "jdoe",
            "groups": ["python", "python/python-core"]}
    assert site.user(mint(secret, jane)) == jane
    # PyJWT refuses these, and Buildbot makes the request anonymous
    assert site.user(mint(secret, jane, exp=int(time.time()) - 1)) == anonymous
    assert site.user(mint("0" * 32, jane)) == anonymous
    assert site.user(mint(secret, jane, alg="HS512")) == anonymous
    header_none = b64(b'{"alg":"none","typ":"JWT"}')
    payload = mint(secret, jane).split(".")[1]
    assert site.user(f"{header_none}.{payload}.") == anonymous
    assert site.user("not.a.token") == anonymous
    assert site.user(mint(secret, jane) + "x") == anonymous

    # a login's cookie verifies as PyJWT would, for a week
    status, headers, _ = site.login("alice", "alicepw")
    assert status == 302
    assert header(headers, "Location") == f"http://localhost:{site.port}/#/builders"
    token = cookie_of(headers)
    claims = verify(secret, token)
    assert claims["user_info"] == {"username": "alice", "email": "alice"}
    assert abs(claims["exp"] - (time.time() + 7 * 24 * 3600)) < 60
    assert list(claims) == ["user_info", "exp"]
    assert site.user(token) == {"username": "alice", "email": "alice"}
    master.wait_log(r"www: login: alice")

    # no anonymous Set-Cookie on API answers or pages
    status, headers, _ = site.request("GET", "/api/v2/builders")
    assert status == 200 and header(headers, "Set-Cookie") is None

    # logout: an anonymous session, back to the UI
    status, headers, _ = site.request("GET", "/auth/logout", headers={
        "Cookie": f"TWISTED_SESSION={token}"})
    assert status == 302
    assert header(headers, "Location") == f"http://localhost:{site.port}/#/"
    assert verify(secret, cookie_of(headers))["user_info"] == anonymous

    # the same secret after a restart
    master.stop()
    master.start()
    assert site.secret() == secret
    assert site.user(mint(secret, jane)) == jane


def test_a_secret_buildbot_stored_is_used(master):
    """A database Buildbot made already has the secret: bbmaster uses it, not a new one."""
    site = Site(master)
    master.stop()
    ours = "0123456789abcdef0123456789abcdef"
    import sqlite3
    db = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
    db.execute("UPDATE object_state SET value_json = ? WHERE name = 'session_secret'",
               (json.dumps(ours),))
    db.commit()
    db.close()
    master.start()
    user = {"username": "u", "email": "u@example.org"}
    assert site.user(mint(ours, user)) == user


def test_htpasswd_and_remote_user(master, tmp_path):
    """htpasswd_auth reads its file at every login (plain passwords as Buildbot's
    FilePasswordDB, and crypt/{SHA} hashes); remote_user_auth takes the proxy's header."""
    pw = tmp_path / "htpasswd"
    sha = base64.b64encode(hashlib.sha1(b"carolpw").digest()).decode()

    def openssl(*args):
        return subprocess.run(["openssl", "passwd", *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    pw.write_text(f"# comment\nalice:alicepw\nbob:{openssl('-6', 'bobpw')}\n"
                  f"carol:{{SHA}}{sha}\ndave:{openssl('-apr1', 'davepw')}\n"
                  # Apache's own example line: "myName:$apr1$...", password "myPassword"
                  "erin:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n"
                  f"frank:{bcrypt.hashpw(b'frankpw', bcrypt.gensalt(4)).decode()}\n")
    site = Site(master, www_extra=f'\n    auth = bbm.www.htpasswd_auth{{ passwdFile = "{pw}" }}')
    for user, password in [("alice", "alicepw"), ("bob", "bobpw"), ("carol", "carolpw"),
                           ("dave", "davepw"), ("erin", "myPassword"), ("frank", "frankpw")]:
        status, headers, _ = site.login(user, password)
        assert status == 302, user
        assert site.user(cookie_of(headers)) == {"username": user, "email": user}
    for user, password in [("alice", "nope"), ("bob", "x"), ("nobody", "alicepw"),
                           ("dave", "x"), ("frank", "x"), ("carol", "x")]:
        status, headers, body = site.login(user, password)
        assert status == 401 and challenges(headers)[1] == 'Basic realm="buildbot"'
    status, headers, _ = site.request("GET", "/auth/login")
    assert status == 401
    # /ws with no rules: anyone, but a session cookie that is not a good token is refused,
    # as ws.py's parse_user_info_from_token raises into a ConnectionDeny
    assert ws_open(site.port)[0] == "HTTP/1.1 101 Switching Protocols"
    assert ws_open(site.port, cookie_of(site.login("alice", "alicepw")[1]))[0] == \
        "HTTP/1.1 101 Switching Protocols"
    assert ws_open(site.port, "not.a.token") == ("HTTP/1.1 403 Forbidden", b"")
    # Digest compares the file's text as the password, as Twisted's FilePasswordDB does:
    # a plain entry logs in; a hashed one only with the hash's text itself
    bob_hash = re.search(r"^bob:(.*)$", pw.read_text(), re.M).group(1)
    for user, password, want in [("alice", "alicepw", 302), ("alice", "x", 401),
                                 ("bob", "bobpw", 401), ("bob", bob_hash, 302)]:
        r = site.digest(user, password)
        assert r.status_code == want, (user, password, r.status_code)
        if want == 302:
            assert site.user(cookie_of(list(r.headers.items()))) == {"username": user,
                                                                     "email": user}
    master.wait_log(r"www: login refused: nobody")

    # the reading, as FilePasswordDB's: the first line of a user decides, trailing blanks
    # go (bytes.rstrip), a line without ':' is skipped; bbmaster's bound on a line skips a
    # longer one (with a word, as for a line that is not user:password) and reads on
    pw.write_text("# a comment\nalice:alicepw\nalice:second\n" + "x" * 5000 + ":long\n"
                  "not a user line\n\ngina:ginapw  \t\r\n")
    for user, password, want in [("alice", "alicepw", 302), ("alice", "second", 401),
                                 ("gina", "ginapw", 302), ("gina", "ginapw  ", 401)]:
        assert site.login(user, password)[0] == want, (user, password)
        assert site.digest(user, password).status_code == want, (user, password)
    master.wait_log(rf"www: htpasswd_auth: {re.escape(str(pw))}:4: longer than 4096 bytes or "
                    r"holding a NUL byte; skipped")
    master.wait_log(rf"www: htpasswd_auth: {re.escape(str(pw))}:5: not a user:password line; "
                    r"skipped")
    assert not re.search(r"htpasswd:[136]: ", master.log()), master.log()
    master.stop()

    with open(os.path.join(master.dir, "master.lua")) as f:
        text = f.read()
    regex = "(?P<username>[^ @]+)@(?P<realm>[^ @]+)(?: (?P<full_name>.+))?"
    text = re.sub(r"auth = bbm\.www\.htpasswd_auth\{[^}]*\}",
                  f'auth = bbm.www.remote_user_auth{{ header = "X-Remote-User", '
                  f'headerRegex = "{regex}" }}', text)
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(text)
    master.start()
    # Buildbot's user_info: the regex's groupdict() (None for a group that took no part),
    # then its default user info provider's {"email": username}
    assert site.user(headers={"X-Remote-User": "jdoe@EXAMPLE.ORG Jane Doe"}) == {
        "username": "jdoe", "realm": "EXAMPLE.ORG", "full_name": "Jane Doe", "email": "jdoe"}
    assert site.user(headers={"X-Remote-User": "jdoe@EXAMPLE.ORG"}) == {
        "username": "jdoe", "realm": "EXAMPLE.ORG", "full_name": None, "email": "jdoe"}
    assert site.user(headers={"X-Remote-User": "no realm"}) == {"anonymous": True}
    assert site.user() == {"anonymous": True}
    # a header that does not match, or none: the session's user, and Buildbot's
    # maybeAutoLogin 403 text shown as its index shows on_load_warning
    for value, warning in [
            ("no realm", f'http header does not match regex! "no realm" not matching {regex}'),
            (None, "missing http header X-Remote-User. Check your reverse proxy config!")]:
        h = {"X-Remote-User": value} if value is not None else {}
        status, _, body = site.request("GET", "/builders", headers=h)
        assert status == 200
        assert f'<span class="warning">{html.escape(warning)}</span>' in body.decode(), body
    status, _, body = site.request("GET", "/builders", headers={"X-Remote-User": "a@b"})
    assert status == 200 and b'class="warning"' not in body
    status, _, body = site.request("GET", "/auth/login")
    assert status == 403


def deny(role):
    return (403, '{"jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": '
                 f'"you need to have role \'{role}\'"}}}}')


def test_bpo_rule_table(master):
    """buildbot.python.org's rules: roles from GitHub teams, admins by user name; each role
    x action cell, with Buildbot's exact refusal."""
    site = Site(master, www_extra=BPO_AUTHZ)
    secret = site.secret()

    def who(*teams, username="someone"):
        return mint(secret, {"username": username, "email": f"{username}@example.org",
                             "groups": ["python"] + [f"python/{t}" for t in teams]})

    core, triage = who("python-core"), who("python-triage")
    owners, rms = who("buildbot-owners"), who("python-release-managers")
    admin, nobody = who(username="vstinner"), who()
    force = ("forceschedulers/force", "force", {"builderNames": ["idle"], "reason": "r"})
    stop = ("builds/999", "stop", {})
    rebuild = ("builders/1/builds/7", "rebuild", {})
    enable = ("schedulers/1", "enable", {"enabled": False})
    cancel = ("buildrequests/999", "cancel", {})
    pause = ("workers/1", "pause", {})
    core_denied = deny("python-core")
    table = [
        # action, {token: expected refusal or None (allowed)}
        (force, {core: None, triage: None, admin: None, owners: core_denied,
                 rms: core_denied, nobody: core_denied, None: core_denied}),
        (stop, {core: None, triage: None, owners: None, admin: None, rms: core_denied,
                None: core_denied}),
        (rebuild, {owners: None, nobody: core_denied}),
        (enable, {rms: None, admin: None, core: deny("python-release-managers"),
                  None: deny("python-release-managers")}),
        (cancel, {admin: None, core: deny("admins"), triage: deny("admins")}),
        (pause, {admin: None, owners: deny("admins"), None: deny("admins")}),
    ]
    for (path, method, params), cells in table:
        for token, refusal in cells.items():
            status, body = site.rpc(path, method, token, **params)
            if refusal is None:
                assert status != 403, (path, method, body)
            else:
                assert (status, body) == refusal, (path, method, token)
    # every GET is open
    status, _, _ = site.request("GET", "/api/v2/builders")
    assert status == 200
    master.wait_log(r"www: force forceschedulers/force by vstinner@example.org")
    master.wait_log(r"www: pause workers/1 by someone@example.org refused: you need to have "
                    r"role 'admins'")


OWNER_AUTHZ = r'''
    auth = bbm.www.user_password_auth{ users = { alice = "alicepw", bob = "bobpw" } },
    authz = bbm.www.authz{
      allowRules = {
        bbm.www.force_build_endpoint_matcher{ role = "forcer" },
        bbm.www.stop_build_endpoint_matcher{ role = "owner" },
      },
      roleMatchers = {
        bbm.www.roles_from_username{ roles = { "forcer" }, usernames = { "alice", "bob" } },
        bbm.www.roles_from_owner{ role = "owner" },
      },
    }'''


def test_owner_may_stop_only_their_own_build(master, workers):
    """A force's owner is the session's user (rest.py's email, else username); the owner
    role then lets that user, and no other, stop the build."""
    site = Site(master, www_extra=OWNER_AUTHZ)
    workers("w1", "w1pass", master.pb_port).start()
    tokens = {}
    for user in ("alice", "bob"):
        status, headers, _ = site.login(user, f"{user}pw")
        tokens[user] = cookie_of(headers)
    status, body = site.rpc("forceschedulers/force", "force", tokens["alice"],
                            builderNames=["sleepy"], reason="mine")
    assert status == 200, body
    wait_for(lambda: db_rows(master.dir, "sqlite", "SELECT id FROM builds"), what="a build")
    (buildid,), = db_rows(master.dir, "sqlite", "SELECT id FROM builds")
    props = db_rows(master.dir, "sqlite", "SELECT property_value FROM buildset_properties "
                                          "WHERE property_name = 'owner'")
    assert [json.loads(v) for (v,) in props] == [["alice", "Force Build Form"]]
    assert site.rpc(f"builds/{buildid}", "stop", tokens["bob"]) == deny("owner")
    assert site.rpc(f"builds/{buildid}", "stop") == deny("owner")

    # the web UI: who is logged in, and only the buttons the user may use
    (number, builderid), = db_rows(master.dir, "sqlite", "SELECT number, builderid FROM builds")
    page = f"/builders/{builderid}/builds/{number}"

    def html(token=None):
        headers = {"Cookie": f"TWISTED_SESSION={token}"} if token else {}
        status, _, body = site.request("GET", page, headers=headers)
        assert status == 200
        return body.decode()
    stop_button = re.compile(r'name="method" value="stop"')
    alice_page, bob_page, anon_page = html(tokens["alice"]), html(tokens["bob"]), html()
    assert stop_button.search(alice_page) and 'alice <a href="/auth/logout' in alice_page
    assert not stop_button.search(bob_page) and 'bob <a href="/auth/logout' in bob_page
    assert not stop_button.search(anon_page) and 'href="/auth/login' in anon_page
    # bob's form, made with a token from alice's page, is refused with Buildbot's words
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', alice_page).group(1)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = site.request("POST", page, f"method=stop&csrf={csrf}".encode(),
                                   dict(form, Cookie=f"TWISTED_SESSION={tokens['bob']}"))
    assert status == 403 and "you need to have role &#39;owner&#39;" in body.decode(), body
    status, headers, _ = site.request("POST", page, f"method=stop&csrf={csrf}".encode(),
                                      dict(form, Cookie=f"TWISTED_SESSION={tokens['alice']}"))
    assert status == 303, headers
    master.wait_log(r"www: stop builders/\d+/builds/\d+ by alice")
    wait_for(lambda: db_rows(master.dir, "sqlite", "SELECT results FROM builds")[0][0]
             is not None, what="the build stopped")


VIEWERS_AUTHZ = r'''
    auth = bbm.www.user_password_auth{ users = { alice = "alicepw", bob = "bobpw" } },
    cookie_expiration_time = 600,
    authz = bbm.www.authz{
      allowRules = {
        bbm.www.view_builds_endpoint_matcher{ role = "nobody-has-this" },
        bbm.www.any_endpoint_matcher{ role = "view*" },
      },
      roleMatchers = {
        bbm.www.roles_from_emails{ viewers = { "alice" } },
      },
    }'''


def test_reads_are_checked_as_buildbot_checks_them(master):
    """any_endpoint_matcher also guards reads: /api/v2 GETs (a cached answer too), the
    live streams (('masters', 'get')) and the pages; view_builds_endpoint_matcher matches
    nothing, as in Buildbot; the role is an fnmatch pattern."""
    site = Site(master, www_extra=VIEWERS_AUTHZ)
    tokens = {}
    for user in ("alice", "bob"):
        status, headers, _ = site.login(user, f"{user}pw")
        tokens[user] = cookie_of(headers)
        assert abs(verify(site.secret(), tokens[user])["exp"] - time.time() - 600) < 60
    refusal = b'{"error": "you need to have role \'view*\'"}'
    for path in ("/api/v2/builders", "/api/v2/builds/1", "/events"):
        status, headers, body = site.request(
            "GET", path, headers={"Cookie": f"TWISTED_SESSION={tokens['alice']}"})
        assert status != 403, path
        if path == "/api/v2/builders":
            assert status == 200
        for token in (tokens["bob"], None):
            h = {"Cookie": f"TWISTED_SESSION={token}"} if token else {}
            status, headers, body = site.request("GET", path, headers=h)
            assert (status, body) == (403, refusal), path
            assert header(headers, "Content-Type") == "text/plain; charset=utf-8"
    # /ws: Buildbot's ws.py checks ('masters', 'get') once the handshake is good, and
    # autobahn refuses with a bare status line and closes
    assert ws_open(site.port, tokens["alice"]) == (
        "HTTP/1.1 101 Switching Protocols", b'{"msg":"pong","code":200,"_id":1}')
    for token in (tokens["bob"], None):
        assert ws_open(site.port, token) == ("HTTP/1.1 403 Forbidden", b""), token
    status, _, body = site.request("GET", "/api/v2/nowhere")
    assert (status, body) == (404, b'{"error": "Invalid path: nowhere"}')
    status, _, body = site.request("GET", "/builders")
    assert status == 403 and b"you need to have role &#39;view*&#39;" in body
    status, _, body = site.request("GET", "/config")
    assert status == 200 and json.loads(body)["user"] == {"anonymous": True}
    master.wait_log(r"www: GET builders by bob refused: you need to have role 'view\*'")


@pytest.mark.parametrize("extra, message", [
    ('auth = "x"', "www.auth must be bbm.www.no_auth{}"),
    ('auth = bbm.www.user_password_auth{ users = { a = 1 } }', "users must be at most"),
    ('auth = bbm.www.htpasswd_auth{}', "missing required parameter 'passwdFile'"),
    ('authz = bbm.www.authz{ allowRules = { bbm.www.roles_from_owner{ role = "o" } } }',
     "allowRules[1] is not an endpoint matcher"),
    ('authz = bbm.www.authz{ roleMatchers = { bbm.www.any_endpoint_matcher{ role = "o" } } }',
     "roleMatchers[1] is not a role matcher"),
    ('authz = bbm.www.authz{ allowRules = { bbm.www.stop_build_endpoint_matcher{} } }',
     "missing required parameter 'role'"),
    ('cookie_expiration_time = -5', "cookie_expiration_time must be a positive"),
    ('auth = bbm.www.remote_user_auth{ headerRegex = "(?P<username>[a-z" }',
     "bbm.www.remote_user_auth: headerRegex does not compile: "
     "missing terminating ] for character class at offset 17"),
    ('auth = bbm.www.remote_user_auth{ headerRegex = "(?P<user>.*)" }',
     "bbm.www.remote_user_auth: headerRegex has no (?P<username>...) group"),
])
def test_checkconfig_refuses_bad_auth(master, extra, message):
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": port, "db": "sqlite:///state.sqlite",
                          "www_extra": "\n    " + extra})
    r = master.cli("checkconfig", master.dir)
    assert r.returncode != 0
    assert re.search(r"master\.lua:\d+: .*" + re.escape(message), r.stdout + r.stderr), \
        r.stdout + r.stderr
