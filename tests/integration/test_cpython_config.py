"""buildbot.python.org's configuration in master.lua form (cpython/): it passes
checkconfig, it defines what upstream's master.cfg defines (checkconfig --dump against
cpython/tools/upstream.json, which cpython/tools/dump_upstream.py wrote from the upstream
commit it names: workers, builders with their tags, workers, builddirs and steps,
schedulers), and a master starts from it and shows its builders, workers and schedulers
on /api/v2."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import BBMASTER, REPO, api_get, free_port, wait_for

CPYTHON = os.path.join(REPO, "cpython")
SETTINGS = os.path.join(CPYTHON, "settings.yaml.example")
with open(os.path.join(CPYTHON, "tools", "upstream.json")) as f:
    UPSTREAM = json.load(f)

# bbmaster's step kinds (src/engine/step.c) with what Buildbot's classes default to.
KIND_DEFAULTS = {
    "shell": dict(name="shell", haltOnFailure=False, warnOnFailure=False,
                  description=None, descriptionDone=None),
    "configure": dict(name="configure", haltOnFailure=True, warnOnFailure=False,
                      description=["configuring"], descriptionDone=["configure"]),
    "compile": dict(name="compile", haltOnFailure=True, warnOnFailure=False,
                    description=["compiling"], descriptionDone=["compile"],
                    warningPattern="(?i).*warning[: ].*"),
    "test": dict(name="test", haltOnFailure=False, warnOnFailure=True,
                 description=["testing"], descriptionDone=["test"],
                 warningPattern="(?i).*warning[: ].*"),
    "set_property_from_command": dict(name="setproperty", haltOnFailure=False,
                                      warnOnFailure=False, description=None,
                                      descriptionDone=None),
    "git": dict(name="git", haltOnFailure=True, warnOnFailure=False, branch="HEAD",
                filters=None, clobberOnFailure=False, timeout=1200, shallow=None),
    "github": dict(name="git", haltOnFailure=True, warnOnFailure=False, branch="HEAD",
                   filters=None, clobberOnFailure=False, timeout=1200, shallow=None),
    "file_upload": dict(name="upload", haltOnFailure=True, warnOnFailure=False),
}
COMMON_DEFAULTS = dict(flunkOnFailure=True, warnOnWarnings=False, flunkOnWarnings=False,
                       alwaysRun=False, doStepIf=True, workdir=None)
SHELL_DEFAULTS = dict(env={}, timeout=1200, maxTime=None, sigtermTime=None, usePTY=None,
                      decodeRC={"0": 0})


def renderables(v):
    """Upstream names its renderer functions; here a function is {"function": true}."""
    if isinstance(v, list):
        return [renderables(x) for x in v]
    if isinstance(v, dict) and "function" in v:
        return "function"
    if isinstance(v, dict):
        return {k: renderables(x) for k, x in v.items()}
    return v


def effective(step):
    """A step as checkconfig --dump shows it, with bbmaster's defaults for what it leaves
    out."""
    kind = step["step"]
    e = {"kind": kind, **COMMON_DEFAULTS, **KIND_DEFAULTS[kind]}
    if kind not in ("git", "github", "file_upload"):
        e.update(SHELL_DEFAULTS)
    for k, v in step.items():
        if k == "step":
            continue
        if k in ("description", "descriptionDone") and isinstance(v, str):
            v = [v]
        e[k] = True if k == "evaluateCommand" else v
    return renderables(e)


def upstream_step(index):
    s = dict(UPSTREAM["steps"][index])
    s.pop("class")
    return renderables(s)


def same(name, what, want, got, problems):
    if want != got:
        problems.append(f"{name}: {what}: upstream {want!r}, port {got!r}")


def compare_step(name, i, want, got, problems):
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key, "<absent>"), got.get(key, "<absent>")
        if key == "usePTY" and w is None and g == "<absent>":
            continue  # Buildbot's None ("as the worker says") is no usePTY here
        same(name, f"step {i} ({want.get('name')}) {key}", w, g, problems)


def compare_builder(want, got, problems):
    name = want["name"]
    for key in ("workernames", "builddir"):
        same(name, key, want[key], got[key], problems)
    same(name, "canStartBuild", want["canStartBuild"], "canStartBuild" in got, problems)
    # the first tag is the branch's; upstream's others come from a frozenset, in no order
    same(name, "tags", (want["tags"][0], sorted(want["tags"])),
         (got["tags"][0], sorted(got["tags"])), problems)
    wsteps = [upstream_step(i) for i in want["steps"]]
    gsteps = [effective(s) for s in got["steps"]]
    same(name, "step names", [s["name"] for s in wsteps], [s["name"] for s in gsteps], problems)
    if len(wsteps) == len(gsteps):
        for i, (w, g) in enumerate(zip(wsteps, gsteps)):
            compare_step(name, i, w, g, problems)


def load_port(settings=SETTINGS):
    """What cpython/master.lua defines, as bbmaster's checkconfig --dump shows it."""
    env = dict(os.environ, CI="1", PYBUILDBOT_SETTINGS_PATH=str(settings))
    r = subprocess.run([BBMASTER, "checkconfig", "--dump", CPYTHON], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_checkconfig():
    env = dict(os.environ, PYBUILDBOT_SETTINGS_PATH=SETTINGS)
    r = subprocess.run([BBMASTER, "checkconfig", CPYTHON], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Config file is good!" in r.stdout
    # every owner of the example has a password: no setting is missing; do_auth is false,
    # which custom/auth.lua says as upstream's custom/auth.py does
    warnings = [line for line in (r.stdout + r.stderr).splitlines() if "WARNING" in line]
    assert warnings == ["WARNING: Web UI is completely open"], r.stdout + r.stderr


def test_checkconfig_local_worker(tmp_path):
    """use_local_worker: one worker, local-worker, and one builder per branch."""
    settings = tmp_path / "settings.yaml"
    settings.write_text('use_local_worker: true\nlocal_worker_buildfactory: "ClangUnixBuild"\n'
                        'owners:\n  local:\n    password: "localpw"\n')
    port = load_port(settings)
    assert [w["name"] for w in port["workers"]] == ["local-worker"]
    assert [(b["name"], b["builddir"], b["tags"][1:]) for b in port["builders"]] == [
        (f"Test Builder {branch}", f"{dirname}.local-worker.clang", ["stable", "clang"])
        for branch, dirname in [("3.x", "3.x"), ("3.15", "3.15"), ("3.14", "3.14"),
                                ("3.13", "3.13"), ("3.12", "3.12"), ("3.11", "3.11"),
                                ("3.10", "3.10"), ("PR", "pull_request")]]


def test_auth_as_upstream(tmp_path):
    """do_auth: custom/auth.py's GitHub login (GraphQL, teams) and its rules, in order."""
    settings = tmp_path / "settings.yaml"
    with open(SETTINGS) as f:
        settings.write_text(f.read().replace("do_auth: false", "do_auth: true"))
    www = load_port(settings)["www"]
    assert www["auth"] == {"kind": "www.github_auth", "clientId": "fake-client-id",
                           "clientSecret": "<secret>", "apiVersion": 4,
                           "getTeamsMembership": True}
    rules = [(r["kind"].split(".")[1].replace("_endpoint_matcher", ""), r["role"],
              r.get("defaultDeny", True)) for r in www["authz"]["allowRules"]]
    assert rules == [
        ("any", "admins", False),
        ("stop_build", "owner", False), ("stop_build", "buildbot-owners", False),
        ("stop_build", "python-triage", False), ("stop_build", "python-core", True),
        ("rebuild_build", "owner", False), ("rebuild_build", "python-triage", False),
        ("rebuild_build", "buildbot-owners", False), ("rebuild_build", "python-core", True),
        ("force_build", "owner", False), ("force_build", "python-triage", False),
        ("force_build", "python-core", True),
        ("enable_scheduler", "python-release-managers", True),
        ("any_control", "admins", True)]
    assert www["authz"]["roleMatchers"] == [
        {"kind": "www.roles_from_groups", "groupPrefix": "python/"},
        {"kind": "www.roles_from_owner", "role": "owner"},
        {"kind": "www.roles_from_username", "roles": ["admins"],
         "usernames": ["zware", "vstinner", "bitdancer", "pitrou", "pablogsal"]}]


def test_same_as_upstream():
    port = load_port()
    # send_mail is false: no MailNotifier
    assert not [s for s in port["services"] if s["kind"] == "reporters.mail_notifier"]
    keys = ("name", "max_builds", "keepalive_interval")
    assert [{k: w[k] for k in keys} for w in port["workers"]] == UPSTREAM["workers"]
    assert [b["name"] for b in port["builders"]] == [b["name"] for b in UPSTREAM["builders"]]
    assert len(port["builders"]) == 1036
    problems = []
    for want, got in zip(UPSTREAM["builders"], port["builders"]):
        compare_builder(want, got, problems)
    for want, got in zip(UPSTREAM["schedulers"], port["schedulers"]):
        branch = got.get("change_filter", {}).get("branch")
        got = dict(got, fileIsImportant="fileIsImportant" in got,
                   change_filter_branch=[branch] if branch else None)
        if "stableBuilderNames" in want:
            got["stableBuilderNames"] = sorted(got["stableBuilderNames"])
        for key in want:
            same(want["name"], key, want[key], got.get(key), problems)
    same("schedulers", "names", [s["name"] for s in UPSTREAM["schedulers"]],
         [s["name"] for s in port["schedulers"]], problems)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])


