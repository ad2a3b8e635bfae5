"""Changes and schedulers: GitHub's webhook -> change rows as Buildbot's addChange
writes them -> single_branch / any_branch schedulers (change filters, fileIsImportant,
treeStableTimer, state in scheduler_changes) -> build requests for the right builders ->
builds on a real buildbot-worker.  Bad requests are refused and store nothing."""

import hashlib
import hmac
import http.server
import threading
import json
import os
import subprocess
import time
import urllib.request

import pytest

from conftest import api_get, api_rpc, db_rows, free_port, wait_for

SECRET = "s3cret"

CONFIG = r'''local bbm = require "bbm"
-- CPython's rule: a change is important unless every file is documentation
local function important(change)
  for _, f in ipairs(change.files) do
    if not f:match("^Doc/") then return true end
  end
  return false
end
return {
  title = "changes",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d, change_hook_dialects = { github = {
    secret = "%(secret)s", strict = true,
    github_property_whitelist = { "github.pusher.*" } } } },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "w1pass", { max_builds = 4 }) },
  builders = {
    bbm.builder{ name = "main-a", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "echo", bbm.interpolate("%%(src::revision)s") } } } },
    bbm.builder{ name = "main-b", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "feature", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.single_branch{ name = "main", builderNames = { "main-a", "main-b" },
      change_filter = bbm.change_filter{ branch = "main" }, treeStableTimer = %(stable)s,
      fileIsImportant = important, properties = { from_scheduler = "yes" } },
    bbm.schedulers.any_branch{ name = "features", builderNames = { "feature" },
      change_filter = bbm.change_filter{ branch_re = "feature/", branch_not_re = "feature/wip-",
        branch_not_eq = { "feature/old" }, project_not_re = "^private",
        repository_fn = function(r) return r:find("cpython", 1, true) ~= nil end,
        property_re = { event = "^push$" },
        property_not_eq = { ["github.pusher.name"] = "bot" } },
      priority = function(builderNames, changesByCodebase)
        return #builderNames * 10 + #changesByCodebase[""]
      end },
  },
}
'''

REPO = {"name": "cpython", "full_name": "python/cpython",
        "html_url": "https://github.com/python/cpython"}


def commit(sha, files, message="a commit", when="2026-11-30T10:00:00+01:00"):
    return {"id": sha, "message": message, "timestamp": when, "distinct": True,
            "url": f"https://github.com/python/cpython/commit/{sha}",
            "author": {"name": "Ada", "email": "ada@example.org"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
            "added": files[:1], "modified": files[1:], "removed": []}


def push(branch, commits, **extra):
    return {"ref": f"refs/heads/{branch}", "repository": REPO, "commits": commits,
            "head_commit": commits[-1], "pusher": {"name": "ada", "email": "ada@example.org"},
            **extra}


class Site:
    def __init__(self, master, backend, stable):
        self.master = master
        self.port = free_port()
        self.backend = backend
        db = "sqlite:///state.sqlite" if backend == "sqlite" else backend
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": master.pb_port, "www": self.port, "db": db,
                              "secret": SECRET, "stable": stable})
        master.start()

    def hook(self, payload, event="push", secret=SECRET, body=None, sig="sha256",
             content_type="application/json", path="/change_hook/github"):
        data = body if body is not None else json.dumps(payload).encode()
        headers = {"Content-Type": content_type, "X-GitHub-Event": event}
        if secret is not None:
            algo = hashlib.sha256 if sig == "sha256" else hashlib.sha1
            name = "X-Hub-Signature-256" if sig == "sha256" else "X-Hub-Signature"
            headers[name] = f"{sig}=" + hmac.new(secret.encode(), data, algo).hexdigest()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def get(self, path):
        return api_get(self.port, path)

    def rpc(self, path, method, **params):
        return api_rpc(self.port, path, method, **params)[1]

    def query(self, sql, *args):
        return db_rows(self.master.dir, self.backend, sql, *args)

    def buildsets(self):
        """(bsid, reason, [builder names], [(branch, revision)]) of every buildset."""
        out = []
        for (bsid, reason) in self.query("SELECT id, reason FROM buildsets ORDER BY id"):
            names = [n for (n,) in self.query(
                "SELECT b.name FROM buildrequests r JOIN builders b ON b.id = r.builderid "
                "WHERE r.buildsetid = ? ORDER BY b.name", bsid)]
            stamps = self.query(
                "SELECT s.branch, s.revision FROM buildset_sourcestamps x JOIN sourcestamps s "
                "ON s.id = x.sourcestampid WHERE x.buildsetid = ?", bsid)
            out.append((bsid, reason, names, stamps))
        return out

    def wait_buildsets(self, n):
        wait_for(lambda: len(self.buildsets()) >= n, what=f"{n} buildset(s)")
        return self.buildsets()

    def wait_builds_done(self):
        wait_for(lambda: self.query("SELECT COUNT(*) FROM buildrequests WHERE complete = 0")
                 == [(0,)], what="every build request complete")


