local bbm = require "bbm"
local f = bbm.factory{ bbm.steps.shell{ command = {"true"} } }
return {
  title = "fixture",
  protocols = { pb = { port = 1234 } },
  www = { port = 1234 },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "pw"), bbm.worker("w2-offline", "pw") },
  builders = {
    bbm.builder{ name = "alpha", workernames = { "w1" }, factory = f },
    bbm.builder{ name = "delta", workernames = { "w1" }, factory = f },
    bbm.builder{ name = "beta", workernames = { "w1", "w2-offline" }, factory = f },
    bbm.builder{ name = "gamma", workernames = { "w1" }, factory = f },
  },
  schedulers = {
    bbm.schedulers.force{
      name = "force", builderNames = { "alpha", "beta", "gamma" },
      buttonName = "Start build", label = "Force a build",
      reason = bbm.params.string{ name = "reason", label = "Reason:", default = "forced", size = 40 },
      properties = {
        bbm.params.choice_string{ name = "outcome", label = "Outcome",
                                  choices = { "success", "warnings", "failure", "sleep" },
                                  default = "success" },
      },
    },
  },
}