@pytest.fixture
def cpython_master(master, tmp_path):
    """A master started from a copy of cpython/, with no workers, on free ports."""
    shutil.copytree(CPYTHON, master.dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("state.sqlite*", "bbmaster.*", "tools"))
    master.web_port = free_port()
    with open(SETTINGS) as f:
        text = f.read()
    overrides = {"web_port": master.web_port, "worker_port": master.pb_port,
                 "db_url": '"sqlite:///state.sqlite"',
                 "buildbot_url": f'"http://127.0.0.1:{master.web_port}/"'}
    lines = []
    for line in text.splitlines():
        key = line.split(":", 1)[0]
        lines.append(f"{key}: {overrides[key]}" if key in overrides else line)
    settings = tmp_path / "settings.yaml"
    settings.write_text("\n".join(lines) + "\n")
    master.env["PYBUILDBOT_SETTINGS_PATH"] = str(settings)
    master.start()
    wait_for(lambda: "builders" in api_get(master.web_port, "builders?limit=1"),
             what="the master's API")
    return master


def test_master_starts(cpython_master):
    port = cpython_master.web_port
    builders = api_get(port, "builders")["builders"]
    assert [b["name"] for b in builders] == [b["name"] for b in UPSTREAM["builders"]]
    tags = {b["name"]: sorted(b["tags"]) for b in builders}
    for b in UPSTREAM["builders"]:
        assert tags[b["name"]] == sorted(b["tags"]), b["name"]

    by_id = {b["builderid"]: b["name"] for b in builders}
    workers = api_get(port, "workers")["workers"]
    assert sorted(w["name"] for w in workers) == sorted(w["name"] for w in UPSTREAM["workers"])
    served = {}
    for w in workers:
        assert w["connected_to"] == [], w["name"]
        for c in w["configured_on"]:
            served.setdefault(by_id[c["builderid"]], []).append(w["name"])
    for b in UPSTREAM["builders"]:
        assert served.get(b["name"]) == b["workernames"], b["name"]

    schedulers = api_get(port, "schedulers")["schedulers"]
    assert sorted(s["name"] for s in schedulers) == \
        sorted(s["name"] for s in UPSTREAM["schedulers"])
    force = api_get(port, "forceschedulers/force")["forceschedulers"][0]
    assert sorted(force["builder_names"]) == sorted(b["name"] for b in UPSTREAM["builders"])