@pytest.fixture
def site(master, backend, workers):
    s = Site(master, backend, stable=1)
    s.worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    return s


MAIN_REASON = "The SingleBranchScheduler scheduler named 'main' triggered this build"


def test_push_builds_the_right_builders(site):
    """A signed push of two commits: two changes as Buildbot writes them; after the
    tree-stable timer one buildset for main-a and main-b with the newest revision; the
    builds run on the worker and carry the change's properties."""
    status, text = site.hook(push("main", [commit("a" * 40, ["Lib/os.py", "Doc/os.rst"]),
                                           commit("b" * 40, ["Lib/io.py"], "second\n\nbody")]))
    assert (status, text) == (202, "2 change found")
    rows = site.query("SELECT changeid, author, committer, comments, branch, revision, revlink, "
                      "when_timestamp, category, repository, codebase, project, "
                      "parent_changeids FROM changes ORDER BY changeid")
    assert rows == [
        (1, "Ada <ada@example.org>", "GitHub <noreply@github.com>", "a commit", "main", "a" * 40,
         "https://github.com/python/cpython/commit/" + "a" * 40, 1796029200, None,
         "https://github.com/python/cpython", "", "python/cpython", None),
        (2, "Ada <ada@example.org>", "GitHub <noreply@github.com>", "second\n\nbody", "main",
         "b" * 40, "https://github.com/python/cpython/commit/" + "b" * 40, 1796029200, None,
         "https://github.com/python/cpython", "", "python/cpython", 1)]
    assert site.query("SELECT changeid, filename FROM change_files ORDER BY changeid, filename") \
        == [(1, "Doc/os.rst"), (1, "Lib/os.py"), (2, "Lib/io.py")]
    assert site.query("SELECT property_name, property_value FROM change_properties "
                      "WHERE changeid = 1 ORDER BY property_name") == [
        ("event", '["push", "Change"]'), ("github.pusher.email", '["ada@example.org", "Change"]'),
        ("github.pusher.name", '["ada", "Change"]'), ("github_distinct", '[true, "Change"]')]
    assert site.query("SELECT u.identifier, i.attr_type, i.attr_data FROM users u JOIN "
                      "users_info i ON i.uid = u.uid") == [
        ("Ada <ada@example.org>", "git", "Ada <ada@example.org>")]
    assert site.query("SELECT COUNT(*) FROM change_users") == [(2,)]
    api = site.get("changes/2")["changes"][0]
    assert (api["revision"], api["branch"], api["files"]) == ("b" * 40, "main", ["Lib/io.py"])

    sets = site.wait_buildsets(1)
    assert sets == [(1, MAIN_REASON, ["main-a", "main-b"], [("main", "b" * 40)])]
    assert site.query("SELECT property_name, property_value FROM buildset_properties "
                      "WHERE buildsetid = 1 ORDER BY property_name") == [
        ("event", '["push", "Change"]'), ("from_scheduler", '["yes", "Scheduler"]'),
        ("github.pusher.email", '["ada@example.org", "Change"]'),
        ("github.pusher.name", '["ada", "Change"]'), ("github_distinct", '[true, "Change"]'),
        ("scheduler", '["main", "Scheduler"]')]
    # the change's source stamp is the buildset's
    assert site.query("SELECT sourcestampid FROM changes WHERE changeid = 2") == \
        site.query("SELECT sourcestampid FROM buildset_sourcestamps WHERE buildsetid = 1")
    assert site.query("SELECT COUNT(*) FROM scheduler_changes") == [(0,)]
    site.wait_builds_done()
    assert site.query("SELECT results FROM builds ORDER BY id") == [(0,), (0,)]
    time.sleep(1.5)  # a second timer would have fired by now
    assert len(site.buildsets()) == 1


def test_doc_only_push_waits_for_an_important_one(site):
    """A push touching only Doc/ is stored and classified unimportant: no build.  The
    next important push builds both, with the newest revision."""
    assert site.hook(push("main", [commit("c" * 40, ["Doc/a.rst", "Doc/b.rst"])]))[0] == 202
    wait_for(lambda: site.query("SELECT changeid, important FROM scheduler_changes") ==
             [(1, 0)], what="the change classified unimportant")
    time.sleep(1.5)  # longer than treeStableTimer: nothing is built for it
    assert site.buildsets() == []
    assert site.hook(push("main", [commit("d" * 40, ["Lib/x.py"])]))[0] == 202
    assert site.wait_buildsets(1) == [(1, MAIN_REASON, ["main-a", "main-b"],
                                       [("main", "d" * 40)])]
    assert site.query("SELECT COUNT(*) FROM scheduler_changes") == [(0,)]


