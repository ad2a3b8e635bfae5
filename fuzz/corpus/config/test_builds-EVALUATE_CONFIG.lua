local bbm = require "bbm"
local R = bbm.results
local function cpython_test(command)
  return bbm.steps.test{ command = command, descriptionSuffix = { "on", "3.x" },
    warningPattern = ".*(?:Warning -- |FAIL: )", warnOnWarnings = true,
    decodeRC = { [0] = R.SUCCESS, [5] = R.WARNINGS },
    evaluateCommand = function(step, cmd)
      if cmd.didFail then
        step:setProperty("test_failed_to_build", true)
        step:setProperty("want_xml_upload", true)
      elseif cmd.results == R.WARNINGS then
        local tags = {}
        for _, t in ipairs(step.builder.tags) do tags[t] = true end
        if tags["stable"] and tags["3.x"] then step:setProperty("want_xml_upload", true) end
      end
      return cmd.results
    end }
end
local upload = bbm.steps.shell{ name = "upload", command = { "true" },
  doStepIf = function(props) return props:getProperty("want_xml_upload") == true end }
return {
  protocols = { pb = { port = 1234 } },
  www = { port = 1234 },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "stable", workernames = { "w1" }, tags = { "stable", "3.x" },
      factory = bbm.factory{
        cpython_test{ "sh", "-c", "echo 'Warning -- leak'; echo ok; exit 5" }, upload,
        bbm.steps.compile{ name = "many", command = { "sh", "-c", "echo w: a; echo w: b" },
          warningPattern = "^w: ", maxWarnCount = 1, updateBuildSummaryPolicy = false } } },
    bbm.builder{ name = "unstable", workernames = { "w1" }, tags = { "3.x" },
      factory = bbm.factory{ cpython_test{ "sh", "-c", "echo 'FAIL: x'; exit 5" }, upload,
        bbm.steps.compile{ name = "fewer", command = { "sh", "-c", "echo w: a" },
          warningPattern = "^w: ", maxWarnCount = 1 } } },
    bbm.builder{ name = "broken", workernames = { "w1" }, tags = { "stable", "3.x" },
      factory = bbm.factory{ cpython_test{ "sh", "-c", "exit 2" }, upload } },
  },
  schedulers = { bbm.schedulers.force{ name = "force",
    builderNames = { "stable", "unstable", "broken" } } },
}
