--[[ custom/testsuite_utils.py: what the PR and Discord reporters say of a failed build, read
    from the content of the `test` step's log (the failed tests and subtests, the tests
    leaking resources, the test summary) and the tracebacks in it, with bbm.re, the part of
    Python's `re` bbmaster gives configurations.

    A line-by-line port.  Upstream builds Python sets, whose order changes from one process
    to the next; here they keep the order in which the log names things (first seen first),
    so that a message is the same each time, and the block of the last re-run is the last
    one in the log, as upstream's comment means.  Positions are bbm.re's (Lua's: 1-based). ]]
local bbm = require "bbm"
local re = bbm.re

local TESTS_STEP = "test"

local TRACEBACK_REGEX = re.compile(
    [[
     Traceback # Lines containing "Traceback"
     [\s\S]+? # Match greedy any text (preserving ASCII flags).
     (?=^(?:\d|test|\Z|\n|ok)) # Stop matching in lines starting with
                               # a number (log time), "test" or the end
                               # of the string.
    ]],
    re.MULTILINE | re.VERBOSE
)

local LEAKS_REGEX = re.compile([[(test_\w+) leaked \[.*] (.*),.*]], re.MULTILINE)

-- set(items): the items once each, in the order first seen; a tuple (a table) is one item
local function set(items)
    local seen, out = {}, {}
    for _, item in ipairs(items) do
        local key = type(item) == "table" and table.concat(item, "\0") or item
        if not seen[key] then
            seen[key] = true
            out[#out + 1] = item
        end
    end
    return out
end

-- str.splitlines(): Python's line boundaries, no empty string after a final one
local LINE_BREAK = re.compile([=[\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]]=])
local function splitlines(s)
    local lines = LINE_BREAK:split(s)
    if lines[#lines] == "" then
        lines[#lines] = nil
    end
    return lines
end

-- str.lstrip(chars), for chars of letters
local function lstrip(s, chars)
    return (s:gsub("^[" .. chars .. "]+", ""))
end

local Logs = {}
Logs.__index = Logs

function Logs.new(raw_logs)
    return setmetatable({ _logs = raw_logs }, Logs)
end

function Logs:raw_logs()
    return self._logs
end

function Logs:_get_test_results(header)
    local test_regexp = re.compile(
        ([[
             ^\d+\s%s: # Lines starting with "header"
             [\s\S]+? # Match greedy any text (preserving ASCII flags).
             (?=^(?:\d|test|\Z|Total)) # Stop matching in lines starting with
                                       # a number (log time), "test" or the end
                                       # of the string.
            ]]):format(header),
        re.MULTILINE | re.VERBOSE
    )

    local failed_blocks = set(test_regexp:findall(self._logs))
    if #failed_blocks == 0 then
        return {}
    end
    -- Pick the last re-run of the test
    local block = failed_blocks[#failed_blocks]
    local tests = {}
    local lines = re.split("\n", block)
    for i = 2, #lines do
        local line = lines[i]
        if line ~= "" then
            for _, test in ipairs(re.split(" ", line)) do
                if test ~= "" then
                    tests[#tests + 1] = test
                end
            end
        end
    end
    return set(tests)
end

function Logs:get_tracebacks()
    return set(TRACEBACK_REGEX:findall(self._logs))
end

-- {test_name, resource} pairs
function Logs:get_leaks()
    return set(LEAKS_REGEX:findall(self._logs))
end

function Logs:get_failed_tests()
    return set(self:_get_test_results([[tests?\sfailed]]))
end

function Logs:get_rerun_tests()
    return set(self:_get_test_results([[re-run\stests?]]))
end

-- {test, subtest} pairs
function Logs:get_failed_subtests()
    local failed_subtest_regexp = re.compile(
        "=+" -- Decoration prefix
            .. [[\n[A-Z]+:]] -- Test result (e.g. FAIL:)
            .. [[\s(\w+)\s]] -- test name (e.g. test_tools)
            .. [[\((.*?)\)]] -- subtest name (e.g. test.test_tools.test_unparse.DirectoryTestCase)
            .. ".*" -- Trailing text (e.g. filename)
            .. [[\n*]] -- End of the line
            .. ".*" -- Maybe some test description
            .. "-+", -- Trailing decoration
        re.MULTILINE | re.VERBOSE
    )
    return set(failed_subtest_regexp:findall(self._logs))
end

function Logs:test_summary()
    local result_start = {}
    for match in re.finditer("== Tests result", self._logs) do
        result_start[#result_start + 1] = match:start()
    end
    if #result_start == 0 then
        return ""
    end
    result_start = result_start[#result_start]
    local result_end = {}
    for match in re.finditer("Tests result:", self._logs) do
        result_end[#result_end + 1] = match:start()
    end
    if #result_end == 0 then
        return ""
    end
    result_end = result_end[#result_end]
    return self._logs:sub(result_start, result_end - 1)
end

function Logs:format_failing_tests()
    local text = {}
    local failed = self:get_failed_tests()
    if #failed > 0 then
        text[#text + 1] = "Failed tests:\n"
        for _, test_name in ipairs(failed) do
            text[#text + 1] = "- " .. test_name
        end
        text[#text + 1] = ""
    end
    local failed_subtests = self:get_failed_subtests()
    if #failed_subtests > 0 then
        text[#text + 1] = "Failed subtests:\n"
        for _, pair in ipairs(failed_subtests) do
            text[#text + 1] = ("- %s - %s"):format(pair[1], pair[2])
        end
        text[#text + 1] = ""
    end
    local leaked = self:get_leaks()
    if #leaked > 0 then
        text[#text + 1] = "Test leaking resources:\n"
        for _, pair in ipairs(leaked) do
            text[#text + 1] = ("- %s: %s"):format(pair[1], pair[2])
        end
        text[#text + 1] = ""
    end
    return table.concat(text, "\n")
end

-- The first log of a step with its content (upstream: step["logs"][0]["content"]["content"]).
local function first_log_content(step)
    local log = step.logs and step.logs[1]
    if log == nil then
        return nil -- IndexError
    end
    return log.content.content
end

-- The stderr lines of each step's first log, as tracebacks when the test log has none.
local function construct_tracebacks_from_build_stderr(build)
    local out = {}
    for _, step in ipairs(build.steps) do
        local test_log = first_log_content(step)
        if test_log ~= nil then
            local lines = {}
            for _, line in ipairs(splitlines(test_log)) do
                if line:sub(1, 1) == "e" then
                    lines[#lines + 1] = lstrip(line, "e")
                end
            end
            test_log = table.concat(lines, "\n")
            if test_log ~= "" then
                out[#out + 1] = test_log
            end
        end
    end
    return out
end

-- Logs of the build's `test` step (stream letters stripped) and its tracebacks.
local function get_logs_and_tracebacks_from_build(build)
    local test_log = ""
    local test_step = nil
    for _, step in ipairs(build.steps) do
        if step.name == TESTS_STEP then
            test_step = step
            break
        end
    end
    local content = test_step and first_log_content(test_step)
    if content ~= nil then
        local lines = {}
        for _, line in ipairs(splitlines(content)) do
            lines[#lines + 1] = lstrip(line, "eo")
        end
        test_log = table.concat(lines, "\n")
    end
    local logs = Logs.new(test_log)
    local tracebacks = logs:get_tracebacks()
    if #tracebacks == 0 then
        tracebacks = construct_tracebacks_from_build_stderr(build)
    end
    return logs, tracebacks
end

return {
    TESTS_STEP = TESTS_STEP,
    TRACEBACK_REGEX = TRACEBACK_REGEX,
    LEAKS_REGEX = LEAKS_REGEX,
    Logs = Logs,
    splitlines = splitlines,
    construct_tracebacks_from_build_stderr = construct_tracebacks_from_build_stderr,
    get_logs_and_tracebacks_from_build = get_logs_and_tracebacks_from_build,
}
