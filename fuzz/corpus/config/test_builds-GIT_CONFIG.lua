local bbm = require "bbm"
local function git(mode, method)
  return bbm.steps.git{ repourl = "/tmp/x", mode = mode, method = method }
end
local show = bbm.steps.shell{ name = "show", command = { "cat", "file.txt" } }
return {
  protocols = { pb = { port = 1234 } },
  www = { port = 1234 },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "incremental", workernames = { "w1" },
      factory = bbm.factory{ git("incremental"), show } },
    bbm.builder{ name = "fresh", workernames = { "w1" },
      factory = bbm.factory{ git("full", "fresh"), show } },
    bbm.builder{ name = "clobber", workernames = { "w1" },
      factory = bbm.factory{ git("full", "clobber"), show } },
    bbm.builder{ name = "copy", workernames = { "w1" },
      factory = bbm.factory{ git("full", "copy"), show } },
    bbm.builder{ name = "recover", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "/tmp/x", mode = "incremental", retryFetch = true,
        clobberOnFailure = true }, show } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force",
      builderNames = { "incremental", "fresh", "clobber", "copy", "recover" } },
  },
}
