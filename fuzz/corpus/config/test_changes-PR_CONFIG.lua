local bbm = require "bbm"
local function builder(name, tags)
  return bbm.builder{ name = name, workernames = { "w1" }, tags = tags,
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } }
end
return {
  buildbotURL = "http://buildbot.example/",
  protocols = { pb = { port = 1234 } },
  www = { port = 1234, change_hook_dialects = { github = {
    secret = "/tmp/x", strict = true, token = "t0ken",
    github_api_endpoint = "/tmp/x", github_property_whitelist = { "*.labels" },
    pull_request_testing = {
      labels = { [":hammer: test-with-buildbots"] = ".*" } } } } },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { builder("x86 Stable PR", { "stable" }), builder("x86 Unstable PR", {}),
               builder("x86 Refleaks PR", { "stable" }) },
  schedulers = { bbm.schedulers.pull_request{ name = "pull-request-scheduler",
    builderNames = { "x86 Stable PR", "x86 Unstable PR", "x86 Refleaks PR" } } },
}