def test_burst_of_pushes_makes_one_buildset(site):
    """Pushes within the timer restart it: one buildset, the newest revision."""
    for i in range(5):
        assert site.hook(push("main", [commit(f"{i}" * 40, [f"Lib/m{i}.py"])]))[0] == 202
    sets = site.wait_buildsets(1)
    time.sleep(1.5)
    assert site.buildsets() == sets == [(1, MAIN_REASON, ["main-a", "main-b"],
                                         [("main", "4" * 40)])]


def test_any_branch_and_filters(site):
    """features (any_branch, no timer; branch_re, branch_not_re, branch_not_eq,
    project_not_re, repository_fn, property_re, property_not_eq; a callable priority)
    builds a feature branch at once; a branch no filter takes (3.12, feature/wip-y, feature/old, feature/z pushed by
    "bot") is stored and built by nobody; tags and deletions make no
    change; a [ci skip] head commit makes none."""
    assert site.hook(push("feature/x", [commit("e" * 40, ["Lib/a.py"])]))[0] == 202
    assert site.wait_buildsets(1)[0][2:] == (["feature"], [("feature/x", "e" * 40)])
    assert site.query("SELECT priority FROM buildrequests") == [(11,)]
    assert site.hook(push("3.12", [commit("f" * 40, ["Lib/a.py"])])) == (202, "1 change found")
    for branch, pusher in (("feature/wip-y", "ada"), ("feature/old", "ada"),
                           ("feature/z", "bot")):
        p = push(branch, [commit("4" * 40, ["Lib/a.py"])])
        p["pusher"]["name"] = pusher
        assert site.hook(p) == (202, "1 change found")
    assert site.hook(push("main", [commit("1" * 40, ["Lib/a.py"], "wip [ci skip]")])) == \
        (202, "no change found")
    assert site.hook(push("main", [commit("2" * 40, ["Lib/a.py"])], deleted=True)) == \
        (202, "no change found")
    tag = push("main", [commit("3" * 40, ["Lib/a.py"])])
    tag["ref"] = "refs/tags/v3.14.0"
    assert site.hook(tag) == (202, "1 change found")
    assert site.query("SELECT branch, category FROM changes ORDER BY changeid") == [
        ("feature/x", None), ("3.12", None), ("feature/wip-y", None), ("feature/old", None),
        ("feature/z", None), ("v3.14.0", "tag")]
    assert site.hook({"zen": "Keep it logically awesome."}, event="ping") == \
        (202, "no change found")
    time.sleep(1.5)
    assert len(site.buildsets()) == 1


def test_bad_requests_store_nothing(site):
    """Wrong or missing signatures, bad JSON, unknown events and dialects: 400 with the
    reason, nothing stored."""
    good = push("main", [commit("a" * 40, ["Lib/a.py"])])
    assert site.hook(good, secret="wrong") == (400, "Hash mismatch")
    assert site.hook(good, secret=None) == (400, "Request has no required signature")
    assert site.hook(good, secret="wrong", sig="sha1") == (400, "Hash mismatch")
    status, text = site.hook(None, body=b'{"ref": ')
    assert status == 400 and text.startswith("the payload is not JSON")
    assert site.hook(good, event="deployment") == (400, "Unknown event: deployment")
    assert site.hook(good, content_type="text/plain") == \
        (400, "Unknown content type: text/plain")
    assert site.hook({"ref": "refs/heads/main"}) == \
        (400, "a push event needs 'ref' and 'repository' (html_url, full_name)")
    long_branch = push("b" * 300, [commit("a" * 40, ["Lib/a.py"])])
    assert site.hook(long_branch) == \
        (400, "value for column branch is greater than max of 255 characters")
    assert site.hook(good, path="/change_hook/gitlab") == \
        (400, "The dialect specified, 'gitlab', wasn't whitelisted in change_hook")
    assert site.query("SELECT COUNT(*) FROM changes") == [(0,)]
    assert site.query("SELECT COUNT(*) FROM sourcestamps") == [(0,)]
    # Buildbot's own signature header and a form body are accepted too
    form = b"payload=" + urllib.parse.quote_plus(json.dumps(good)).encode()
    assert site.hook(None, body=form, sig="sha1",
                     content_type="application/x-www-form-urlencoded",
                     path="/all/change_hook/github") == (202, "1 change found")


