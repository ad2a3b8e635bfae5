--[[
custom/pr_testing.py: buildbot.python.org tests a pull request when a member of the
repository adds a label to it, or writes a comment "!buildbot REGEX".

The original subclasses Buildbot's GitHubEventHandler (CustomGitHubEventHandler); in
bbmaster that flow is built into the GitHub dialect, set up by `pull_request_testing`
(what this module's pull_request_testing() returns, for
www.change_hook_dialects.github in master.lua): the labels and the regex of builders
each one tests, the command, and the comments posted back.  The changes it makes carry
the properties should_test_pr, event, basename and builderfilter, as the original's do,
and the pull_request scheduler (custom/schedulers.lua) picks its builders from them.
]]

local TESTING_LABEL = ":hammer: test-with-buildbots"
local REFLEAK_TESTING_LABEL = ":hammer: test-with-refleak-buildbots"

local GITHUB_PROPERTIES_WHITELIST = { "*.labels" }

local BUILD_MESSAGE_HEADER = [[
:robot: New build scheduled with the buildbot fleet by @{user} for commit {commit} :robot:

Results will be shown at:

https://buildbot.python.org/all/#/grid?branch=refs%2Fpull%2F{pr_number}%2Fmerge

]]

local BUILD_SCHEDULED_MESSAGE_TEMPLATE = BUILD_MESSAGE_HEADER .. [[
If you want to schedule another build, you need to add the <kbd>{label}</kbd> label again.
]]

local BUILD_COMMAND_SCHEDULED_MESSAGE_TEMPLATE = BUILD_MESSAGE_HEADER .. [[
The command will test the builders whose names match following regular expression: `{filter}`

The builders matched are:
{builders}
]]

-- BUILDBOT_COMMAND = re.compile(r"!buildbot (.+)")
local BUILDBOT_COMMAND = "!buildbot"

local function should_pr_be_tested(change)
    local props = change.properties or {}
    return props.should_test_pr or false
end

-- www.change_hook_dialects.github.pull_request_testing
local function pull_request_testing()
    return {
        labels = {
            [TESTING_LABEL] = ".*",
            [REFLEAK_TESTING_LABEL] = ".*Refleaks.*",
        },
        command = BUILDBOT_COMMAND,
        comments = {
            label = BUILD_SCHEDULED_MESSAGE_TEMPLATE,
            command = BUILD_COMMAND_SCHEDULED_MESSAGE_TEMPLATE,
            no_permission = "You don't have write permissions to trigger a build",
            no_match = "The regex '{filter}' did not match any buildbot builder. "
                .. "Is the requested builder in the list of stable builders?",
        },
    }
end

return {
    TESTING_LABEL = TESTING_LABEL,
    REFLEAK_TESTING_LABEL = REFLEAK_TESTING_LABEL,
    GITHUB_PROPERTIES_WHITELIST = GITHUB_PROPERTIES_WHITELIST,
    BUILDBOT_COMMAND = BUILDBOT_COMMAND,
    should_pr_be_tested = should_pr_be_tested,
    pull_request_testing = pull_request_testing,
}
