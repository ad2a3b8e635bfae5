--[[
buildbot.python.org's configuration (python/buildmaster-config, master/master.cfg) for
bbmaster.  It returns the configuration table, as master.cfg fills BuildmasterConfig;
the modules it requires are in custom/ beside it, one per module of the original.
What the original does that bbmaster cannot do yet is listed in README.md, "Not ported
yet".
]]

local bbm = require "bbm"
local custom = require "custom"
local has, concat = custom.has, custom.concat

local Settings = require "custom.settings"
local workers = require "custom.workers"
local steps = require "custom.steps"
local builders = require "custom.builders"
local schedulers = require "custom.schedulers"
local pr_testing = require "custom.pr_testing"
local pr_reporter = require "custom.pr_reporter"
local discord_reporter = require "custom.discord_reporter"
local email_formatter = require "custom.email_formatter"
local auth = require "custom.auth"
local BRANCHES = (require "custom.branches").BRANCHES

local GitHub = steps.GitHub
local GitHubPrScheduler = schedulers.GitHubPrScheduler
local STABLE = builders.STABLE

local settings_path = "/etc/buildbot/settings.yaml"
settings_path = os.getenv("PYBUILDBOT_SETTINGS_PATH") or settings_path

local settings
do
    local f = io.open(settings_path, "r")
    if f ~= nil then
        f:close()
        settings = Settings.from_file(settings_path)
        -- set_up_sentry(): not ported yet (README.md, "Not ported yet")
    else
        print(("WARNING: settings file could not be found at %s"):format(settings_path))
        settings = Settings.new({}, {})
    end
end

local WORKERS = workers.get_workers(settings)
local workers_by_name = {}
for _, w in ipairs(WORKERS) do
    workers_by_name[w.name] = w
end

local AUTH, AUTHZ = auth.set_up_authorization(settings)

local c = {}

c.db_url = settings:str("db_url")

-- configure a janitor which will delete all logs older than 6 months,
-- and will run on sundays at noon
c.configurators = {
    bbm.configurators.janitor{
        logHorizon = 180 * 86400, -- timedelta(days=180)
        hour = 12,
        dayOfWeek = 6,
    },
}

-- c["caches"]: not ported (bbmaster keeps no such caches)

