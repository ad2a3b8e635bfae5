--[[
buildbot.python.org's configuration (python/buildmaster-config, master/master.cfg) for
bbmaster.  It returns the configuration table, as master.cfg fills BuildmasterConfig;
the modules it requires are in custom/ beside it, one per module of the original.
What the original does that bbmaster cannot do yet is listed in README.md, "Not ported
yet".
]]

local bbm = require "bbm"

local Settings = require "custom.settings"
local workers = require "custom.workers"

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

-- AUTH, AUTHZ = set_up_authorization(settings): not ported yet

local c = {}

c.db_url = settings:str("db_url")

-- c["configurators"] (the janitor, logHorizon 180 days) and c["caches"]: not ported yet

-- workers are set up in workers.lua
c.workers = {}
for _, w in ipairs(WORKERS) do
    c.workers[#c.workers + 1] = w.bb_worker
end

c.builders = {}
c.schedulers = {}

-- 'workerPortnum' defines the TCP port to listen on. This must match the value
-- configured into the buildworkers (with their --master option)
c.protocols = { pb = { port = ("tcp:%d"):format(settings:int("worker_port")) } }

-- 'www' is the configuration for everything accessible via
-- http[s]://buildbot.python.org/all/
c.www = {
    port = ("tcp:%d"):format(settings:int("web_port")),
}

-- the 'title' string will be used to describe the project that this
-- buildbot is working on.
c.title = "Python"
c.titleURL = "https://www.python.org/"

-- the 'buildbotURL' string should point to the location where the buildbot's
-- internal web server is visible.
c.buildbotURL = settings:str("buildbot_url")

-- disable sending of 'buildbotNetUsageData' for now, to improve startup time
c.buildbotNetUsageData = false

c.change_source = {}

return c
