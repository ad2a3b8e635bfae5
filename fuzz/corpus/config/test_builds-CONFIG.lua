local bbm = require "bbm"
local outcome_cmd = bbm.interpolate(
    "echo 'starting outcome=%(prop:outcome)s'; " ..
    "case '%(prop:outcome)s' in " ..
    "  warnings) printf 'foo.c:1: %%s: unused variable x\\nfoo.c:2: %%s: implicit decl\\n' warning warning ;; " ..
    "  failure) echo 'error: something broke' >&2; exit 2 ;; " ..
    "  sleep) sleep 300 ;; " ..
    "esac; echo done")
return {
  title = "builds",
  properties = { everywhere = "yes" },
  protocols = { pb = { port = 1234 } },
  www = { port = 1234 },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass", { max_builds = 1234 }) },
  builders = {
    bbm.builder{ name = "alpha", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "hello", command = { "sh", "-c",
        "echo hello stdout; echo hello stderr >&2; printf 'caf\\303\\251 \\342\\234\\223 no-newline-at-end'" } },
      bbm.steps.set_property_from_command{ name = "get-uname", command = { "uname", "-s" },
        property = "kernel" },
      bbm.steps.compile{ name = "compile", command = { "sh", "-c", outcome_cmd },
        warningPattern = "^.*warning: .*$", warnOnWarnings = true },
      bbm.steps.shell{ name = "skipped-step", command = { "true" }, doStepIf = false },
      bbm.steps.shell{ name = "hidden-step", command = { "true" },
        hideStepIf = function(results, props) return results == 0 end },
      bbm.steps.shell{ name = "always", alwaysRun = true, command = { "echo",
        bbm.interpolate("%(prop:buildername)s #%(prop:buildnumber)s %(prop:nosuch:-none)s") } },
    } },
    bbm.builder{ name = "serial", workernames = { "w1" }, collapseRequests = false,
      factory = bbm.factory{
      bbm.steps.shell{ name = "exclusive", command =
        "mkdir /tmp/x || exit 1; sleep 0.2; rmdir /tmp/x" },
    } },
    bbm.builder{ name = "collapsing", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "parity", workernames = { "w1" },
      collapseRequests = function(master, builder, new, old)
        return master.title == "builds" and builder.name == "parity"
          and new.buildername == "parity" and new.buildrequestid > old.buildrequestid
          and new.buildsetid % 2 == old.buildsetid % 2
      end,
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "gated", workernames = { "w1" },
      properties = { from_builder = "yes" },
      canStartBuild = function(builder, wfb, request)
        return builder.name == "gated" and wfb.worker.workername == "w1"
          and io.open("/tmp/x.open") ~= nil
      end,
      factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force",
      builderNames = { "alpha", "serial", "collapsing", "gated", "parity" },
      properties = { bbm.params.choice_string{ name = "outcome", label = "Outcome",
        choices = { "success", "warnings", "failure", "sleep" }, default = "success" } } },
  },
}