def test_disabled_scheduler_ignores_changes(site):
    """The API's enable action: a disabled scheduler takes no change; enabled again, it
    does."""
    (sid,) = site.query("SELECT id FROM schedulers WHERE name = 'main'")[0]
    assert site.rpc(f"schedulers/{sid}", "enable", enabled=False)["result"] is None
    assert site.get(f"schedulers/{sid}")["schedulers"][0]["enabled"] is False
    assert site.hook(push("main", [commit("a" * 40, ["Lib/a.py"])]))[0] == 202
    time.sleep(1.5)
    assert site.buildsets() == []
    assert site.query("SELECT COUNT(*) FROM scheduler_changes") == [(0,)]
    assert site.rpc(f"schedulers/{sid}", "enable", enabled=True)["result"] is None
    assert site.hook(push("main", [commit("b" * 40, ["Lib/a.py"])]))[0] == 202
    assert site.wait_buildsets(1)[0][3] == [("main", "b" * 40)]


def test_restart_during_tree_stable_wait(master, workers):
    """The master stops while a change waits for the tree to be stable: after start the
    timer runs again and exactly one buildset is made."""
    s = Site(master, "sqlite", stable=3)
    assert s.hook(push("main", [commit("a" * 40, ["Lib/a.py"])]))[0] == 202
    assert s.query("SELECT changeid, important FROM scheduler_changes") == [(1, 1)]
    master.stop()
    assert s.buildsets() == []
    master.start()
    master.wait_log(r"scheduler 'main': 1 change\(s\) waiting")
    assert s.wait_buildsets(1) == [(1, MAIN_REASON, ["main-a", "main-b"],
                                    [("main", "a" * 40)])]
    time.sleep(4)
    assert len(s.buildsets()) == 1
    assert s.query("SELECT COUNT(*) FROM scheduler_changes") == [(0,)]


