local bbm = require "bbm"
local function gate() return io.open("/tmp/x") ~= nil end
local step = bbm.steps.shell{ name = "work", command = { "sleep", "0.5" } }
return {
  protocols = { pb = { port = 1234 } },
  www = { port = 1234 },
  db_url = "sqlite:///state.sqlite",
  collapseRequests = false,
  workers = { bbm.worker("w1", "pw", { max_builds = 1 }), bbm.worker("w2", "pw", { max_builds = 1 }) },
  builders = {
    bbm.builder{ name = "x", workernames = { "w1", "w2" }, canStartBuild = gate,
      factory = bbm.factory{ step }, /tmp/x },
    bbm.builder{ name = "y", workernames = { "w1", "w2" }, canStartBuild = gate,
      factory = bbm.factory{ step }, /tmp/x },
  },
  /tmp/x
  schedulers = { bbm.schedulers.force{ name = "force", builderNames = { "x", "y" } } },
}
