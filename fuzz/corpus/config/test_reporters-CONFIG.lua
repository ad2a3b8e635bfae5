local bbm = require "bbm"
local R = bbm.reporters
return {
  buildbotURL = "http://buildbot.example/all/",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "alpha", workernames = { "w1" }, tags = { "t" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } } },
  services = {
    R.github_status_push{ token = "tok-1", baseURL = "http://127.0.0.1:9/", verbose = true,
      generators = { R.build_start_end_status_generator{ builders = { "alpha" } } } },
    R.github_status_push{ token = "tok-2", name = "Custom", debug = false, verify = true,
      context = bbm.interpolate("ci/%(prop:buildername)s"),
      generators = {
        R.build_request_generator{ tags = { "t" },
          formatter = R.message_formatter_renderable{ template = "Queued." } },
        R.build_start_end_status_generator{ tags = { "t" }, add_patch = false,
          start_formatter = R.message_formatter_renderable{ template = "Starting." },
          end_formatter = R.message_formatter_renderable{
            template = bbm.interpolate("Build #%(prop:buildnumber)s") } } } },
    R.github_status_push{ token = "tok-3", name = "Defaults" },
  },
}
