--[[ custom/email_formatter.py: the body of the failure mail (MailNotifier's
    BuildSetStatusGenerator in master.lua), upstream's MAIL_TEMPLATE in bbmaster's template
    language (docs/internals/reporters.md, "Templates"): `build.properties.reason` for
    build['properties'].get('reason', ...)[0], the blamelist joined with ", " by itself.

    Upstream's CustomMessageFormatter overrides buildAdditionalContext to add
    build['final_log'] and build['tracebacks'], read by custom/testsuite_utils.py from the
    content of the test step's log (want_logs_content); here the formatter's
    build_additional_context does the same with custom/testsuite_utils.lua.  A template calls
    no functions, so `final_log` holds the values of the two methods the template calls, and
    `tracebacks` the tracebacks already joined by a blank line ("\n\n".join(...)). ]]
local bbm = require "bbm"
local testsuite_utils = require "custom.testsuite_utils"

local M = {}

-- As upstream's """\ string: no newline first; Jinja drops the last one.
M.MAIL_TEMPLATE = [[
The Buildbot has detected a {{ status_detected }} on builder {{ buildername }} while building {{ projects }}.
Full details are available at:
    {{ build_url }}

Buildbot URL: {{ buildbot_url }}

Worker for this Build: {{ workername }}

Build Reason: {{ build.properties.reason or "<unknown>" }}
Blamelist: {{ blamelist }}

{{ summary }}


Summary of the results of the build (if available):
===================================================

{{ build.final_log.test_summary }}


Captured traceback
==================

{{ build.tracebacks }}


Test report
===========

{{ build.final_log.format_failing_tests }}



Sincerely,
 -The Buildbot
]]

M.TESTS_STEP = "test"

-- CustomMessageFormatter.buildAdditionalContext (ctx.update(self.context): no `ctx` here)
local function build_additional_context(ctx)
    local build = ctx.build

    local logs, tracebacks = testsuite_utils.get_logs_and_tracebacks_from_build(build)

    ctx.build.tracebacks = table.concat(tracebacks, "\n\n")
    ctx.build.final_log = {
        test_summary = logs:test_summary(),
        format_failing_tests = logs:format_failing_tests(),
    }
end

M.MESSAGE_FORMATTER = bbm.reporters.message_formatter {
    template = M.MAIL_TEMPLATE,
    template_type = "plain",
    want_logs = true,
    want_logs_content = true,
    want_properties = true,
    want_steps = true,
    build_additional_context = build_additional_context,
}

return M
