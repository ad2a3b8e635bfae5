--[[
custom/steps.py: the step classes of buildbot.python.org, as functions that make
bbm.steps.* steps.  Each takes the parameters of the step (a table, as Buildbot's
constructors take keyword arguments) over the class's own defaults:

    steps.Test { command = {...}, timeout = 1800 }    -- Test(command=[...], timeout=1800)

Buildbot's own ShellCommand, Configure, Compile and SetPropertyFromCommand are
bbm.steps.shell, configure, compile and set_property_from_command; they are here too
under Buildbot's names so that factories.lua reads like factories.py.
]]

local bbm = require "bbm"
local custom = require "custom"
local has = custom.has

local SUCCESS, WARNINGS = bbm.results.SUCCESS, bbm.results.WARNINGS

local M = {}

-- A step of `ctor` with `defaults` (the class's attributes) under `args`.
local function with_defaults(ctor, defaults)
    return function(args)
        local params = {}
        for k, v in pairs(defaults) do
            params[k] = v
        end
        for k, v in pairs(args or {}) do
            params[k] = v
        end
        return ctor(params)
    end
end

M.ShellCommand = bbm.steps.shell
M.Configure = bbm.steps.configure
M.Compile = bbm.steps.compile
M.SetPropertyFromCommand = bbm.steps.set_property_from_command

-- GH-68: If "git clone" fails, mark the whole build as WARNING
-- (warnOnFailure), not as "FAILURE" (flunkOnFailure)
local git_defaults = { haltOnFailure = true, flunkOnFailure = false, warnOnFailure = true }
M.Git = with_defaults(bbm.steps.git, git_defaults)
M.GitHub = with_defaults(bbm.steps.github, git_defaults)

-- Regular expression used to catch warnings, errors and bugs
local test_warnings = {
    -- regrtest saved_test_environment warning:
    -- Warning -- files was modified by test_distutils
    -- test.support @reap_threads:
    -- Warning -- threading_cleanup() failed to cleanup ...
    "Warning -- ",

    -- Py_FatalError() call
    "Fatal Python error:",

    -- PyErr_WriteUnraisable() exception: usually, error in
    -- garbage collector or destructor
    "Exception ignored in:",

    -- faulthandler_exc_handler(): Windows exception handler installed with
    -- AddVectoredExceptionHandler() by faulthandler.enable()
    "Windows fatal exception:",

    -- Resource warning: unclosed file, socket, etc.
    -- NOTE: match the "ResourceWarning" anywhere, not only at the start
    "ResourceWarning",

    -- regrtest: At least one test failed. Log a warning even if the test
    -- passed on the second try, to notify that a test is unstable.
    "Re-running failed tests in verbose mode",

    -- Re-running test 'test_multiprocessing_fork' in verbose mode
    "Re-running test.* in verbose mode",

    -- Thread last resort exception handler in t_bootstrap()
    "Unhandled exception in thread started by ",

    -- test_os leaked [6, 6, 6] memory blocks, sum=18,
    "test_[^ ]+ leaked ",

    -- FAIL: test_stdin_broken_pipe (test.test_asyncio...)
    "FAIL: ",

    -- ERROR: test_pipe_handle (test.test_asyncio...)
    "ERROR: ",

    -- test.* ... unexpected success
    "unexpected success",

    -- Kill worker process 15215 running for 1350.1 sec
    "Kill worker process ",

    -- test test_ssl failed -- multiple errors occurred; run in verbose mode for details
    "test .* failed -- multiple errors occurred; run in verbose mode for details",

    -- OSError: [Errno 28] No space left on device: ...
    "No space left on device",
}


-- Test.evaluateCommand: a failed run asks for its JUnit file to be uploaded (and says the
-- tests failed to build); on main's stable builders, so does a run with warnings.
local function test_evaluate_command(step, cmd)
    local result = cmd.results
    if cmd.didFail then
        step:setProperty("test_failed_to_build", true)
        step:setProperty("want_xml_upload", true)
    elseif result == WARNINGS then
        -- For warnings, upload XML for main branch stable builders
        local tags = step.builder.tags
        if has(tags, "stable") and has(tags, "3.x") then
            step:setProperty("want_xml_upload", true)
        end
    end
    return result
end

M.Test = with_defaults(bbm.steps.test, {
    -- Use ".*" prefix to search the regex anywhere since stdout is mixed
    -- with stderr, so warnings are not always written at the start
    -- of a line. The log consumer calls warningPattern.match(line)
    warningPattern = ".*(?:" .. table.concat(test_warnings, "|") .. ")",

    -- if tests have warnings, mark the overall build as WARNINGS (orange)
    warnOnWarnings = true,

    -- 4 hours should be enough even for refleak builds. In practice,
    -- faulthandler kills worker processes with a way shorter timeout
    -- (regrtest --timeout parameter).
    maxTime = 4 * 60 * 60,
    -- Give SIGTERM 30 seconds to shut things down before SIGKILL.
    sigtermTime = 30,

    -- Treat "regrtest --fail-rerun" exit code (5) as WARNINGS
    -- https://github.com/python/cpython/issues/108834
    decodeRC = {
        [0] = SUCCESS,

        -- Treat --fail-rerun exit code (5) to WARNINGS, when a test failed but
        -- passed when run again in verbose mode in a fresh process (unstable
        -- test).
        [5] = WARNINGS, -- EXITCODE_RERUN_FAIL

        -- Any exit code not present in the dictionary is treated as FAILURE.
        -- So there is no need to map each regrtest exit code to FAILURE.
        --
        -- [2] = FAILURE,    -- EXITCODE_BAD_TEST
        -- [3] = FAILURE,    -- EXITCODE_ENV_CHANGED
        -- [4] = FAILURE,    -- EXITCODE_NO_TESTS_RAN
        -- [130] = FAILURE,  -- EXITCODE_INTERRUPTED
    },

    evaluateCommand = test_evaluate_command,
})

M.PythonInfo = with_defaults(bbm.steps.shell, {
    name = "pythoninfo",
    description = "Display build information",
    warnOnFailure = true,
})

M.Clean = with_defaults(bbm.steps.shell, {
    name = "clean",
    flunkOnFailure = false,
    warnOnFailure = true,
    description = { "cleaning" },
    descriptionDone = { "clean" },
    command = { "make", "distclean" },
    alwaysRun = true,
})

M.CleanupTest = with_defaults(bbm.steps.shell, {
    name = "cleantest",
    description = { "cleaning previous tests" },
    descriptionDone = { "clean previous tests" },
    flunkOnFailure = false,
    warnOnFailure = true,
})

M.Install = with_defaults(bbm.steps.shell, {
    name = "install",
    description = { "installing" },
    descriptionDone = { "Installed" },
    command = { "make", "install" },
    haltOnFailure = true,
})

M.LockInstall = with_defaults(bbm.steps.shell, {
    name = "chmod",
    description = { "changing permissions" },
    descriptionDone = { "made install dir unwritable" },
    command = { "chmod", "-R", "-w", "target/" },
})

M.Uninstall = with_defaults(bbm.steps.shell, {
    name = "uninstall",
    description = { "uninstalling" },
    descriptionDone = { "Uninstalled" },
    command = "chmod -R +w target/ &&  rm -rf target/",
    alwaysRun = true,
    usePTY = false,
    -- GH-68: For "Install" builbot workers, when "git clone" fails, the
    -- uninstall step fails since the target/ directory doesn't exist. In this
    -- case, only mark the build as WARNING (warnOnFailure), instead of
    -- "FAILURE" (flunkOnFailure).
    warnOnFailure = true,
})

-- Where UploadTestResults puts the JUnit files: DIR/BRANCH/BUILDER/build_N.xml.
M.TEST_RESULTS_DIR = "/data/www/buildbot/test-results"

local function want_xml_upload(step)
    return step:getProperty("want_xml_upload")
end

-- UploadTestResults(branch[, filename]): the JUnit file of the tests, to the directory
-- the release dashboard reads (www.release_test_results in master.lua).
function M.UploadTestResults(branch, filename)
    return bbm.steps.file_upload {
        warnOnFailure = true,
        haltOnFailure = false,
        flunkOnFailure = false,
        alwaysRun = true,
        doStepIf = want_xml_upload,
        workersrc = filename or custom.JUNIT_FILENAME,
        masterdest = bbm.interpolate(
            M.TEST_RESULTS_DIR .. "/" .. tostring(branch)
                .. "/%(prop:buildername)s/build_%(prop:buildnumber)s.xml"),
        mode = tonumber("755", 8),
    }
end

return M
