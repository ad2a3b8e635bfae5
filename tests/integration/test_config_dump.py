"""`bbmaster checkconfig --dump`: the loaded configuration as JSON on stdout, every parameter
that is set, in configuration order with sorted keys, so that two versions of a master.lua
diff cleanly; secrets masked; a broken or unprintable config gives its FILE:LINE on stderr
and nothing on stdout."""

import difflib
import json
import os

CONFIG = r'''local bbm = require "bbm"
local settings = { pw = "s3cr3t-pw", token = "gh-t0ken" }
local function quick(step) return step.build ~= nil end
return {
  title = "Dump",
  buildbotURL = "http://ci.example/",
  db_url = "postgresql://bb:pg-pa55@localhost/bb",
  protocols = { pb = { port = 9989 } },
  properties = { owner = "ops", api_token = settings.token },
  workers = {
    bbm.worker("w1", settings.pw, { max_builds = 2, properties = { os = "linux" } }),
    bbm.worker("w2", "other-pw"),
  },
  builders = {
    bbm.builder{ name = "x86 Debian", workernames = { "w1", "w2" }, tags = { "stable" },
      factory = bbm.factory{
        bbm.steps.git{ repourl = "https://github.com/python/cpython", mode = "full",
                       branch = bbm.interpolate("%%(prop:branch)s") },
        bbm.steps.configure{ command = { "./configure", "--with-pydebug" } },
        bbm.steps.compile{ name = "make", command = { "make", "-j4" }, warningPattern = "warn" },
        bbm.steps.shell{ name = "test", command = "%(test)s", timeout = 1200,
                         env = { LANG = "C" }, doStepIf = quick },
        bbm.steps.file_upload{ workersrc = "junit.xml", masterdest = "results/junit.xml" },
      } },
    bbm.builder{ name = "docs", workername = "w2", builddir = "docs-dir",
      factory = bbm.factory{ bbm.steps.shell{ command = { "make", "html" } } } },
  },
  schedulers = {
    bbm.schedulers.single_branch{ name = "main", builderNames = { "x86 Debian", "docs" },
      treeStableTimer = 5, change_filter = bbm.change_filter{ branch = "main" } },
    bbm.schedulers.force{ name = "force", builderNames = { "docs" } },
  },
}
'''

EXPECTED = {
    "title": "Dump",
    "buildbotURL": "http://ci.example/",
    "db_url": "postgresql://bb:<secret>@localhost/bb",
    "protocols": {"pb": {"port": 9989}},
    "properties": {"owner": "ops", "api_token": "<secret>"},
    "workers": [
        {"name": "w1", "password": "<secret>", "max_builds": 2, "properties": {"os": "linux"}},
        {"name": "w2", "password": "<secret>", "max_builds": None, "properties": {}},
    ],
    "builders": [
        {"name": "x86 Debian", "workernames": ["w1", "w2"], "tags": ["stable"],
         "builddir": "x86_Debian",
         "steps": [
             {"step": "git", "repourl": "https://github.com/python/cpython", "mode": "full",
              "branch": {"interpolate": "%(prop:branch)s"}},
             {"step": "configure", "command": ["./configure", "--with-pydebug"]},
             {"step": "compile", "name": "make", "command": ["make", "-j4"],
              "warningPattern": "warn"},
             {"step": "shell", "name": "test", "command": "make test", "timeout": 1200,
              "env": {"LANG": "C"}, "doStepIf": {"function": True}},
             {"step": "file_upload", "workersrc": "junit.xml",
              "masterdest": "results/junit.xml"},
         ]},
        {"name": "docs", "workernames": ["w2"], "tags": [], "builddir": "docs-dir",
         "steps": [{"step": "shell", "command": ["make", "html"]}]},
    ],
    "schedulers": [
        {"name": "main", "kind": "single_branch", "builderNames": ["x86 Debian", "docs"],
         "treeStableTimer": 5, "change_filter": {"kind": "change_filter", "branch": "main"}},
        {"name": "force", "kind": "force", "builderNames": ["docs"]},
    ],
}


def write(master, text):
    path = os.path.join(master.dir, "master.lua")
    with open(path, "w") as f:
        f.write(text)
    return path


def dump(master, test="make test"):
    write(master, CONFIG % {"test": test})
    r = master.cli("checkconfig", "--dump", master.dir, check=0)
    assert "Config file is good!" in r.stderr, r.stderr
    return r.stdout


def test_dump_prints_the_configuration(master):
    out = dump(master)
    assert json.loads(out) == EXPECTED
    # keys sorted, indented by two, configuration order kept in lists
    assert out.startswith('{\n  "buildbotURL": "http://ci.example/",\n  "builders": [\n')
    assert out.endswith("}\n")
    names = [b["name"] for b in json.loads(out)["builders"]]
    assert names == ["x86 Debian", "docs"]


def test_dump_masks_secrets(master):
    out = dump(master)
    for secret in ("s3cr3t-pw", "other-pw", "gh-t0ken", "pg-pa55"):
        assert secret not in out, secret
    assert out.count('"<secret>"') == 3  # two worker passwords, api_token
    assert "bb:<secret>@localhost" in out


def test_two_dumps_differ_only_where_the_configs_do(master):
    before = dump(master)
    after = dump(master, test="make test TESTOPTS=-j0")
    a, b = json.loads(before), json.loads(after)
    assert a["builders"][0] != b["builders"][0]
    a["builders"][0]["steps"][3]["command"] = "make test TESTOPTS=-j0"
    assert a == b
    changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                     lineterm="", n=0)
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ['-          "command": "make test",',
                       '+          "command": "make test TESTOPTS=-j0",']


def test_dump_of_a_broken_config_prints_nothing(master):
    path = write(master, 'local bbm = require "bbm"\nreturn {\n'
                         '  workers = { bbm.worker("w1", "pw", { max_build = 1 }) },\n}\n')
    r = master.cli("checkconfig", "--dump", master.dir)
    assert r.returncode == 1
    assert r.stdout == ""
    assert f"{path}:3: bbm.worker: unknown parameter 'max_build'; did you mean 'max_builds'?" \
        in r.stderr


def test_dump_refuses_a_table_that_contains_itself(master):
    path = write(master, 'local bbm = require "bbm"\nlocal env = { LANG = "C" }\n'
                         'env.again = env\nreturn {\n'
                         '  workers = { bbm.worker("w1", "pw") },\n'
                         '  builders = { bbm.builder{ name = "b", workernames = { "w1" },\n'
                         '    factory = bbm.factory{\n'
                         '      bbm.steps.shell{ command = "true", env = env } } } },\n}\n')
    # the config itself is good: only printing it is refused
    assert master.cli("checkconfig", master.dir, check=0).stdout == "Config file is good!\n"
    r = master.cli("checkconfig", "--dump", master.dir)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == (f"{path}:8: builder 'b': steps[1].env.again: the table contains itself "
                        "(a cycle), which cannot be printed\n")


def test_dump_takes_a_file_and_only_goes_with_checkconfig(master):
    path = write(master, CONFIG % {"test": "make test"})
    r = master.cli("checkconfig", "--dump", path, check=0)
    assert json.loads(r.stdout) == EXPECTED
    r = master.cli("start", "--dump", master.dir)
    assert r.returncode == 2
    assert "--dump goes with checkconfig" in r.stderr
    assert "--dump" in master.cli("--help", check=0).stdout