# custom/worker_downtime.lua, run by bbmaster: Los Angeles time across both daylight
# saving changes of 2026 (8 March 10:00 UTC, 1 November 09:00 UTC), and the windows.
DOWNTIME = r'''
local dir = os.getenv("CPYTHON_CONFIG")
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
local d = require "custom.worker_downtime"
local function utc(y, m, day, h, min)  -- seconds since the epoch of a UTC time
    local days = os.time({ year = y, month = m, day = day, hour = 12 }) // 86400
    return days * 86400 + h * 3600 + min * 60
end
local function check(t, want_h, want_m, want_wd)
    local s, wd = d.time_in("America/Los_Angeles", t)
    local got = ("%02d:%02d wd%d"):format(s // 3600, s % 3600 // 60, wd)
    local want = ("%02d:%02d wd%d"):format(want_h, want_m, want_wd)
    assert(got == want, os.date("!%Y-%m-%d %H:%M UTC", t) .. ": got " .. got .. ", want " .. want)
end
check(utc(2026, 3, 8, 9, 59), 1, 59, d.SUNDAY)     -- PST
check(utc(2026, 3, 8, 10, 0), 3, 0, d.SUNDAY)      -- PDT from 2:00 PST
check(utc(2026, 7, 1, 16, 30), 9, 30, d.WEDNESDAY) -- PDT
check(utc(2026, 11, 1, 8, 59), 1, 59, d.SUNDAY)    -- PDT
check(utc(2026, 11, 1, 9, 0), 1, 0, d.SUNDAY)      -- PST from 2:00 PDT
check(utc(2027, 1, 6, 0, 0), 16, 0, d.TUESDAY)     -- PST, the day before in LA
assert(d.is_within_time_range(9 * 3600, 8 * 3600, 10 * 3600))
assert(not d.is_within_time_range(10 * 3600 + 1, 8 * 3600, 10 * 3600))
assert(d.is_within_time_range(23 * 3600, 22 * 3600, 8 * 3600))   -- across midnight
assert(d.is_within_time_range(7 * 3600, 22 * 3600, 8 * 3600))
assert(not d.is_within_time_range(12 * 3600, 22 * 3600, 8 * 3600))
assert(d.get_delay(9 * 3600, 10 * 3600) == 3600)
assert(d.get_delay(23 * 3600, 8 * 3600) == 9 * 3600)              -- tomorrow's 8:00
local today = select(2, d.time_in(nil))
local can = d.no_builds_between("0:00", "23:59", { day_of_week = (today + 1) % 7 })
assert(can({}, {}, {}) == true, "another day than day_of_week: builds may start")
-- in the downtime: the worker goes into quarantine until its end, the backoff reset
local calls, worker = {}, {}
function worker:putInQuarantine() calls[#calls + 1] = "put " .. self.quarantine_timeout end
function worker:resetQuarantine() calls[#calls + 1] = "reset" end
can = d.no_builds_between("0:00", "23:59", { day_of_week = today })
local now = d.time_in(nil)
if now <= 23 * 3600 + 59 * 60 then
    assert(can({}, { worker = worker }, {}) == false, "in the downtime: no build")
    local put = tonumber(calls[1]:match("^put (%d+)$"))
    assert(put and math.abs(put - (23 * 3600 + 59 * 60 - now)) <= 2 and calls[2] == "reset",
           table.concat(calls, ", "))
end
return {}
'''


