--[[ custom/pr_reporter.py: GitHubPullRequestReporter, a comment on the pull request of the
    one change a failing stable build has (its number from "(GH-n)" or "(#n)" in the commit
    message, the first such).

    Upstream subclasses GitHubStatusPush and returns early from sendMessage; here it is
    bbm.reporters.github_comment_push with a `failing` generator on the same builders (the
    same builds: upstream's other events, requests and starts, never comment), `issue`
    doing upstream's filters, and the message as a MessageFormatterFunction.  The failing
    tests, the summary and the tracebacks come from the logs' content (want_logs_content, as
    upstream's getDetailsForBuild(..., want_logs_content=True)), read by
    custom/testsuite_utils.lua. ]]
local bbm = require "bbm"
local builders = require "custom.builders"
local testsuite_utils = require "custom.testsuite_utils"

local PR_MESSAGE = [[
:warning::warning::warning: Buildbot failure :warning::warning::warning:
------------------------------------------------------------------------

Hi! The buildbot **{buildername}** ({tier}) has failed when building commit {sha}.

What do you need to do:

1. Don't panic.
2. Check [the buildbot page in the devguide](https://devguide.python.org/buildbots/) if you don't know what the buildbots are or how they work.
3. Go to the page of the buildbot that failed ({build_url}) and take a look at the build logs.
4. Check if the failure is related to this commit ({sha}) or if it is a false positive.
5. If the failure is related to this commit, please, reflect that on the issue and make a new Pull Request with a fix.

You can take a look at the buildbot page here:

{build_url}

{failed_test_text}

Summary of the results of the build (if available):

{summary_text}

<details>
<summary>Click to see traceback logs</summary>

{tracebacks}

</details>
]]

-- re.search(r"\((?:GH-|#)(\d+)\)", comments, flags=re.IGNORECASE): the first match
local function issue_in(comments)
    for pre, num in comments:gmatch("%(([^%(%)%d]*)(%d+)%)") do
        if pre:lower() == "gh-" or pre == "#" then
            return num
        end
    end
    return nil
end

-- The build's one change and its issue number, or nil (upstream logs why and returns).
local function single_change_issue(ctx)
    local build = ctx.build
    local sourcestamps = build.buildset.sourcestamps
    if not (sourcestamps and sourcestamps[1]) then
        return nil
    end
    if #build.changes ~= 1 then
        return nil
    end
    local change = build.changes[1]
    if not change.comments or change.comments == "" then
        return nil
    end
    local issue = issue_in(change.comments)
    if issue == nil then
        return nil
    end
    return change, issue
end

-- str.format for "{name}" fields
local function format(template, fields)
    return (template:gsub("{([%w_]+)}", function(k) return fields[k] end))
end

local function message(ctx, buildbot_url)
    local change = single_change_issue(ctx)
    if change == nil then
        return nil
    end
    local build = ctx.build
    local logs, tracebacks = testsuite_utils.get_logs_and_tracebacks_from_build(build)
    local prefix = buildbot_url:gsub("/+$", "")
    return format(PR_MESSAGE, {
        buildername = build.builder.name,
        tier = builders.get_tier_from_tags(build.builder.tags),
        build_url = ("%s/#/builders/%d/builds/%d"):format(prefix, build.builder.builderid,
            build.number),
        sha = change.revision,
        tracebacks = ("```python-traceback\n%s\n```"):format(table.concat(tracebacks, "\n\n")),
        summary_text = logs:test_summary(),
        failed_test_text = logs:format_failing_tests(),
    })
end

--[[ GitHubPullRequestReporter(token, { builders =, buildbot_url =, verbose =, baseURL = }):
    baseURL, GitHub's API (https://api.github.com when nil), is for tests ]]
local function GitHubPullRequestReporter(token, args)
    return bbm.reporters.github_comment_push {
        token = token,
        name = "GitHubPullRequestReporter",
        verbose = args.verbose,
        baseURL = args.baseURL,
        issue = function(ctx)
            local _, issue = single_change_issue(ctx)
            return issue
        end,
        generators = {
            bbm.reporters.build_status_generator {
                mode = "failing",
                builders = args.builders,
                message_formatter = bbm.reporters.message_formatter_function {
                    template_type = "plain",
                    want_logs_content = true,
                    ["function"] = function(ctx) return message(ctx, args.buildbot_url) end,
                },
            },
        },
    }
end

return {
    PR_MESSAGE = PR_MESSAGE,
    issue_in = issue_in,
    single_change_issue = single_change_issue,
    format = format,
    GitHubPullRequestReporter = GitHubPullRequestReporter,
}
