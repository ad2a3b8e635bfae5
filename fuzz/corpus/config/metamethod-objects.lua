local bbm = require "bbm"
local boom = {__index = function(t, k) error("no " .. k) end}
local b = bbm.builder{ name = "alpha", workernames = { "w1" }, tags = { "t" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } }
local s = bbm.schedulers.force{ name = "f", builderNames = { "alpha" } }
local r = bbm.reporters.github_status_push{ token = "t", generators = { bbm.reporters.build_start_end_status_generator{ builders = { "alpha" } } } }
setmetatable(b, boom); setmetatable(s, boom); setmetatable(r, boom)
return {
  workers = { bbm.worker("w1", "p") },
  builders = { b },
  schedulers = { s },
  services = { r },
}