-- workers are set up in workers.lua
c.workers = {}
for _, w in ipairs(WORKERS) do
    c.workers[#c.workers + 1] = w.bb_worker
end

-- git_branches used to be here; moved to branches.lua

c.builders = {}
c.schedulers = {}

local function startswith(s, prefix)
    return s:sub(1, #prefix) == prefix
end

local function endswith(s, suffix)
    return suffix == "" or s:sub(-#suffix) == suffix
end

local function is_important_file(filename)
    local unimportant_prefixes = {
        ".azure-pipelines/",
        -- (sic: no comma after ".devcontainer/" upstream, so the two are one prefix)
        ".devcontainer/" .. ".github/",
        ".well-known/",
        "Doc/",
        "InternalDocs/",
        "Misc/",
        ".coveragerc",
        ".editorconfig",
        ".gitattributes",
        ".gitignore",
        ".mailmap",
        "LICENSE",
    }
    local unimportant_suffixes = {
        ".md",
        ".rst",
        ".yml",
        ".yaml",
        "README",
        "ruff.toml",
    }
    local stripped = filename:gsub("^[\\/]+", "")
    for _, prefix in ipairs(unimportant_prefixes) do
        if startswith(stripped, prefix) then
            return false
        end
    end
    for _, suffix in ipairs(unimportant_suffixes) do
        if endswith(filename, suffix) then
            return false
        end
    end
    return true
end

local function is_important_change(change)
    for _, filename in ipairs(change.files or {}) do
        if is_important_file(filename) then
            return true
        end
    end
    return false
end

-- Builders

local github_status_builders = {}
local release_status_builders = {}
local mail_status_builders = {}

local stable_pull_request_builders = {}
local all_pull_request_builders = {}



-- the git step's defaults, under the worker's git_options (workers.NONE removes one)
local function source_args(branch, worker)
    local args = {
        repourl = settings:str("git_url"),
        -- defaults
        timeout = 3600,
        -- "git clean -fdx": remove all files which are not tracked
        -- by Git, ignoring the .gitignore rules (ex: remove also
        -- ".o" files).
        mode = "full",
        method = "fresh",
        -- Partial (blobless) clone: only fetch commit and tree
        -- objects, blobs are fetched on demand during checkout.
        filters = { "blob:none" },
        -- If fetch fails, wipe and re-clone instead of failing the
        -- build.
        clobberOnFailure = true,
    }
    if not branch.is_pr then
        args.branch = branch.git_branch
    end
    -- worker-specific config, overriding defaults
    for k, v in pairs(worker.git_options) do
        if v == workers.NONE then
            args[k] = nil
        else
            args[k] = v
        end
    end
    return args
end

for _, branch in BRANCHES:iter() do
    local buildernames = {}
    local refleakbuildernames = {}
    local stable_builder_names = {}
    for _, builder_def in ipairs(builders.get_builder_defs(settings)) do
        local worker = workers_by_name[builder_def.worker_name]
        if not builder_def.branches:contains(branch) or not worker.branches:contains(branch) then
            goto continue
        end

        local buildername = builder_def.name .. " " .. branch.name

        local source = GitHub(source_args(branch, worker))

        local f = builder_def.factory:new(source, {
            branch = branch,
            worker = worker,
        })
        if not f.branches:contains(branch) then
            goto continue
        end

        local tags = concat({ branch.builder_tag }, builder_def.tags, f.tags)

        if has(tags, "nogil") and branch.gil_only then
            goto continue
        end

        if has(tags, "refleak") then
            refleakbuildernames[#refleakbuildernames + 1] = buildername
        else
            buildernames[#buildernames + 1] = buildername
        end

        if has(builder_def.tags, STABLE) then
            stable_builder_names[#stable_builder_names + 1] = buildername

            -- disable notifications for unstable & PR builders
            -- (all these lists are the same now, but we might need to
            -- diverge again later.)
            if not branch.is_pr then
                mail_status_builders[#mail_status_builders + 1] = buildername
                github_status_builders[#github_status_builders + 1] = buildername
                release_status_builders[#release_status_builders + 1] = buildername
            end
        end

        c.builders[#c.builders + 1] = bbm.builder {
            name = buildername,
            workernames = { worker.name },
            builddir = ("%s.%s%s"):format(branch.builddir_name, worker.name, f.buildersuffix),
            factory = f.factory,
            tags = tags,
            canStartBuild = worker.downtime,
        }

        ::continue::
    end

    if branch.is_pr then
        all_pull_request_builders = concat(refleakbuildernames, buildernames)
        stable_pull_request_builders = stable_builder_names
        c.schedulers[#c.schedulers + 1] = GitHubPrScheduler {
            name = "pull-request-scheduler",
            change_filter = bbm.change_filter { filter_fn = pr_testing.should_pr_be_tested },
            treeStableTimer = 30, -- seconds
            builderNames = all_pull_request_builders,
            stable_builder_names = stable_builder_names,
        }
    else
        c.schedulers[#c.schedulers + 1] = bbm.schedulers.single_branch {
            name = branch.name,
            change_filter = bbm.change_filter { branch = branch.git_branch },
            treeStableTimer = 30, -- seconds
            builderNames = buildernames,
            fileIsImportant = is_important_change,
        }
        if #refleakbuildernames > 0 then
            c.schedulers[#c.schedulers + 1] = bbm.schedulers.single_branch {
                name = branch.name .. "-refleak",
                change_filter = bbm.change_filter { branch = branch.git_branch },
                -- Wait this many seconds for no commits before starting a build
                -- NB: During extremely busy times, this can cause the builders
                -- to never actually fire.  The current expectation is that it
                -- won't ever actually be that busy, but we need to keep an eye
                -- on that.
                treeStableTimer = 1 * 60 * 60, -- h * m * s
                builderNames = refleakbuildernames,
                fileIsImportant = is_important_change,
            }
        end
    end
end

-- Make sure all names are unique
do
    local seen = {}
    for _, s in ipairs(c.schedulers) do
        assert(not seen[s.name], "two schedulers are named " .. s.name)
        seen[s.name] = true
    end
end

-- Make sure the lists got filled up
assert(#github_status_builders > 0)
assert(#release_status_builders > 0)
assert(#mail_status_builders > 0)
assert(#stable_pull_request_builders > 0)
assert(#all_pull_request_builders > 0)

-- Set up aditional schedulers

local all_builder_names = {}
for i, builder in ipairs(c.builders) do
    all_builder_names[i] = builder.name
end

c.schedulers[#c.schedulers + 1] = bbm.schedulers.force {
    name = "force",
    builderNames = all_builder_names,
    reason = bbm.params.fixed { name = "reason", label = "reason", default = "" },
    codebases = {
        bbm.params.codebase("", {
            label = "CPython repository",
            -- will generate nothing in the form, but branch, revision, repository,
            -- and project are needed by buildbot scheduling system so we
            -- need to pass a value ("")
            branch = bbm.params.fixed { name = "branch", default = "" },
            revision = bbm.params.fixed { name = "revision", default = "" },
            repository = bbm.params.fixed { name = "repository", default = "" },
            project = bbm.params.fixed { name = "project", default = "" },
        }),
    },
}

-- 'workerPortnum' defines the TCP port to listen on. This must match the value
-- configured into the buildworkers (with their --master option)
c.protocols = { pb = { port = ("tcp:%d"):format(settings:int("worker_port")) } }

-- 'www' is the configuration for everything accessible via
-- http[s]://buildbot.python.org/all/
c.www = {
    port = ("tcp:%d"):format(settings:int("web_port")),
    auth = AUTH,
    authz = AUTHZ,
    -- plugins (waterfall, console and grid views), avatar_methods, ws_ping_interval:
    -- not ported yet (README.md, "Not ported yet")
    change_hook_dialects = {
        github = {
            -- "class": CustomGitHubEventHandler, in bbmaster the dialect's own
            -- pull-request testing (custom/pr_testing.lua)
            secret = settings:str("github_change_hook_secret"),
            strict = true,
            token = settings:get("github_status_token", nil),
            pull_request_testing = pr_testing.pull_request_testing(),
        },
    },
    -- the release dashboard (upstream's wsgi_dashboards plugin, custom/release_dashboard.py)
    -- is built into bbmaster at /release_status: it reads the release cycle from
    -- peps.python.org and the stable builders' JUnit files from test_result_dir
    release_cycle = "https://peps.python.org/api/release-cycle.json",
    release_test_results = steps.TEST_RESULTS_DIR,
}

-- steps.UploadTestResults writes the JUnit files there, outside the master's directory
c.uploadRoots = { steps.TEST_RESULTS_DIR }

-- the 'title' string will be used to describe the project that this
-- buildbot is working on.
c.title = "Python"
c.titleURL = "https://www.python.org/"

-- the 'buildbotURL' string should point to the location where the buildbot's
-- internal web server is visible.
c.buildbotURL = settings:str("buildbot_url")

-- disable sending of 'buildbotNetUsageData' for now, to improve startup time
c.buildbotNetUsageData = false

local _ = { stable_pull_request_builders }
c.services = {}
if settings:bool("send_mail") then
    local status_email = settings:str("status_email")
    c.services[#c.services + 1] = bbm.reporters.mail_notifier {
        generators = {
            bbm.reporters.build_set_status_generator {
                mode = "problem",
                builders = mail_status_builders,
                message_formatter = email_formatter.MESSAGE_FORMATTER,
            },
            bbm.reporters.worker_missing_generator { workers = "all" },
        },
        fromaddr = settings:str("from_email"),
        relayhost = settings:str("email_relay_host"),
        extraRecipients = { status_email },
        sendToInterestedUsers = false,
        extraHeaders = { ["Reply-To"] = status_email },
    }
end
local services = {
    bbm.reporters.github_status_push {
        token = settings:str("github_status_token"),
        generators = {
            bbm.reporters.build_start_end_status_generator {
                builders = concat(github_status_builders, all_pull_request_builders),
            },
        },
        verbose = settings:bool("verbosity"),
    },
    pr_reporter.GitHubPullRequestReporter(settings:str("github_status_token"), {
        builders = github_status_builders,
        buildbot_url = c.buildbotURL,
        verbose = settings:bool("verbosity"),
    }),
}
for _, service in ipairs(services) do
    c.services[#c.services + 1] = service
end

-- DiscordReporter: upstream configures it whatever the setting; without a discord_webhook
-- setting its URL is a random string (settings.py's DEFAULTS misspells the key) and every
-- post fails.  bbmaster refuses a serverUrl that is not a URL, so then it is left out.
local discord_webhook = settings:str("discord_webhook")
if discord_webhook:match("^https?://") then
    c.services[#c.services + 1] = discord_reporter.DiscordReporter(discord_webhook, {
        builders = github_status_builders,
    })
end
if settings:bool("irc_notice") then
    local irc_args = {
        host = settings:str("irc_host"),
        nick = settings:str("irc_nick"),
        channels = { { channel = settings:str("irc_channel") } },
        notify_events = settings:get(
            "irc_notify_events",
            -- 'cancelled' is not logged to avoid spaming IRC when
            -- a "pull-request-scheduler" is cancelled
            { "better", "worse", "exception" }
        ),
        useColors = true,
    }
    local password = settings:get("irc_password", nil)
    if password and password ~= "" then
        irc_args.useSASL = true
        irc_args.password = password
    end
    table.insert(c.services, bbm.reporters.irc(irc_args))
end

c.change_source = {}

return c