POLLER_CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "b1", workernames = { "w1" }, factory = bbm.factory{
    bbm.steps.shell{ command = { "true" } } } } },
  change_source = { bbm.changes.git_poller{ repourl = "%(origin)s", branches = { "main" },
    pollInterval = 1, pollAtLaunch = true, workdir = "gp", project = "proj",
    category = "cat" } },
  schedulers = { bbm.schedulers.any_branch{ name = "all", builderNames = { "b1" } } },
}
'''


def git(cwd, *args, when="1796029200 +0000"):
    env = dict(os.environ, GIT_AUTHOR_NAME="A U Thor", GIT_AUTHOR_EMAIL="a@example.org",
               GIT_COMMITTER_NAME="C O Mitter", GIT_COMMITTER_EMAIL="c@example.org",
               GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_file(work, path, text, message, when):
    os.makedirs(os.path.join(work, os.path.dirname(path)), exist_ok=True)
    with open(os.path.join(work, path), "w") as f:
        f.write(text)
    git(work, "add", path)
    git(work, "commit", "-q", "-m", message, when=when)
    git(work, "push", "-q", "origin", "main")
    return git(work, "rev-parse", "HEAD")


def test_git_poller(master, tmp_path):
    """A poller on a local repository: the first poll records the branch; new commits
    become changes (oldest first) as Buildbot's GitPoller makes them, and buildsets; a
    restart neither repeats nor loses one."""
    origin, work = str(tmp_path / "origin.git"), str(tmp_path / "work")
    git(str(tmp_path), "init", "-q", "--bare", "-b", "main", origin)
    git(str(tmp_path), "clone", "-q", origin, work)
    git(work, "checkout", "-q", "-b", "main")
    commit_file(work, "README", "hello\n", "initial", "1796029200 +0000")
    port = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(POLLER_CONFIG % {"pb": master.pb_port, "www": port, "origin": origin})
    master.start()

    def q(sql):
        return db_rows(master.dir, "sqlite", sql)

    wait_for(lambda: q("SELECT value_json FROM object_state WHERE name = 'lastRev'"),
             what="the first poll's lastRev")
    assert q("SELECT COUNT(*) FROM changes") == [(0,)]
    r1 = commit_file(work, "Lib/a.py", "a\n", "add a\n\nwith a body", "1796029300 +0100")
    r2 = commit_file(work, "Doc/b.rst", "b\n", "add b", "1796029400 +0000")
    wait_for(lambda: q("SELECT COUNT(*) FROM changes") == [(2,)], what="two changes")
    # comments are git's "%s%n%b", as Buildbot reads them: subject and body on adjacent lines
    assert q("SELECT author, committer, comments, branch, revision, when_timestamp, category, "
             "repository, project, codebase FROM changes ORDER BY changeid") == [
        ("A U Thor <a@example.org>", "C O Mitter <c@example.org>", "add a\nwith a body",
         "main", r1, 1796029300, "cat", origin, "proj", ""),
        ("A U Thor <a@example.org>", "C O Mitter <c@example.org>", "add b", "main", r2,
         1796029400, "cat", origin, "proj", "")]
    assert q("SELECT changeid, filename FROM change_files ORDER BY changeid") == [
        (1, "Lib/a.py"), (2, "Doc/b.rst")]
    wait_for(lambda: q("SELECT COUNT(*) FROM buildsets") == [(2,)], what="two buildsets")

    def last_rev():
        rows = q("SELECT value_json FROM object_state s JOIN objects o ON o.id = s.objectid "
                 "WHERE o.name = '%s' AND o.class_name = 'GitPoller'" % origin)
        return json.loads(rows[0][0]) if rows else None
    # the poll writes lastRev once its last ref is done, after the changes it stored
    wait_for(lambda: last_rev() == {"main": r2}, what="lastRev at the second commit")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/changesources") as r:
        assert [c["name"] for c in json.loads(r.read())["changesources"]] == [origin]

    master.stop()
    r3 = commit_file(work, "Lib/c.py", "c\n", "add c", "1796029500 +0000")
    master.start()
    wait_for(lambda: q("SELECT COUNT(*) FROM changes") == [(3,)], what="the third change")
    time.sleep(2.5)  # two more polls: nothing repeated
    assert q("SELECT revision FROM changes ORDER BY changeid") == [(r1,), (r2,), (r3,)]


SENDCHANGE_CONFIG = r'''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "b1", workernames = { "w1" }, factory = bbm.factory{
    bbm.steps.shell{ command = { "true" } } } } },
  change_source = { bbm.changes.pb{ user = "sender", passwd = "s3nd", prefix = "trunk/" } },
  schedulers = { bbm.schedulers.any_branch{ name = "all", builderNames = { "b1" } } },
}
'''


def test_sendchange(master):
    """bbmaster sendchange and Buildbot's own `buildbot sendchange` reach a bbm.changes.pb
    source on the workers' port: the change is stored as Buildbot's ChangePerspective
    stores it (the prefix taken off files, the others dropped) and scheduled; a wrong
    password is refused and stores nothing."""
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(SENDCHANGE_CONFIG % {"pb": master.pb_port})
    master.start()

    def q(sql):
        return db_rows(master.dir, "sqlite", sql)

    where = f"127.0.0.1:{master.pb_port}"
    r = master.cli("sendchange", "--master", where, "--auth", "sender:s3nd", "--who", "ada",
                   "--branch", "main", "--revision", "abc123", "--repository", "git://r",
                   "--project", "proj", "--category", "cat", "--comments", "a fix",
                   "--property", "urgent:yes", "--vc", "git", "--when", "1796029200",
                   "trunk/Lib/a.py", "other/b.py", "trunk/Doc/c.rst")
    assert (r.returncode, r.stdout) == (0, "change sent successfully\n"), r.stderr
    assert q("SELECT author, branch, revision, repository, project, category, comments, "
             "when_timestamp, revlink FROM changes") == [
        ("ada", "main", "abc123", "git://r", "proj", "cat", "a fix", 1796029200, "")]
    assert q("SELECT filename FROM change_files ORDER BY filename") == [
        ("Doc/c.rst",), ("Lib/a.py",)]
    assert q("SELECT property_name, property_value FROM change_properties") == [
        ("urgent", '["yes", "Change"]')]
    assert q("SELECT identifier FROM users") == [("ada",)]
    wait_for(lambda: q("SELECT COUNT(*) FROM buildsets") == [(1,)], what="a buildset")

    r = master.cli("sendchange", "--master", where, "--auth", "sender:wrong", "--who", "eve",
                   "x")
    assert r.returncode == 1 and "login failed" in r.stderr
    assert q("SELECT COUNT(*) FROM changes") == [(1,)]

    r = subprocess.run(["buildbot", "sendchange", "--master", where, "--auth", "sender:s3nd",
                        "--who", "bob", "--branch", "3.12", "--revision", "def456",
                        "--comments", "from buildbot", "trunk/Lib/x.py"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert q("SELECT author, branch, revision, comments, repository, project, category "
             "FROM changes WHERE changeid = 2") == [
        ("bob", "3.12", "def456", "from buildbot", "", "", None)]
    assert q("SELECT filename FROM change_files WHERE changeid = 2") == [("Lib/x.py",)]


class FakeGitHub:
    """GitHub's API as the pull-request flow uses it: records every call and answers as
    GitHub does (users in `writers` have write permission)."""

    def __init__(self, writers):
        self.calls = []
        self.writers = writers
        self.message = "Fix a bug"
        self.open = threading.Event()  # cleared: calls wait until it is set
        self.open.set()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def record(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                fake.calls.append((self.command, self.path, body,
                                   self.headers.get("Authorization")))
                return body

            def do_GET(self):
                self.record()
                fake.open.wait(60)
                parts = self.path.split("/")
                if self.path.endswith("/permission"):
                    user = parts[-2]
                    self.answer(200, {"permission": "write" if user in fake.writers
                                      else "read", "user": {"login": user}})
                elif "/commits/" in self.path:
                    self.answer(200, {"sha": parts[-1], "commit": {"message": fake.message}})
                elif self.path == "/repos/python/cpython/pulls/7/files":
                    self.answer(200, [{"filename": "Lib/a.py"}, {
                        "filename": "Lib/new.py", "previous_filename": "Lib/old.py"}])
                elif self.path == "/repos/python/cpython/pulls/7":
                    self.answer(200, pull_request(fake.url))
                else:
                    self.answer(404, {"message": "Not Found"})

            def do_POST(self):
                self.record()
                self.answer(201, {"id": 1})

            def do_DELETE(self):
                self.record()
                self.answer(200, [])

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def pull_request(api):
    return {"number": 7, "title": "Fix a bug", "body": "Details.", "commits": 2,
            "created_at": "2026-11-30T09:00:00Z", "head": {"sha": "c" * 40},
            "base": {"ref": "main", "repo": {"full_name": "python/cpython"}},
            "labels": [{"name": "type-bug"}],
            "_links": {"html": {"href": "https://github.com/python/cpython/pull/7"}},
            "comments_url": f"{api}/repos/python/cpython/issues/7/comments",
            "issue_url": f"{api}/repos/python/cpython/issues/7"}


PR_CONFIG = r'''local bbm = require "bbm"
local function builder(name, tags)
  return bbm.builder{ name = name, workernames = { "w1" }, tags = tags,
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } }
end
return {
  buildbotURL = "http://buildbot.example/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d, change_hook_dialects = { github = {
    secret = "%(secret)s", strict = true, token = "t0ken",
    github_api_endpoint = "%(api)s", github_property_whitelist = { "*.labels" },
    pull_request_testing = {
      labels = { [":hammer: test-with-buildbots"] = ".*" } } } } },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { builder("x86 Stable PR", { "stable" }), builder("x86 Unstable PR", {}),
               builder("x86 Refleaks PR", { "stable" }) },
  schedulers = { bbm.schedulers.pull_request{ name = "pull-request-scheduler",
    builderNames = { "x86 Stable PR", "x86 Unstable PR", "x86 Refleaks PR" } } },
}
'''


def start_pr_site(master, testing):
    gh = FakeGitHub(writers={"ada"})
    s = Site.__new__(Site)
    s.master, s.port, s.backend = master, free_port(), "sqlite"
    text = PR_CONFIG % {"pb": master.pb_port, "www": s.port, "secret": SECRET, "api": gh.url}
    if not testing:
        text = text.replace('pull_request_testing = {\n      labels = { [":hammer: '
                            'test-with-buildbots"] = ".*" } } } } },', "} } },")
        assert "pull_request_testing" not in text
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(text)
    master.start()
    s.gh = gh
    return s


@pytest.fixture
def pr_site(master):
    s = start_pr_site(master, testing=True)
    yield s
    s.gh.close()


def test_plain_pull_request_reads_files(master):
    """Without pull-request testing, an opened pull request is a change as Buildbot's
    handler makes it: GitHub's API gives the head commit's message (a skip pattern stops
    it) and the files (a moved file counts with its old name too)."""
    s = start_pr_site(master, testing=False)
    try:
        opened = labeled(s.gh.url)
        opened["action"] = "opened"
        assert s.hook(opened, event="pull_request") == (202, "1 change found")
        assert [(m, p) for (m, p, _, _) in s.gh.calls] == [
            ("GET", "/repos/python/cpython/commits/" + "c" * 40),
            ("GET", "/repos/python/cpython/pulls/7/files")]
        assert s.query("SELECT branch, category FROM changes") == [
            ("refs/pull/7/merge", "pull")]
        assert s.query("SELECT filename FROM change_files ORDER BY filename") == [
            ("Lib/a.py",), ("Lib/new.py",), ("Lib/old.py",)]
        s.gh.message = "WIP [skip ci]"
        assert s.hook(opened, event="pull_request") == (202, "no change found")
        assert s.query("SELECT COUNT(*) FROM changes") == [(1,)]
    finally:
        s.gh.close()


def labeled(api, user="ada"):
    return {"action": "labeled", "number": 7, "label": {"name": ":hammer: test-with-buildbots"},
            "pull_request": pull_request(api), "sender": {"login": user}, "repository": REPO}


def commented(body, user="ada"):
    return {"action": "created", "sender": {"login": user}, "repository": REPO,
            "comment": {"body": body},
            "issue": {"number": 7, "comments_url":
                      "https://api.github.com/repos/python/cpython/issues/7/comments",
                      "pull_request": {"url":
                                       "https://api.github.com/repos/python/cpython/pulls/7"}}}


def test_pr_label_schedules_stable_builders(pr_site):
    """Someone adds the testing label (GitHub lets only triagers and up do that, so no
    permission is asked, as buildbot.python.org's handler asks none): head commit read, a
    comment posted, the label removed; a change on refs/pull/7/merge; the stable builders
    built."""
    s, gh = pr_site, pr_site.gh
    assert s.hook(labeled(gh.url), event="pull_request") == (202, "1 change found")
    label = "%3Ahammer%3A%20test-with-buildbots"
    assert [(m, p) for (m, p, _, _) in gh.calls] == [
        ("GET", "/repos/python/cpython/commits/" + "c" * 40),
        ("POST", "/repos/python/cpython/issues/7/comments"),
        ("DELETE", f"/repos/python/cpython/issues/7/labels/{label}")]
    assert all(auth == "token t0ken" for (_, _, _, auth) in gh.calls)
    comment = gh.calls[1][2]["body"]
    assert "by @ada for commit " + "c" * 40 in comment
    assert "http://buildbot.example/#/grid?branch=refs%2Fpull%2F7%2Fmerge" in comment
    assert "<kbd>:hammer: test-with-buildbots</kbd> label again" in comment
    assert s.query("SELECT branch, revision, category, author, comments FROM changes") == [
        ("refs/pull/7/merge", "c" * 40, "pull", "ada",
         "GitHub Pull Request #7 (2 commits)\nFix a bug\nDetails.")]
    assert dict(s.query("SELECT property_name, property_value FROM change_properties")) == {
        "should_test_pr": '[true, "Change"]', "event": '["pull_request", "Change"]',
        "basename": '["main", "Change"]', "builderfilter": '[".*", "Change"]',
        "github.labels": '[[{"name": "type-bug"}], "Change"]'}
    sets = s.wait_buildsets(1)
    assert sets == [(1, "The GitHubPrScheduler scheduler named 'pull-request-scheduler' "
                        "triggered this build", ["x86 Refleaks PR", "x86 Stable PR"],
                     [("refs/pull/7/merge", "c" * 40)])]
    # a triager, without write permission, may label too
    gh.calls.clear()
    assert s.hook(labeled(gh.url, user="eve"), event="pull_request") == (202, "1 change found")
    assert [m for (m, _, _, _) in gh.calls] == ["GET", "POST", "DELETE"]
    assert "by @eve for commit " in gh.calls[1][2]["body"]
    assert len(s.wait_buildsets(2)) == 2


def test_pr_comment_may_pick_unstable_builders(pr_site):
    """"!buildbot unstable|refleak" from a writer: the pull request is read, the builders
    the regex finds (case-insensitive, unstable ones too) are named in a comment and
    built."""
    s, gh = pr_site, pr_site.gh
    assert s.hook(commented("!buildbot UNSTABLE|refleak"), event="issue_comment") == \
        (202, "1 change found")
    assert [(m, p) for (m, p, _, _) in gh.calls] == [
        ("GET", "/repos/python/cpython/collaborators/ada/permission"),
        ("GET", "/repos/python/cpython/pulls/7"),
        ("GET", "/repos/python/cpython/commits/" + "c" * 40),
        ("POST", "/repos/python/cpython/issues/7/comments")]
    comment = gh.calls[3][2]["body"]
    assert "regular expression: `UNSTABLE|refleak`" in comment
    assert "- `x86 Unstable PR`\n- `x86 Refleaks PR`" in comment
    sets = s.wait_buildsets(1)
    assert sets[0][2] == ["x86 Refleaks PR", "x86 Unstable PR"]


def test_pr_requests_that_schedule_nothing(pr_site):
    """A user without write permission who comments a command is told so; a regex matching
    no builder is answered; a comment that is no command, another label and an issue
    comment are ignored without a call to GitHub.  Nothing is stored."""
    s, gh = pr_site, pr_site.gh
    assert s.hook(commented("!buildbot .*", user="eve"), event="issue_comment") == \
        (202, "no change found")
    assert [(m, p, b) for (m, p, b, _) in gh.calls] == [
        ("GET", "/repos/python/cpython/collaborators/eve/permission", None),
        ("POST", "/repos/python/cpython/issues/7/comments",
         {"body": "You don't have write permissions to trigger a build"})]
    gh.calls.clear()
    assert s.hook(commented("!buildbot windows"), event="issue_comment") == \
        (202, "no change found")
    assert gh.calls[-1][2] == {"body": "The regex 'windows' did not match any buildbot builder. "
                               "Is the requested builder in the list of stable builders?"}
    gh.calls.clear()
    other = labeled(gh.url)
    other["label"]["name"] = "type-bug"
    assert s.hook(commented("looks good to me"), event="issue_comment") == \
        (202, "no change found")
    assert s.hook(other, event="pull_request") == (202, "no change found")
    issue = commented("!buildbot .*")
    del issue["issue"]["pull_request"]
    assert s.hook(issue, event="issue_comment") == (202, "no change found")
    assert gh.calls == []
    assert s.query("SELECT COUNT(*) FROM changes") == [(0,)]


def test_webhooks_in_progress_hold_a_bounded_parse(pr_site):
    """What the webhooks in progress hold parsed is bounded together: while one whose payload
    costs about 90 MB parsed waits for GitHub's API, another of about 60 MB is answered 503
    unparsed; once the first is over, it is taken."""
    s, gh = pr_site, pr_site.gh
    big, second = labeled(gh.url), labeled(gh.url)
    big["padding"] = [0] * 2_250_000      # 40 bytes a value parsed: 90 MB
    second["padding"] = [0] * 1_500_000   # 60 MB: together over 128 MiB
    gh.open.clear()
    answers = []
    first = threading.Thread(target=lambda: answers.append(s.hook(big, event="pull_request")))
    first.start()
    try:
        wait_for(lambda: gh.calls, what="the first webhook waiting for GitHub's API")
        assert s.hook(second, event="pull_request") == \
            (503, "webhooks in progress hold too much; try again later")
        assert len(gh.calls) == 1
    finally:
        gh.open.set()
        first.join()
    assert answers == [(202, "1 change found")]
    assert s.hook(second, event="pull_request") == (202, "1 change found")


def test_pushes_collapse_while_queued(master):
    """Buildbot's default collapseRequests: with no worker free, a newer push to a branch
    collapses the older queued request of that branch (both stamps have changes, so their
    revisions may differ); another branch's request stays."""
    s = Site(master, "sqlite", stable=1)
    for sha, branch in (("a", "feature/x"), ("b", "feature/x"), ("c", "feature/y")):
        assert s.hook(push(branch, [commit(sha * 40, ["Lib/a.py"])]))[0] == 202
    wait_for(lambda: len(s.buildsets()) == 3, what="three buildsets")
    assert s.query("SELECT r.complete, r.results, s.branch, s.revision FROM buildrequests r "
                   "JOIN buildset_sourcestamps x ON x.buildsetid = r.buildsetid "
                   "JOIN sourcestamps s ON s.id = x.sourcestampid ORDER BY r.id") == [
        (1, 3, "feature/x", "a" * 40), (0, -1, "feature/x", "b" * 40),
        (0, -1, "feature/y", "c" * 40)]


def test_reconfig_keeps_pending_changes(master):
    """A reconfig that adds a scheduler and changes another keeps the pending change of the
    one that stays: its tree-stable timer still ends in one buildset."""
    s = Site(master, "sqlite", stable=2)
    assert s.hook(push("main", [commit("a" * 40, ["Lib/a.py"])]))[0] == 202
    path = os.path.join(master.dir, "master.lua")
    with open(path) as f:
        text = f.read()
    text = text.replace('properties = { from_scheduler = "yes" } },',
                        'properties = { from_scheduler = "changed" } },\n'
                        '    bbm.schedulers.any_branch{ name = "added", '
                        'builderNames = { "feature" } },')
    with open(path, "w") as f:
        f.write(text)
    master.cli("reconfig", master.dir, check=0)
    assert s.query("SELECT name FROM schedulers ORDER BY name") == [
        ("added",), ("features",), ("main",)]
    assert s.wait_buildsets(1)[0][1:] == (MAIN_REASON, ["main-a", "main-b"],
                                          [("main", "a" * 40)])
    assert s.query("SELECT property_value FROM buildset_properties "
                   "WHERE property_name = 'from_scheduler'") == [('["changed", "Scheduler"]',)]
