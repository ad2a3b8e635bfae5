"""Buildbot's worker quarantine, driven by a builder's canStartBuild on a real
buildbot-worker: wfb.worker:putInQuarantine() holds the worker back from every builder
until the quarantine ends (Buildbot's first timeout, 10 s), then the held requests start
without another event; the next timeout doubles and a build that ends well resets it.
buildbot.python.org's planned downtime (worker_downtime.py) sets quarantine_timeout to
the downtime's end, puts the worker in quarantine and resets the backoff; unpausing the
worker ends a quarantine, as Buildbot's unpause does."""

import os
import re

from conftest import free_port, wait_for
from test_builds import ATTACHED, Site

CONFIG = r'''local bbm = require "bbm"
local calls = 0
local function record(wfb)
  calls = calls + 1
  local f = io.open("%(calls)s", "a")
  f:write(string.format("%%d %%s %%g\n", calls, wfb.worker.workername,
                        wfb.worker.quarantine_timeout))
  f:close()
end
local noop = bbm.factory{ bbm.steps.shell{ command = { "true" } } }
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "pw") },
  builders = {
    bbm.builder{ name = "held", workernames = { "w1" }, factory = noop,
      canStartBuild = function(builder, wfb, request)
        record(wfb)
        if calls == 1 then
          wfb.worker:putInQuarantine()
          return false
        end
        return true
      end },
    bbm.builder{ name = "downtime", workernames = { "w1" }, factory = noop,
      canStartBuild = function(builder, wfb, request)
        if io.open("%(down)s") ~= nil then
          wfb.worker.quarantine_timeout = 7200   -- the downtime's end, in seconds
          wfb.worker:putInQuarantine()
          wfb.worker:resetQuarantine()
          record(wfb)
          return false
        end
        return true
      end },
    bbm.builder{ name = "plain", workernames = { "w1" }, factory = noop },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "held", "downtime", "plain" } },
  },
}
'''


def start(master, workers, tmp_path):
    s = Site.__new__(Site)
    s.master, s.port, s.backend = master, free_port(), "sqlite"
    s.calls, s.down = tmp_path / "calls", tmp_path / "down"
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": s.port, "calls": s.calls,
                          "down": s.down})
    master.start()
    workers("w1", "pw", master.pb_port).start()
    master.wait_log(ATTACHED)
    return s


def calls(s):
    return s.calls.read_text().splitlines() if s.calls.exists() else []


def position(log, pattern):
    """Where the first line matching `pattern` is in the master's log."""
    m = re.search(pattern, log, re.M)
    assert m, f"no {pattern!r} in the master's log"
    return m.start()


def test_can_start_build_puts_the_worker_in_quarantine(master, workers, tmp_path):
    """The first canStartBuild puts w1 in quarantine for 10 s: a request of another builder
    (no canStartBuild) forced meanwhile waits too; when the quarantine ends both start,
    canStartBuild having been asked once more, seeing the doubled timeout (20); after a
    build ended well the timeout is back to 10."""
    s = start(master, workers, tmp_path)
    held = s.force("held")[1]
    master.wait_log(r"worker 'w1' has been put in quarantine for 10s")
    plain = s.force("plain")[1]
    master.wait_log(r"buildset 2 added")
    assert [s.wait_request(brid)["results"] for brid in (held, plain)] == [0, 0]
    log = master.log()
    put = position(log, r"worker 'w1' has been put in quarantine for 10s$")
    added = position(log, r"scheduler 'force': buildset 2 added")
    left = position(log, r"worker 'w1' has left quarantine$")
    starts = [position(log, rf"'{b}' #1 starting on worker 'w1'") for b in ("held", "plain")]
    assert put < added < left < min(starts), log
    assert log.count("has been put in quarantine") == 1, log
    assert calls(s) == ["1 w1 10", "2 w1 20"]

    assert s.wait_request(s.force("held")[1])["results"] == 0
    assert calls(s) == ["1 w1 10", "2 w1 20", "3 w1 10"]


def test_planned_downtime_and_unpause(master, workers, tmp_path):
    """buildbot.python.org's worker_downtime: quarantine_timeout set to the downtime's end
    (two hours), putInQuarantine, resetQuarantine (the next timeout is 10 s again).  The
    worker takes nothing meanwhile; unpausing it ends the quarantine and the request
    starts."""
    s = start(master, workers, tmp_path)
    s.down.write_text("")
    brid = s.force("downtime")[1]
    master.wait_log(r"worker 'w1' has been put in quarantine for 7200s")
    # canStartBuild records after putInQuarantine logged (and slower under ASan)
    wait_for(lambda: calls(s), what="canStartBuild's record")
    assert calls(s) == ["1 w1 10"]
    plain = s.force("plain")[1]
    master.wait_log(r"buildset 2 added")
    s.down.unlink()
    assert s.rpc("workers/w1", "unpause")[0] == 200
    assert [s.wait_request(b)["results"] for b in (brid, plain)] == [0, 0]
    log = master.log()
    added = position(log, r"scheduler 'force': buildset 2 added")
    left = position(log, r"worker 'w1' has left quarantine$")
    unpaused = position(log, r"worker 'w1' unpaused$")
    starts = [position(log, rf"'{b}' #1 starting on worker 'w1'") for b in ("downtime", "plain")]
    assert added < left < unpaused < min(starts), log
    assert calls(s) == ["1 w1 10"]
