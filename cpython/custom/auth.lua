--[[
custom/auth.py: who may do what on the web UI.

set_up_authorization(settings) returns www.auth and www.authz: with do_auth, a GitHub
login (the OAuth app github_auth_id / github_auth_secret; the teams of the python
organization give the roles) and upstream's rules; without, everyone is anonymous and
every action is allowed ("WARNING: Web UI is completely open").
]]

local bbm = require "bbm"

local M = {}

function M.set_up_authorization(settings)
    if not settings:bool("do_auth") then
        io.stderr:write("WARNING: Web UI is completely open\n") -- upstream's log.err
        -- Completely open
        return bbm.www.no_auth {}, bbm.www.authz {}
    end
    local auth = bbm.www.github_auth {
        clientId = settings:str("github_auth_id"),
        clientSecret = settings:str("github_auth_secret"),
        apiVersion = 4,
        getTeamsMembership = true,
    }
    local authz = bbm.www.authz {
        allowRules = {
            -- Admins can do anything.
            bbm.www.any_endpoint_matcher { role = "admins", defaultDeny = false },
            -- Allow authors to stop, force or rebuild their own builds,
            -- allow core devs to stop, force or rebuild any build.
            bbm.www.stop_build_endpoint_matcher { role = "owner", defaultDeny = false },
            bbm.www.stop_build_endpoint_matcher { role = "buildbot-owners", defaultDeny = false },
            bbm.www.stop_build_endpoint_matcher { role = "python-triage", defaultDeny = false },
            bbm.www.stop_build_endpoint_matcher { role = "python-core" },
            bbm.www.rebuild_build_endpoint_matcher { role = "owner", defaultDeny = false },
            bbm.www.rebuild_build_endpoint_matcher { role = "python-triage", defaultDeny = false },
            bbm.www.rebuild_build_endpoint_matcher { role = "buildbot-owners", defaultDeny = false },
            bbm.www.rebuild_build_endpoint_matcher { role = "python-core" },
            bbm.www.force_build_endpoint_matcher { role = "owner", defaultDeny = false },
            bbm.www.force_build_endpoint_matcher { role = "python-triage", defaultDeny = false },
            bbm.www.force_build_endpoint_matcher { role = "python-core" },
            -- Allow release managers to enable/disable schedulers.
            bbm.www.enable_scheduler_endpoint_matcher { role = "python-release-managers" },
            -- Future-proof control endpoints.
            bbm.www.any_control_endpoint_matcher { role = "admins" },
        },
        roleMatchers = {
            bbm.www.roles_from_groups { groupPrefix = "python/" },
            bbm.www.roles_from_owner { role = "owner" },
            bbm.www.roles_from_username {
                roles = { "admins" },
                usernames = { "zware", "vstinner", "bitdancer", "pitrou", "pablogsal" },
            },
        },
    }
    return auth, authz
end

return M
