--[[
custom/schedulers.py: GitHubPrScheduler, the scheduler of the pull-request builders.

The original is an AnyBranchScheduler whose addBuildsetForChanges keeps, of its
builderNames, those the change's builderfilter property matches (a case-insensitive
search), and only stable ones unless the change came from a "!buildbot" comment
(event issue_comment).  That is bbmaster's bbm.schedulers.pull_request, given the
stable builders as stableBuilderNames.
]]

local bbm = require "bbm"

local M = {}

-- GitHubPrScheduler { name =, change_filter =, treeStableTimer =, builderNames =,
-- stable_builder_names = }
function M.GitHubPrScheduler(o)
    return bbm.schedulers.pull_request {
        name = o.name,
        change_filter = o.change_filter,
        treeStableTimer = o.treeStableTimer,
        builderNames = o.builderNames,
        stableBuilderNames = o.stable_builder_names,
    }
end

return M
