"""What master.lua prints while it loads (print, bbm.log.msg, bbm.log.err: Buildbot configs
call twisted's log.msg) goes to bbmaster.log when the master starts and at every reconfig,
with the file and line; its functions' prints at run time go there too; checkconfig shows
the messages on stderr, leaving stdout to "Config file is good!" or --dump's JSON."""

import json
import os
import re

from conftest import api_rpc, free_port

CONFIG = r'''local bbm = require "bbm"
print("hello from", "master.lua", %(n)d)
bbm.log.msg("builders:", 1, "of", "them")
bbm.log.err("an error, said by the config")
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "b", workernames = { "w1" }, factory = bbm.factory{
    bbm.steps.shell{ name = "s", command = { "true" },
      doStepIf = function(step) print("doStepIf of step s"); return true end } } } },
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "b" } } },
}
'''

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0000"


def write(master, www, n=1):
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": www, "n": n})


def test_checkconfig_says_them_on_stderr(master):
    write(master, free_port())
    r = master.cli("checkconfig", master.dir, check=0)
    assert r.stdout == "Config file is good!\n"
    assert r.stderr == ("hello from\tmaster.lua\t1\nbuilders: 1 of them\n"
                        "an error, said by the config\n")
    r = master.cli("checkconfig", "--dump", master.dir, check=0)
    assert json.loads(r.stdout)["builders"][0]["name"] == "b"
    assert "hello from\tmaster.lua\t1\n" in r.stderr


def test_the_running_master_logs_them(master, workers):
    www = free_port()
    write(master, www)
    master.start()
    log = master.log()
    assert re.search(STAMP + r" \[info\] master\.lua:2: hello from\tmaster\.lua\t1\n", log), log
    assert re.search(STAMP + r" \[info\] master\.lua:3: builders: 1 of them\n", log), log
    assert re.search(STAMP + r" \[error\] master\.lua:4: an error, said by the config\n", log)
    # each load says them again
    write(master, www, n=2)
    r = master.cli("reconfig", master.dir, check=0)
    assert "completed successfully" in r.stdout, r.stdout
    assert master.count(r"\[info\] master\.lua:2: hello from\tmaster\.lua\t2\n") == 1
    assert master.count(r"\[info\] master\.lua:3: builders: 1 of them\n") == 2
    # and the config's functions, when the master calls them
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    status, body = api_rpc(www, "forceschedulers/force", "force", builderNames=["b"])
    assert status == 200, body
    master.wait_log(r"\[info\] master\.lua:11: doStepIf of step s\n")
