"""The configuration's Lua functions at run time, on a real master and worker: each call
has a budget of instructions and the state's memory cap.  A renderable or an
evaluateCommand that loops, or a renderable that allocates without end, makes its step
EXCEPTION with the reason in its err.text log; a canStartBuild or a change filter that loops
is logged with the function's FILE:LINE and takes the path an error in it takes.  The engine never hangs: the next build on the
same master succeeds, with a Lua renderable (the state is still usable), and /api/v2
answers."""

import os
import re

import pytest

from conftest import api_get, api_rpc, free_port, wait_for

CONFIG = r'''local bbm = require "bbm"
local function spin(props)
  while true do end
end
local function sneaky(props)
  while true do pcall(function() while true do end end) end
end
local function hungry(props)
  local s = "x"
  while true do s = s .. s end
end
local function hoard(props)
  local t = {}
  for i = 1, 1e12 do t[i] = string.rep("y", 1e6) .. i end
end
local function tricky(props)
  local loop = function() while true do end end
  return setmetatable({}, { __index = loop, __len = loop })
end
local function shell(name, renderable)
  return bbm.builder{ name = name, workernames = { "w1" },
    factory = bbm.factory{ bbm.steps.shell{ name = name, command = { "echo", renderable } } } }
end
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    shell("spin", spin),
    shell("sneaky", sneaky),
    shell("hungry", hungry),
    shell("hoard", hoard),
    shell("tricky", tricky),
    bbm.builder{ name = "judge", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "judge", command = { "true" },
        evaluateCommand = function(step, cmd)
          while true do end
        end } } },
    shell("ok", function(props) return "built " .. props:getProperty("buildnumber") end),
    bbm.builder{ name = "gated", workernames = { "w1" },
      canStartBuild = function(builder, wfb, request)
        while true do end
      end,
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
  },
  change_source = { bbm.changes.pb{ user = "sender", passwd = "s3nd" } },
  schedulers = {
    bbm.schedulers.force{ name = "force",
      builderNames = { "spin", "sneaky", "hungry", "hoard", "tricky", "judge", "ok", "gated" } },
    bbm.schedulers.any_branch{ name = "looping", builderNames = { "gated" },
      change_filter = bbm.change_filter{ filter_fn = function(change)
        while true do end
      end } },
    bbm.schedulers.any_branch{ name = "plain", builderNames = { "ok" } },
  },
}
'''

# the line of each function's definition in CONFIG
LINES = {name: i + 1 for i, text in enumerate(CONFIG.splitlines())
         for name in ("spin", "sneaky", "hungry", "hoard", "evaluateCommand", "canStartBuild",
                      "filter_fn")
         if re.search(rf"\b{name}\b.*function|function {name}\b", text)}
BUDGET = "the function ran past its budget of 10000000 instructions"
MEMORY = "the function went past 512 MiB, the memory Lua may use"


class Site:
    def __init__(self, master, workers):
        self.master = master
        self.port = free_port()
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": master.pb_port, "www": self.port})
        master.start()
        workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")

    def get(self, path):
        return api_get(self.port, path)

    def force(self, builder):
        status, body = api_rpc(self.port, "forceschedulers/force", "force",
                               builderNames=[builder])
        assert status == 200, body
        return list(body["result"][1].values())[0]

    def build_of(self, brid):
        builds = self.get(f"buildrequests/{brid}/builds")["builds"]
        return builds[-1] if builds else None

    def run(self, builder):
        """Forces a build of `builder`, waits for it to finish: the build."""
        brid = self.force(builder)
        wait_for(lambda: self.get(f"buildrequests/{brid}")["buildrequests"][0]["complete"],
                 what=f"request {brid} of {builder}")
        return self.build_of(brid)

    def step(self, build, number):
        steps = self.get(f"builds/{build['buildid']}/steps")["steps"]
        return next(s for s in steps if s["number"] == number)

    def err_text(self, build, number):
        chunks = self.get(f"builds/{build['buildid']}/steps/{number}/logs/err_text/contents")
        return "".join(c["content"] for c in chunks["logchunks"])

    def still_serves(self):
        """Another build on the same master succeeds, its command rendered by a Lua function."""
        b = self.run("ok")
        assert (b["results"], self.step(b, 1)["results"]) == (0, 0)
        logs = self.get(f"builds/{b['buildid']}/steps/1/logs/stdio/contents")["logchunks"]
        assert f"obuilt {b['number']}\n" in "".join(c["content"] for c in logs)
        assert self.get("workers")["workers"][0]["name"] == "w1"


