-- The demo master of `make run`: one worker, one builder that checks out this
-- repository (from its local path) with the git step, builds bbmaster and runs
-- its unit tests.  @REPO@ is replaced by the repository's path, @SHARED@ by
-- that of the fixtures the unit tests read.
local bbm = require "bbm"

return {
    title = "bbmaster demo",
    buildbotURL = "http://localhost:8010/",
    protocols = { pb = { port = 9989 } },
    -- the web UI on this machine only (as Twisted's strports: tcp:PORT:interface=ADDR)
    www = { port = "tcp:8010:interface=127.0.0.1" },
    db_url = "sqlite:///state.sqlite",
    workers = { bbm.worker("example-worker", "pass", { max_builds = 1 }) },
    builders = {
        bbm.builder{
            name = "bbmaster",
            workernames = { "example-worker" },
            factory = bbm.factory{
                bbm.steps.git{ repourl = "@REPO@", mode = "incremental" },
                bbm.steps.compile{ command = { "sh", "-c",
                    "meson setup build -Dshared_dir=@SHARED@ && ninja -C build" } },
                bbm.steps.test{ command = { "scripts/with-pg.sh", "meson", "test", "-C", "build",
                    "--suite", "unit", "--print-errorlogs" }, timeout = 1800 },
            },
        },
    },
    schedulers = {
        bbm.schedulers.force{ name = "force", builderNames = { "bbmaster" } },
    },
}