def test_worker_downtime(tmp_path):
    (tmp_path / "master.lua").write_text(DOWNTIME)
    env = dict(os.environ, CPYTHON_CONFIG=CPYTHON, TZ="UTC")
    r = subprocess.run([BBMASTER, "checkconfig", str(tmp_path)], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# custom/steps.lua's Test and UploadTestResults on a real worker: regrtest's exit code 5
# (a test failed, then passed when re-run) is WARNINGS, and asks for the JUnit file only
# on main's stable builders; a failure always asks for it (and says so in a property).
STEPS_CONFIG = r'''
local bbm = require "bbm"
local dir = os.getenv("CPYTHON_CONFIG")
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
local steps = require "custom.steps"
steps.TEST_RESULTS_DIR = "%(results)s"
local main = (require "custom.branches").MAIN_BRANCH

local function builder(name, tags, rc)
    return bbm.builder {
        name = name, workernames = { "w1" }, tags = tags,
        factory = bbm.factory {
            steps.Test { command = { "sh", "-c",
                "echo '<testsuite name=\"" .. name .. "\"/>' > test-results.xml; exit " .. rc } },
            steps.UploadTestResults(main),
            steps.Clean { command = { "true" } },
        },
    }
end

return {
    protocols = { pb = { port = %(pb)d } },
    www = { port = %(www)d },
    workers = { bbm.worker("w1", "w1pass") },
    uploadRoots = { "%(results)s" },
    builders = {
        builder("stable-rerun", { "3.x", "stable" }, 5),
        builder("unstable-rerun", { "3.x", "unstable" }, 5),
        builder("failed", { "3.x", "unstable" }, 2),
        builder("passed", { "3.x", "stable" }, 0),
    },
    schedulers = { bbm.schedulers.force { name = "force",
        builderNames = { "stable-rerun", "unstable-rerun", "failed", "passed" } } },
}
'''


def test_test_step_and_junit_upload(master, workers, tmp_path):
    from conftest import api_rpc
    results = tmp_path / "test-results"
    results.mkdir()
    web = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(STEPS_CONFIG % {"pb": master.pb_port, "www": web, "results": results})
    master.env["CPYTHON_CONFIG"] = CPYTHON
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    names = ["stable-rerun", "unstable-rerun", "failed", "passed"]
    status, body = api_rpc(web, "forceschedulers/force", "force", builderNames=names)
    assert status == 200, body
    brids = body["result"][1]
    builds = {}
    for name in names:
        brid = brids[str(api_get(web, f"builders/{name}")["builders"][0]["builderid"])]
        wait_for(lambda: api_get(web, f"buildrequests/{brid}")["buildrequests"][0]["complete"],
                 what=f"the build of {name}")
        builds[name] = api_get(web, f"buildrequests/{brid}/builds?property=*")["builds"][0]

    def outcome(name):
        b = builds[name]
        steps = api_get(web, f"builds/{b['buildid']}/steps")["steps"]
        props = {k: v[0] for k, v in b["properties"].items()
                 if k in ("want_xml_upload", "test_failed_to_build")}
        return b["results"], [(s["name"], s["results"]) for s in steps
                              if s["name"] != "worker_preparation"], props

    WARNINGS, FAILURE, SKIPPED, SUCCESS = 1, 2, 3, 0
    assert outcome("stable-rerun") == (
        WARNINGS, [("test", WARNINGS), ("upload", SUCCESS), ("clean", SUCCESS)],
        {"want_xml_upload": True})
    assert outcome("unstable-rerun") == (
        WARNINGS, [("test", WARNINGS), ("upload", SKIPPED), ("clean", SUCCESS)], {})
    assert outcome("failed") == (
        FAILURE, [("test", FAILURE), ("upload", SUCCESS), ("clean", SUCCESS)],
        {"want_xml_upload": True, "test_failed_to_build": True})
    assert outcome("passed") == (
        SUCCESS, [("test", SUCCESS), ("upload", SKIPPED), ("clean", SUCCESS)], {})
    uploaded = sorted(str(p.relative_to(results)) for p in results.rglob("*.xml"))
    assert uploaded == ["3.x/failed/build_1.xml", "3.x/stable-rerun/build_1.xml"]


FAKE_MAKEFILE = """all:
\t@echo "gcc -c Python/ceval.c -o Python/ceval.o"
\t@printf '#!/bin/sh\\necho Python 3.15.0a0\\n' > python && chmod +x python
pythoninfo:
\t@echo "sys.version: 3.15.0a0 (fake)"
buildbottest:
\t@echo "== Tests result: SUCCESS ==" && echo "TESTOPTS=$(TESTOPTS)"
distclean:
\t@rm -f python config.status
"""


def test_a_ported_builder_builds_on_a_real_worker(master, workers, tmp_path):
    """The ported configuration with upstream's local worker (use_local_worker, UnixBuild),
    its git URL pointing at a fake CPython repository: "Test Builder 3.x" runs upstream's
    steps on a real buildbot-worker, from the GitHub checkout to make distclean."""
    repo = tmp_path / "cpython-repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,  # noqa: E731
                                    capture_output=True, text=True,
                                    env={**os.environ, "GIT_AUTHOR_NAME": "A",
                                         "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "A",
                                         "GIT_COMMITTER_EMAIL": "a@x"}).stdout.strip()
    run("init", "-q", "-b", "main")
    (repo / "Makefile").write_text(FAKE_MAKEFILE)
    (repo / "configure").write_text("#!/bin/sh\necho \"configure $*\"\ntouch config.status\n")
    (repo / "configure").chmod(0o755)
    run("add", "Makefile", "configure")
    run("commit", "-q", "-m", "fake CPython")
    head = run("rev-parse", "HEAD")
    shutil.copytree(CPYTHON, master.dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("state.sqlite*", "bbmaster.*", "tools"))
    web = free_port()
    settings = tmp_path / "settings.yaml"
    settings.write_text(f'web_port: {web}\nworker_port: {master.pb_port}\n'
                        f'db_url: "sqlite:///state.sqlite"\n'
                        f'buildbot_url: "http://127.0.0.1:{web}/"\ngit_url: "{repo}"\n'
                        'use_local_worker: true\nlocal_worker_buildfactory: "UnixBuild"\n'
                        'owners:\n  local:\n    password: "localpw"\n')
    master.env["PYBUILDBOT_SETTINGS_PATH"] = str(settings)
    master.start()
    workers("local-worker", "localpw", master.pb_port).start()
    wait_for(lambda: api_get(web, "workers/local-worker")["workers"][0]["connected_to"],
             what="local-worker connected")
    from conftest import api_rpc
    status, body = api_rpc(web, "forceschedulers/force", "force",
                           builderNames=["Test Builder 3.x"])
    assert status == 200, body
    brid = list(body["result"][1].values())[0]
    wait_for(lambda: api_get(web, f"buildrequests/{brid}")["buildrequests"][0]["complete"],
             timeout=300, what="the build")
    build = api_get(web, f"buildrequests/{brid}/builds?property=*")["builds"][0]
    steps = api_get(web, f"builds/{build['buildid']}/steps")["steps"]
    SUCCESS, SKIPPED = 0, 3
    assert [(s["name"], s["results"]) for s in steps] == [
        ("worker_preparation", SUCCESS), ("git", SUCCESS), ("configure", SUCCESS),
        ("compile", SUCCESS), ("pythoninfo", SUCCESS), ("test", SUCCESS),
        ("upload", SKIPPED), ("clean", SUCCESS)], steps
    assert build["results"] == SUCCESS
    assert build["properties"]["got_revision"][0] == head
    test = [s for s in steps if s["name"] == "test"][0]
    log = api_get(web, f"steps/{test['stepid']}/logs/stdio/contents")["logchunks"]
    text = "".join(c["content"] for c in log)
    assert "== Tests result: SUCCESS ==" in text and "--junit-xml test-results.xml" in text