@pytest.fixture
def site(master, workers):
    return Site(master, workers)


@pytest.mark.parametrize("builder", ["spin", "sneaky"])
def test_endless_renderable_fails_its_step(site, builder):
    """A command rendered by an endless loop (even one that catches the budget's error with
    pcall and loops on) is the step's EXCEPTION, and so the build's."""
    b = site.run(builder)
    assert (b["results"], site.step(b, 1)["results"]) == (4, 4)
    why = f"master.lua:{LINES[builder]}: {BUDGET}"
    assert why in site.err_text(b, 1)
    assert site.master.count(re.escape(why)) == 1
    site.still_serves()


def test_endless_evaluate_command_fails_its_step(site):
    """evaluateCommand looping after the command ran: the step is EXCEPTION, the reason in
    its err.text log as well as in the master's log."""
    b = site.run("judge")
    assert (b["results"], site.step(b, 1)["results"]) == (4, 4)
    why = f"evaluateCommand: master.lua:{LINES['evaluateCommand']}: {BUDGET}"
    assert why in site.err_text(b, 1)
    assert site.master.count(re.escape(why)) == 1
    site.still_serves()


@pytest.mark.parametrize("builder", ["hungry", "hoard"])
def test_endless_allocation_fails_its_step(site, builder):
    """A renderable that allocates without end gets Lua's memory error at the state's cap:
    the step is EXCEPTION and the master, its Lua state and its memory are as before."""
    b = site.run(builder)
    assert (b["results"], site.step(b, 1)["results"]) == (4, 4)
    assert f"master.lua:{LINES[builder]}: {MEMORY}" in site.err_text(b, 1)
    site.still_serves()
    b = site.run(builder)  # what the first call held was given back
    assert f"master.lua:{LINES[builder]}: {MEMORY}" in site.err_text(b, 1)
    site.still_serves()


def test_result_with_endless_metamethods(site):
    """What a function returns is read from C, outside any protected call, so it must be
    plain: a table with a metatable (here an __index and __len that loop, never run) fails
    its step, with the reason."""
    b = site.run("tricky")
    assert (b["results"], site.step(b, 1)["results"]) == (4, 4)
    assert ("the function failed: it returned a table with a metatable: the master reads "
            "what functions return as it is, without metamethods") in site.err_text(b, 1)
    site.still_serves()


def test_endless_can_start_build_and_change_filter(site):
    """canStartBuild looping is logged with its FILE:LINE and holds the request back, as an
    error in it does; a change filter looping is logged and the change does not match that
    scheduler while the other scheduler builds it."""
    brid = site.force("gated")
    site.master.wait_log(re.escape(
        f"builder 'gated': canStartBuild: master.lua:{LINES['canStartBuild']}: {BUDGET}"))
    site.still_serves()
    assert site.build_of(brid) is None

    r = site.master.cli("sendchange", "--master", f"127.0.0.1:{site.master.pb_port}",
                        "--auth", "sender:s3nd", "--who", "ada", "--branch", "main", "a.c")
    assert (r.returncode, r.stdout) == (0, "change sent successfully\n"), r.stderr
    site.master.wait_log(re.escape(
        f"change_filter filter_fn: master.lua:{LINES['filter_fn']}: {BUDGET}"))

    def plain_built():
        builds = site.get("builders/ok/builds")["builds"]
        return len(builds) == 2 and all(b["complete"] for b in builds)
    wait_for(plain_built, what="the change built by the other scheduler")
    assert [b["results"] for b in site.get("builders/ok/builds")["builds"]] == [0, 0]
