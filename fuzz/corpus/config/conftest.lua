local bbm = require "bbm"
return {
  title = "test",
  protocols = { pb = { port = 9989 } },
  workers = {
    bbm.worker("w1", "p1"),
    bbm.worker("w2", "p2")
  },
  builders = {
    bbm.builder{ name = "b1", workernames = { 'w1' }, factory = bbm.factory{ bbm.steps.shell{ command = {"true"} } } },
    bbm.builder{ name = "b2", workernames = { 'w1', 'w2' }, factory = bbm.factory{ bbm.steps.shell{ command = {"true"} } } }
  },
  change_source = { bbm.changes.pb{ user = "u", passwd = "p" } },
}