def test_mail_notifier_as_upstream(tmp_path):
    """send_mail: master.cfg's MailNotifier, BuildSetStatusGenerator(mode='problem') on the
    stable builders of the non-PR branches with custom/email_formatter.py's template, to the
    status list (in To, with Reply-To) from from_email through email_relay_host; and
    WorkerMissingGenerator(workers='all'), each worker's notify_on_missing its owner's email
    (none without one), missing_timeout left at Buildbot's 3600 s."""
    settings = tmp_path / "settings.yaml"
    with open(SETTINGS) as f:
        settings.write_text(f.read().replace("send_mail: false", "send_mail: true"))
    port = load_port(settings)
    mail, *others = [s for s in port["services"] if s["kind"] == "reporters.mail_notifier"]
    assert others == []
    generators = mail.pop("generators")
    assert mail == {"kind": "reporters.mail_notifier", "fromaddr": "buildbot@example.org",
                    "relayhost": "mail.example.org",
                    "extraRecipients": ["buildbot-status@example.org"],
                    "sendToInterestedUsers": False,
                    "extraHeaders": {"Reply-To": "buildbot-status@example.org"}}
    gen, missing = generators
    assert missing == {"kind": "reporters.worker_missing_generator", "workers": "all"}
    notify = {w["name"]: w["notify_on_missing"] for w in port["workers"]}
    assert notify["angelico-debian-amd64"] == ["owner@example.org"]
    assert notify["bolen-ubuntu"] == {}  # an empty Lua table: nobody
    assert "missing_timeout" not in port["workers"][0]
    stable = [b["name"] for b in UPSTREAM["builders"]
              if "stable" in b["tags"] and b["tags"][0] != "PullRequest"]
    assert (gen["kind"], gen["mode"], gen["builders"]) == (
        "reporters.build_set_status_generator", "problem", stable)
    fmt = gen["message_formatter"]
    assert fmt["template"].startswith("The Buildbot has detected a {{ status_detected }} on ")
    assert (fmt["template_type"], fmt["want_logs"], fmt["want_logs_content"],
            fmt["want_properties"], fmt["want_steps"]) == ("plain", True, True, True, True)


