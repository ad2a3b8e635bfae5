--[[ custom/email_formatter.py: the body of the failure mail (MailNotifier's
    BuildSetStatusGenerator in master.lua), upstream's MAIL_TEMPLATE in bbmaster's template
    language (docs/internals/reporters.md, "Templates"): `build.properties.reason` for
    build['properties'].get('reason', ...)[0], the blamelist joined with ", " by itself.

    Upstream's CustomMessageFormatter adds build['final_log'] and build['tracebacks'], read
    by custom/testsuite_utils.py from the content of the test step's log
    (want_logs_content).  bbmaster gives templates no log contents yet, so the three places
    they fill (the test summary, the tracebacks, the failing tests) are left empty: the mail
    is upstream's for a build whose log has none of them (README.md, "Not ported yet"). ]]
local bbm = require "bbm"

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

{# build['final_log'].test_summary(): needs the test log's content #}


Captured traceback
==================

{# "\n\n".join(build['tracebacks']): needs the test log's content #}


Test report
===========

{# build['final_log'].format_failing_tests(): needs the test log's content #}



Sincerely,
 -The Buildbot
]]

M.TESTS_STEP = "test"

-- want_logs_content = true upstream: refused by bbmaster (not implemented yet), left out
M.MESSAGE_FORMATTER = bbm.reporters.message_formatter {
    template = M.MAIL_TEMPLATE,
    template_type = "plain",
    want_logs = true,
    want_properties = true,
    want_steps = true,
}

return M
