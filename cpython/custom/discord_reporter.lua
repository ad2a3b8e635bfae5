--[[ custom/discord_reporter.py: DiscordReporter, a message to a Discord webhook for the
    same builds as GitHubPullRequestReporter (a failing stable build with one change whose
    commit message names an issue).

    Upstream subclasses HttpStatusPush; here it is bbm.reporters.http_status_push with a
    `failing` generator and the message as a MessageFormatterFunction giving upstream's
    JSON payload.  bbmaster adds ?wait=true, trims a content past Discord's 2,000
    characters and retries what Discord does not take (docs/internals/reporters.md).
    The failing tests come from the logs' content (want_logs_content, as upstream's
    getDetailsForBuild(..., want_logs_content=True)), read by custom/testsuite_utils.lua. ]]
local bbm = require "bbm"
local builders = require "custom.builders"
local pr_reporter = require "custom.pr_reporter"
local testsuite_utils = require "custom.testsuite_utils"

local MESSAGE = [[
:warning: **Buildbot failure** :warning:

The buildbot **{buildername}** ({tier}) has failed when building commit [{sha12}](https://github.com/python/cpython/commit/{sha}).

[Jump to the build page.]({build_url})
]]

local function payload(ctx)
    local change = pr_reporter.single_change_issue(ctx)
    if change == nil then
        return nil
    end
    local build = ctx.build
    local logs = testsuite_utils.get_logs_and_tracebacks_from_build(build)
    local message = pr_reporter.format(MESSAGE, {
        buildername = build.builder.name,
        tier = builders.get_tier_from_tags(build.builder.tags),
        build_url = build.url,
        sha = change.revision,
        sha12 = change.revision:sub(1, 12),
    })
    local failed_test_text = logs:format_failing_tests()
    if failed_test_text:match("%S") then
        message = message .. ("\n```\n%s\n```\n"):format(failed_test_text)
    end
    -- upstream's "embeds": [] is left out: an empty Lua table is a JSON object
    return { content = message }
end

--[[ DiscordReporter(webhook, { builders = }) ]]
local function DiscordReporter(webhook, args)
    return bbm.reporters.http_status_push {
        serverUrl = webhook,
        name = "DiscordReporter",
        generators = {
            bbm.reporters.build_status_generator {
                mode = "failing",
                builders = args.builders,
                message_formatter = bbm.reporters.message_formatter_function {
                    template_type = "json",
                    want_logs_content = true,
                    ["function"] = payload,
                },
            },
        },
    }
end

return {
    MESSAGE = MESSAGE,
    payload = payload,
    DiscordReporter = DiscordReporter,
}