MAIL_CONFIG = r'''
local bbm = require "bbm"
local dir = os.getenv("CPYTHON_CONFIG")
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
local steps = require "custom.steps"
local email_formatter = require "custom.email_formatter"

-- the test step exits with the rc property, printing first (failing) the test suite's log,
-- or a line on stderr
local function builder(name, output)
    return bbm.builder {
        name = name, workernames = { "angelico-debian-amd64" }, tags = { "3.x", "stable" },
        factory = bbm.factory {
            steps.Test { command = { "sh", "-c", bbm.interpolate(
                "[ %%(prop:rc:-0)s = 0 ] || " .. output .. "; exit %%(prop:rc:-0)s") } },
        },
    }
end

return {
    title = "Python",
    buildbotURL = "https://buildbot.python.org/all/",
    protocols = { pb = { port = %(pb)d } },
    www = { port = %(www)d },
    workers = { bbm.worker("angelico-debian-amd64", "pw") },
    builders = { builder("AMD64 Debian root 3.x", "cat '%(log)s'"),
                 builder("AMD64 Fedora Stable 3.x", "echo oops >&2") },
    schedulers = { bbm.schedulers.force { name = "force",
        builderNames = { "AMD64 Debian root 3.x", "AMD64 Fedora Stable 3.x" },
        properties = { bbm.params.string { name = "rc", default = "0" } } } },
    -- master.cfg's MailNotifier, as master.lua configures it
    services = { bbm.reporters.mail_notifier {
        generators = { bbm.reporters.build_set_status_generator { mode = "problem",
            builders = { "AMD64 Debian root 3.x", "AMD64 Fedora Stable 3.x" },
            message_formatter = email_formatter.MESSAGE_FORMATTER } },
        fromaddr = "buildbot@python.org", relayhost = "127.0.0.1", smtpPort = %(smtp)d,
        extraRecipients = { "buildbot-status@python.org" }, sendToInterestedUsers = false,
        extraHeaders = { ["Reply-To"] = "buildbot-status@python.org" } } },
}
'''

