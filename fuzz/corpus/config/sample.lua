-- bbmaster configuration: this file returns a table, as master.cfg fills
-- BuildmasterConfig.  The bbm module gives Buildbot's constructors with
-- Buildbot's parameter names.  Check it with `bbmaster checkconfig`.
local bbm = require "bbm"

-- WORKERS: each needs a name and a password; keep real passwords in a
-- settings file: local settings = bbm.yaml.load("settings.yaml")
local workers = {
    bbm.worker("example-worker", "pass", { max_builds = 1 }),
}

-- BUILDERS: what to run, on which workers.
local builders = {
    bbm.builder{
        name = "runtests",
        workernames = { "example-worker" },
        factory = bbm.factory{
            bbm.steps.shell{ name = "hello", command = { "echo", "hello from bbmaster" } },
            bbm.steps.shell{ name = "system", command = "uname -a", haltOnFailure = true },
        },
    },
}

-- SCHEDULERS: when to build.  The force scheduler gives a button in the web UI.
local schedulers = {
    bbm.schedulers.single_branch{
        name = "all",
        change_filter = bbm.change_filter{ branch = "main" },
        treeStableTimer = 60,
        builderNames = { "runtests" },
    },
    bbm.schedulers.force{ name = "force", builderNames = { "runtests" } },
}

return {
    title = "Example",
    titleURL = "https://example.org/",
    buildbotURL = "http://localhost:8010/",
    -- Workers connect here (buildbot-worker create-worker DIR localhost:9989 NAME PASS).
    protocols = { pb = { port = 9989 } },
    www = { port = 8010 },
    db_url = "sqlite:///state.sqlite",
    workers = workers,
    builders = builders,
    schedulers = schedulers,
    change_source = {
        bbm.changes.git_poller{
            repourl = "https://github.com/buildbot/hello-world.git",
            branches = { "main" },
            pollInterval = 300,
        },
    },
}
