local bbm = require "bbm"
return {
  protocols = { pb = { port = 1234 } },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "b1", workernames = { "w1" }, factory = bbm.factory{
    bbm.steps.shell{ command = { "true" } } } } },
  change_source = { bbm.changes.pb{ user = "sender", passwd = "s3nd", prefix = "trunk/" } },
  schedulers = { bbm.schedulers.any_branch{ name = "all", builderNames = { "b1" } } },
}