# custom/email_formatter.py's MAIL_TEMPLATE at the upstream commit, verbatim.
UPSTREAM_TEMPLATE = """\
The Buildbot has detected a {{ status_detected }} on builder {{ buildername }} while building {{ projects }}.
Full details are available at:
    {{ build_url }}

Buildbot URL: {{ buildbot_url }}

Worker for this Build: {{ workername }}

Build Reason: {{ build['properties'].get('reason', ["<unknown>"])[0] }}
Blamelist: {{ ", ".join(blamelist) }}

{{ summary }}


Summary of the results of the build (if available):
===================================================

{{ build['final_log'].test_summary() }}


Captured traceback
==================

{{ "\\n\\n".join(build['tracebacks']) }}


Test report
===========

{{ build['final_log'].format_failing_tests() }}



Sincerely,
 -The Buildbot
"""


def upstream_mail(values):
    """UPSTREAM_TEMPLATE rendered as Jinja renders it (its last newline dropped) with these
    values for its expressions; the ones read from the test log's content are the values'
    "summary", "tracebacks" and "failing"."""
    import re
    exprs = {"status_detected": "new failure", "summary": "BUILD FAILED: failed test (failure)",
             "projects": "python/cpython", "buildbot_url": "https://buildbot.python.org/all/",
             "workername": "angelico-debian-amd64",
             "build['properties'].get('reason', [\"<unknown>\"])[0]": values["reason"],
             "\", \".join(blamelist)": "Jane Doe <jane@example.org>",
             "buildername": values["builder"], "build_url": values["url"],
             "build['final_log'].test_summary()": values["summary"],
             "\"\\n\\n\".join(build['tracebacks'])": values["tracebacks"],
             "build['final_log'].format_failing_tests()": values["failing"]}
    return re.sub(r"\{\{ (.*?) \}\}", lambda m: exprs[m.group(1)], UPSTREAM_TEMPLATE)[:-1]


