local bbm = require "bbm"
return {
  protocols = { pb = { port = 1234 } },
  www = { port = 1234 },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = { bbm.builder{ name = "b1", workernames = { "w1" }, factory = bbm.factory{
    bbm.steps.shell{ command = { "true" } } } } },
  change_source = { bbm.changes.git_poller{ repourl = "/tmp/x", branches = { "main" },
    pollInterval = 1, pollAtLaunch = true, workdir = "gp", project = "proj",
    category = "cat" } },
  schedulers = { bbm.schedulers.any_branch{ name = "all", builderNames = { "b1" } } },
}
