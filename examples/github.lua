-- A project on GitHub: pushes to main build on every builder, a pull request is tested
-- when a writer adds a label or comments "!buildbot REGEX", and a nightly build runs the
-- slow tests.  Secrets come from settings.yaml beside this file (settings.yaml.example
-- shows its shape); check it with `bbmaster checkconfig DIR`.
local bbm = require "bbm"
local settings = bbm.yaml.load("settings.yaml")

local names = {}
for name in pairs(settings.workers) do
    names[#names + 1] = name
end
table.sort(names)
local workers = {}
for _, name in ipairs(names) do
    workers[#workers + 1] = bbm.worker(name, settings.workers[name], { max_builds = 1 })
end

local function factory(test_target)
    return bbm.factory{
        bbm.steps.git{ repourl = settings.repo, mode = "full", method = "fresh" },
        bbm.steps.configure{ command = { "./configure", "--with-pydebug" } },
        bbm.steps.compile{ command = { "make", "-j4" } },
        bbm.steps.test{ command = { "make", test_target }, timeout = 3600 },
    }
end

local builders = {
    bbm.builder{ name = "debian 3.x", workernames = names, tags = { "3.x", "stable" },
                 factory = factory("test") },
    bbm.builder{ name = "debian slow 3.x", workernames = names, tags = { "3.x", "unstable" },
                 factory = factory("slowtest") },
}

return {
    title = "Example on GitHub",
    titleURL = settings.project_url,
    buildbotURL = settings.buildbot_url,
    protocols = { pb = { port = settings.worker_port } },
    db_url = settings.db_url,
    workers = workers,
    builders = builders,
    schedulers = {
        bbm.schedulers.single_branch{
            name = "main",
            change_filter = bbm.change_filter{ branch = "main" },
            treeStableTimer = 60,
            builderNames = { "debian 3.x" },
        },
        bbm.schedulers.pull_request{
            name = "pull requests",
            builderNames = { "debian 3.x", "debian slow 3.x" },
            stableBuilderNames = { "debian 3.x" },
        },
        bbm.schedulers.nightly{
            name = "nightly",
            branch = "main",
            hour = 3,
            minute = 0,
            builderNames = { "debian slow 3.x" },
        },
        bbm.schedulers.force{ name = "force", builderNames = { "debian 3.x", "debian slow 3.x" } },
    },
    www = {
        port = settings.web_port,
        change_hook_dialects = {
            github = {
                secret = settings.github.webhook_secret,
                strict = true,
                token = settings.github.token,
                pull_request_testing = {
                    labels = { [":hammer: test-with-buildbots"] = ".*" },
                    command = "!buildbot",
                },
            },
        },
    },
}