def test_failure_mail_as_upstream(master, workers):
    """custom/email_formatter.lua's mail, as master.lua's MailNotifier sends it, for a push
    that newly breaks two stable builders: one mail (Buildbot raises KeyError on it and
    sends none) with upstream's subject and, for each builder, upstream's text: the test
    summary, the tracebacks and the failing tests that upstream's buildAdditionalContext
    reads from the test log (custom/testsuite_utils.lua through the formatter's
    build_additional_context) for the builder whose tests print CPython's log, the stderr
    line as the traceback (construct_tracebacks_from_build_stderr) and nothing else for the
    other."""
    import email
    import email.policy
    from conftest import api_rpc
    from test_reporters import FakeSMTP
    from test_reporters_buildset import built
    from test_reporters_push import (CPYTHON_TEST_LOG, UPSTREAM_FAILING, UPSTREAM_SUMMARY,
                                     UPSTREAM_TRACEBACK)

    web, smtp_port = free_port(), free_port()
    log = os.path.join(master.dir, "test.log")
    with open(log, "w") as f:
        f.write(CPYTHON_TEST_LOG)
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(MAIL_CONFIG.replace("%(log)s", log)
                % {"pb": master.pb_port, "www": web, "smtp": smtp_port})
    master.env["CPYTHON_CONFIG"] = CPYTHON
    smtp = FakeSMTP(smtp_port)
    smtp.start()
    names = ["AMD64 Debian root 3.x", "AMD64 Fedora Stable 3.x"]

    def force(rc):
        status, body = api_rpc(web, "forceschedulers/force", "force", builderNames=names,
                               project="python/cpython", branch="main", rc=rc,
                               username="Jane Doe <jane@example.org>")
        assert status == 200, body
        return body["result"]

    try:
        master.start()
        workers("angelico-debian-amd64", "pw", master.pb_port).start()
        master.wait_log(r"worker 'angelico-debian-amd64' attached")
        built(web, force("0"))
        _, builds = built(web, force("1"))
        wait_for(lambda: smtp.mails, what="the mail")
    finally:
        smtp.stop()
    [(sender, rcpts, content, _, _)] = smtp.mails
    assert (sender, rcpts) == ("buildbot@python.org", ["buildbot-status@python.org"])
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert (msg["From"], msg["To"], msg["Reply-To"]) == (
        "buildbot@python.org", "buildbot-status@python.org", "buildbot-status@python.org")
    assert msg["Subject"] == "\u2620 Buildbot (Python): python/cpython - failed test (failure) " \
        "(main)"
    reason = api_get(web, f"builds/{builds[0]['buildid']}?property=reason")["builds"][0][
        "properties"]["reason"][0]
    builds.sort(key=lambda b: b["buildrequestid"])  # getDetailsForBuildset's order
    name = {b["builderid"]: api_get(web, f"builders/{b['builderid']}")["builders"][0]["name"]
            for b in builds}
    assert sorted(name.values()) == names
    # each build's body, joined as Buildbot joins them, then MailNotifier's "\n\n"
    url = "https://buildbot.python.org/all/#/builders/{builderid}/builds/{number}"
    from_log = {"AMD64 Debian root 3.x": (UPSTREAM_SUMMARY, UPSTREAM_TRACEBACK, UPSTREAM_FAILING),
                "AMD64 Fedora Stable 3.x": ("", "oops", "")}
    assert msg.get_body().get_content() == "".join(
        upstream_mail({"builder": name[b["builderid"]], "url": url.format(**b), "reason": reason,
                       **dict(zip(("summary", "tracebacks", "failing"),
                                  from_log[name[b["builderid"]]]))})
        for b in builds) + "\n\n"
    # want_logs_content = true: as in Buildbot, every log read is attached, named
    # "builder.step.log" in a mail of two builds (where Buildbot raises KeyError)
    assert [a.get_filename() for a in msg.iter_attachments()] == [
        "AMD64 Debian root 3.x.test.stdio", "AMD64 Debian root 3.x.test.warnings (2)",
        "AMD64 Fedora Stable 3.x.test.stdio"]
