--[[
custom/factories.py: the build factories, one "class" per class of the original.

A class is a table whose missing fields are looked up in its parent's (Python's class
attributes and methods); Class(parent, fields) makes one.  An instance is made with
Cls:new(source, { branch =, worker =, extra_tags = }), which calls Cls:init (Python's
__init__), itself calling self:setup(branch, worker, test_with_PTY) to add the steps.
The instance keeps the bbm.factory in `factory`, with `tags`, `branches` and
`buildersuffix`, which master.lua reads.
]]

local bbm = require "bbm"
local custom = require "custom"
local concat = custom.concat
local branches = require "custom.branches"
local steps = require "custom.steps"

local JUNIT_FILENAME = custom.JUNIT_FILENAME
local BRANCHES, BranchSet = branches.BRANCHES, branches.BranchSet
local ShellCommand, Configure, Compile = steps.ShellCommand, steps.Configure, steps.Compile
local SetPropertyFromCommand = steps.SetPropertyFromCommand
local Test, Clean, Install, LockInstall = steps.Test, steps.Clean, steps.Install, steps.LockInstall
local Uninstall, UploadTestResults, PythonInfo = steps.Uninstall, steps.UploadTestResults, steps.PythonInfo

local M = {}

-- ------------------------------------------------------------ helpers

-- A class: its fields, then its parent's.
local function Class(parent, fields)
    local cls = fields or {}
    cls.__index = cls
    return setmetatable(cls, { __index = parent })
end


local function append(list, ...)
    for i = 1, select("#", ...) do
        list[#list + 1] = (select(i, ...))
    end
end

-- A copy of a table (dict(d), d.copy()).
local function copy(t)
    local out = {}
    for k, v in pairs(t) do
        out[k] = v
    end
    return out
end

-- `args` with the fields of `extra` ({**args, **extra}).
local function with(args, extra)
    local out = copy(args)
    for k, v in pairs(extra or {}) do
        out[k] = v
    end
    return out
end

-- os.path.join for the POSIX paths used here
local function path_join(...)
    return table.concat({ ... }, "/")
end

-- "%d" refuses a timeout that is not a whole number, which Python would print as "1800.0"
local function int(n)
    return assert(math.tointeger(n), "not a whole number: " .. tostring(n))
end

-- This (default) timeout is for each individual test file.
-- It is a bit more than the default faulthandler timeout in regrtest.py
-- (the latter isn't easily changed under Windows).
local TEST_TIMEOUT = 20 * 60 -- 20 minutes

-- Refleak timeout (-R 3:3) for each individual test file.
local REFLEAK_TIMEOUT = 45 * 60 -- 45 minutes

M.TEST_TIMEOUT, M.REFLEAK_TIMEOUT = TEST_TIMEOUT, REFLEAK_TIMEOUT

local function step_timeout(timeout)
    -- timeout is the regrtest timeout in seconds. If a test runs longer than
    -- the timeout, it should be killed by faulthandler. Give 10 minutes to
    -- faulthandler to kill the process. Tests should always be shorter than the
    -- buildbot step timeout, unless faulthandler fails to kill the process.
    return timeout + 10 * 60
end

--[[ Get option(s) for parallel make: {"-jN"}

Returns an one-element list or an empty one if default is nil and no
parallelism is specified. This avoids branches when adding the option:

    command = concat({ cmd }, get_j_opts(worker), { ... })
]]
local function get_j_opts(worker, default)
    if worker.parallel_tests == nil then
        if default == nil then
            return {}
        end
        return { ("-j%d"):format(default) }
    end
    return { ("-j%d"):format(worker.parallel_tests) }
end

local BaseBuild = Class(nil, {
    factory_tags = {},
    test_timeout = TEST_TIMEOUT,
    buildersuffix = "",
    tags = {},
    branches = BRANCHES,
})
M.BaseBuild = BaseBuild

-- Cls:new(source, { branch =, worker =, extra_tags =, test_with_PTY = })
function BaseBuild.new(cls, source, kwargs)
    local self = setmetatable({}, cls)
    self:init(source, kwargs)
    return self
end

function BaseBuild:init(source, kwargs)
    self.factory = bbm.factory { source }
    self:setup(kwargs.branch, kwargs.worker, kwargs.test_with_PTY or false)
    self.tags = concat(self.factory_tags, kwargs.extra_tags or {})

    -- (set after setup, as upstream does: the steps keep the class's test_environ)
    self.test_environ = with({
        BUILDBOT = "1", -- Every time you use this option, a puppy dies!!
    }, self.test_environ or {})
end

function BaseBuild:addStep(step)
    self.factory:addStep(step)
end

function BaseBuild:addSteps(list)
    for _, step in ipairs(list) do
        self.factory:addStep(step)
    end
end

-- ##############################  UNIX BUILDS  ################################

-- return true for option="-j" and test_options={"-uall", "-j2"}
local function has_option(option, test_options)
    return table.concat(test_options, " "):find(option, 1, true) ~= nil
end

local UnixBuild = Class(BaseBuild, {
    configureFlags = { "--with-pydebug" },
    compile_environ = {},
    interpreterFlags = "",
    testFlags = {},
    makeTarget = "all",
    test_environ = {},
    build_out_of_tree = false,
})
M.UnixBuild = UnixBuild

function UnixBuild:setup(branch, worker, test_with_PTY)
    local out_of_tree_dir = "build_oot"

    -- Adjust the timeout for this worker
    self.test_timeout = self.test_timeout * worker.timeout_factor

    local exclude_test_resources = worker.exclude_test_resources

    -- In 3.10, test_asyncio wasn't split out, and refleaks tests
    -- need more time.
    if branch.monolithic_test_asyncio and has_option("-R", self.testFlags) then
        self.test_timeout = self.test_timeout * 2
    end

    if self.build_out_of_tree then
        self:addStep(ShellCommand {
            name = "mkdir out-of-tree directory",
            description = "Create out-of-tree directory",
            command = { "mkdir", "-p", out_of_tree_dir },
            warnOnFailure = true,
        })
    end

    local configure_cmd, oot_kwargs
    if self.build_out_of_tree then
        configure_cmd = "../configure"
        oot_kwargs = { workdir = path_join("build", out_of_tree_dir) }
    else
        configure_cmd = "./configure"
        oot_kwargs = {}
    end
    configure_cmd = concat({ configure_cmd, "--prefix", "$(PWD)/target" }, self.configureFlags)
    self:addStep(Configure(with({ command = configure_cmd }, oot_kwargs)))
    local compile = concat({ "make" }, get_j_opts(worker), { self.makeTarget })
    local testopts = concat(self.testFlags, get_j_opts(worker, 2))
    if not has_option("-R", self.testFlags) then
        append(testopts, "--junit-xml", JUNIT_FILENAME)
    end
    -- Add excluded test resources
    if #exclude_test_resources > 0 then
        local u_loc
        for i, opt in ipairs(testopts) do
            if opt:sub(1, 2) == "-u" then
                u_loc = i
                break
            end
        end
        if u_loc ~= nil then
            for _, resource in ipairs(exclude_test_resources) do
                testopts[u_loc] = testopts[u_loc] .. ",-" .. resource
            end
        else
            local excluded = {}
            for i, r in ipairs(exclude_test_resources) do
                excluded[i] = "-" .. r
            end
            append(testopts, "-uall," .. table.concat(excluded, ","))
        end
    end

    local test = {
        "make",
        "buildbottest",
        "TESTOPTS=" .. table.concat(testopts, " ") .. " ${BUILDBOT_TESTOPTS}",
        "TESTPYTHONOPTS=" .. self.interpreterFlags,
        ("TESTTIMEOUT=%d"):format(int(self.test_timeout)),
    }

    self:addStep(Compile(with({ command = compile, env = self.compile_environ }, oot_kwargs)))
    self:addStep(PythonInfo(with({
        command = { "make", "pythoninfo" },
        env = self.test_environ,
    }, oot_kwargs)))
    self:addStep(Test(with({
        command = test,
        timeout = step_timeout(self.test_timeout),
        usePTY = test_with_PTY,
        env = self.test_environ,
    }, oot_kwargs)))
    if not branch.is_pr and not has_option("-R", self.testFlags) then
        local filename = JUNIT_FILENAME
        if self.build_out_of_tree then
            filename = path_join(out_of_tree_dir, filename)
        end
        self:addStep(UploadTestResults(branch, filename))
    end
    self:addStep(Clean(oot_kwargs))
end

M.UnixPerfBuild = Class(UnixBuild, {
    buildersuffix = ".perfbuild",
    configureFlags = { "CFLAGS=-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer" },
})

M.UnixTraceRefsBuild = Class(UnixBuild)
function M.UnixTraceRefsBuild:setup(branch, worker, test_with_PTY)
    self.configureFlags = { "--with-pydebug", "--with-trace-refs" }
    return UnixBuild.setup(self, branch, worker, test_with_PTY)
end

M.UnixRefleakBuild = Class(UnixBuild, {
    buildersuffix = ".refleak",
    testFlags = { "-R", "3:3", "-u-cpu" },
    test_timeout = REFLEAK_TIMEOUT,
    factory_tags = { "refleak" },
})

M.UnixNoGilBuild = Class(UnixBuild, {
    buildersuffix = ".nogil",
    configureFlags = { "--with-pydebug", "--disable-gil" },
    factory_tags = { "nogil" },
    -- 2024-04-11: Free-threading can still be slower than regular build in some
    -- code paths, so tolerate longer timeout.
    test_timeout = TEST_TIMEOUT * 3 // 2,
})

M.UnixNoGilRefleakBuild = Class(UnixBuild, {
    buildersuffix = ".refleak.nogil",
    configureFlags = { "--with-pydebug", "--disable-gil" },
    testFlags = { "-R", "3:3", "-u-cpu" },
    test_timeout = REFLEAK_TIMEOUT,
    factory_tags = { "nogil", "refleak" },
})

local UnixInstalledBuild = Class(BaseBuild, {
    buildersuffix = ".installed",
    configureFlags = {},
    interpreterFlags = { "-Wdefault", "-bb", "-E" },
    defaultTestOpts = { "-rwW", "-uall" },
    makeTarget = "all",
    installTarget = "install",
    factory_tags = { "installed" },
})
M.UnixInstalledBuild = UnixInstalledBuild

function UnixInstalledBuild:setup(branch, worker, test_with_PTY)
    local executable_name
    if branch.version_tuple then
        local major, minor = branch.version_tuple[1], branch.version_tuple[2]
        executable_name = ("python%d.%d"):format(major, minor)
    else
        executable_name = "python3"
    end
    local installed_python = "./target/bin/" .. executable_name
    self:addStep(Configure {
        command = concat({ "./configure", "--prefix", "$(PWD)/target" }, self.configureFlags),
    })

    local j_opts = get_j_opts(worker)
    local compile = concat({ "make" }, j_opts, { self.makeTarget })
    local install = concat({ "make" }, j_opts, { self.installTarget })
    local testopts = concat(
        self.defaultTestOpts,
        { ("--timeout=%d"):format(int(self.test_timeout)) },
        get_j_opts(worker, 2)
    )

    local test = concat({ installed_python }, self.interpreterFlags, { "-m", "test" }, testopts)

    self:addStep(Compile { command = compile })
    self:addStep(Install { command = install })
    self:addStep(LockInstall())
    self:addStep(PythonInfo {
        command = { installed_python, "-m", "test.pythoninfo" },
    })
    self:addStep(Test {
        command = test,
        timeout = step_timeout(self.test_timeout),
        usePTY = test_with_PTY,
    })
    self:addStep(Uninstall())
    self:addStep(Clean())
end

local UnixAsanBuild = Class(UnixBuild, {
    buildersuffix = ".asan",
    configureFlags = { "--without-pymalloc", "--with-address-sanitizer" },
    factory_tags = { "asan", "sanitizer" },
    -- See https://bugs.python.org/issue42985 for more context on why
    -- SIGSEGV is ignored on purpose.
    compile_environ = { ASAN_OPTIONS = "detect_leaks=0:allocator_may_return_null=1:handle_segv=0" },
    test_environ = { ASAN_OPTIONS = "detect_leaks=0:allocator_may_return_null=1:handle_segv=0" },
    test_timeout = 35 * 60, -- 35 minutes
})
M.UnixAsanBuild = UnixAsanBuild

M.UnixAsanDebugBuild = Class(UnixAsanBuild, {
    buildersuffix = ".asan_debug",
    configureFlags = concat(UnixAsanBuild.configureFlags, { "--with-pydebug" }),
})

local UnixAsanNoGilBuild = Class(UnixAsanBuild, {
    buildersuffix = ".asan.nogil",
    configureFlags = concat(UnixAsanBuild.configureFlags, { "--disable-gil" }),
    factory_tags = concat(UnixAsanBuild.factory_tags, { "nogil" }),
})
M.UnixAsanNoGilBuild = UnixAsanNoGilBuild

M.UnixBuildWithoutDocStrings = Class(UnixBuild, {
    configureFlags = { "--with-pydebug", "--without-doc-strings" },
})

M.UnixBigmemBuild = Class(UnixBuild, {
    buildersuffix = ".bigmem",
    testFlags = {
        "-M60g", "-uall,extralargefile",
        "--prioritize=test_bigmem,test_lzma,test_bz2,test_re,test_array",
    },
    test_timeout = TEST_TIMEOUT * 5,
    factory_tags = { "bigmem" },
})

M.UnixOddballsBuild = Class(UnixBuild, {
    buildersuffix = ".oddballs",
    configureFlags = {
        "--enable-pystats",
        "--with-pydebug",
    },
    testFlags = { "-u", "xpickle,tzdata",
        "test_xpickle", "test_zoneinfo", "test_datetime" },
    factory_tags = { "xpickle", "tzdata" },
})

local NonDebugUnixBuild = Class(UnixBuild, {
    buildersuffix = ".nondebug",
    -- Enable assertions regardless. Some children will override this,
    -- that is fine.
    configureFlags = { "CFLAGS=-UNDEBUG" },
    factory_tags = { "nondebug" },
})
M.NonDebugUnixBuild = NonDebugUnixBuild

M.PGOUnixBuild = Class(NonDebugUnixBuild, {
    buildersuffix = ".pgo",
    configureFlags = { "--enable-optimizations", "--with-readline=edit" },
    factory_tags = { "pgo" },
})

local ClangUnixBuild = Class(UnixBuild, {
    buildersuffix = ".clang",
    configureFlags = {
        "CC=clang",
        "LD=clang",
        "--with-pydebug",
    },
    factory_tags = { "clang" },
})
M.ClangUnixBuild = ClangUnixBuild

M.ClangUbsanLinuxBuild = Class(UnixBuild, {
    buildersuffix = ".clang-ubsan",
    configureFlags = {
        "CC=clang",
        "LD=clang",
        "CFLAGS=-fno-sanitize-recover",
        "--with-undefined-behavior-sanitizer",
    },
    factory_tags = { "clang", "ubsan", "sanitizer" },
})

M.ClangUbsanFunctionLinuxBuild = Class(UnixBuild, {
    buildersuffix = ".clang-ubsan-function",
    configureFlags = {
        "CC=clang",
        "LD=clang",
        "CFLAGS=-fsanitize=undefined -fno-sanitize=function -fsanitize-recover",
        "--with-undefined-behavior-sanitizer",
    },
    factory_tags = { "clang", "ubsan", "sanitizer" },
})

M.ClangUnixInstalledBuild = Class(UnixInstalledBuild, {
    buildersuffix = ".clang-installed",
    configureFlags = {
        "CC=clang",
        "LD=clang",
    },
    factory_tags = { "clang", "installed" },
})

M.SharedUnixBuild = Class(UnixBuild, {
    configureFlags = { "--with-pydebug", "--enable-shared" },
    factory_tags = { "shared" },
})

-- faulthandler uses a timeout 5 minutes smaller: it should be enough for the
-- slowest test.
local SLOW_TIMEOUT = 40 * 60

-- These use a longer timeout for very slow buildbots.
local SlowNonDebugUnixBuild = Class(NonDebugUnixBuild, {
    test_timeout = SLOW_TIMEOUT,
    testFlags = concat(NonDebugUnixBuild.testFlags, { "-u-cpu" }),
})
M.SlowNonDebugUnixBuild = SlowNonDebugUnixBuild

M.SlowNonDebugUnixBuild15BitDigits = Class(SlowNonDebugUnixBuild, {
    configureFlags = concat(SlowNonDebugUnixBuild.configureFlags, { "--enable-big-digits=15" }),
})

M.SlowDebugUnixBuild = Class(UnixBuild, {
    test_timeout = SLOW_TIMEOUT,
    testFlags = concat(UnixBuild.testFlags, { "-u-cpu" }),
})

M.SlowUnixNoGilBuild = Class(M.UnixNoGilBuild, {
    test_timeout = SLOW_TIMEOUT,
    testFlags = concat(UnixBuild.testFlags, { "-u-cpu" }),
})

M.SlowUnixInstalledBuild = Class(UnixInstalledBuild, {
    test_timeout = SLOW_TIMEOUT,
})

M.SlowClangUnixBuild = Class(ClangUnixBuild, {
    test_timeout = SLOW_TIMEOUT,
    testFlags = concat(UnixBuild.testFlags, { "-u-cpu" }),
})

M.LTONonDebugUnixBuild = Class(NonDebugUnixBuild, {
    buildersuffix = ".lto",
    configureFlags = {
        "--with-lto",
    },
    factory_tags = { "lto", "nondebug" },
})

M.LTOPGONonDebugBuild = Class(NonDebugUnixBuild, {
    buildersuffix = ".lto-pgo",
    configureFlags = {
        "--with-lto",
        "--enable-optimizations",
    },
    factory_tags = { "lto", "pgo", "nondebug" },
})

M.ClangLTOPGONonDebugBuild = Class(NonDebugUnixBuild, {
    buildersuffix = ".clang.lto-pgo",
    configureFlags = {
        "CC=clang",
        "LD=clang",
        "--with-lto",
        "--enable-optimizations",
    },
    factory_tags = { "lto", "pgo", "nondebug", "clang" },
})

local RHEL8Build = Class(UnixBuild, {
    -- Build Python on 64-bit RHEL8.
    configureFlags = {
        "--with-pydebug",
        "--with-platlibdir=lib64",
        "--enable-ipv6",
        "--enable-shared",
        "--with-computed-gotos=yes",
        "--with-dbmliborder=gdbm:ndbm:bdb",
        "--enable-loadable-sqlite-extensions",
        "--with-ssl-default-suites=openssl",
        "--without-static-libpython",
        "--with-lto",
        -- Not all workers have dtrace installed
        -- "--with-dtrace",
        "--with-valgrind",
        "--with-system-libmpdec",
    },

    -- Building Python out of tree: similar to what the specfile does, but
    -- buildbot uses a single subdirectory, and the specfile uses two
    -- sub-directories.
    --
    -- On Fedora/RHEL specfile, the following directories are used:
    -- /builddir/build/BUILD/Python-3.11: source code
    -- /builddir/build/BUILD/Python-3.11/build/optimized: configure, make, tests
    build_out_of_tree = true,
})
M.RHEL8Build = RHEL8Build

-- Build on 64-bit CentOS Stream 9.
-- For now, it's the same as RHEL8, but later it may get different
-- options.
local CentOS9Build = Class(RHEL8Build)
M.CentOS9Build = CentOS9Build

-- Build on 64-bit CentOS Stream 10.
M.CentOS10Build = Class(CentOS9Build, {
    configureFlags = concat(CentOS9Build.configureFlags, {
        "--with-system-expat",
    }),
})

-- Build Python on 64-bit Fedora Stable.
--
-- Try to be as close as possible to the Fedora specfile used to build
-- the RPM package:
-- https://src.fedoraproject.org/rpms/python3.11/blob/rawhide/f/python3.11.spec
local FedoraStableBuild = Class(RHEL8Build, {
    configureFlags = concat(RHEL8Build.configureFlags, {
        -- Options specific to Fedora
        "--with-system-expat",
        -- Don't make a buildbot fail when pip/setuptools is updated in Python,
        -- whereas the buildbot uses older versions.
        -- "--with-wheel-pkg-dir=/usr/share/python-wheels/",
    }),
})
M.FedoraStableBuild = FedoraStableBuild

-- Build on 64-bit Fedora Rawhide.
-- For now, it's the same than Fedora Stable, but later it may get different
-- options.
local FedoraRawhideBuild = Class(FedoraStableBuild)
M.FedoraRawhideBuild = FedoraRawhideBuild

-- Build on 64-bit Fedora Rawhide.
M.FedoraRawhideFreedthreadingBuild = Class(FedoraRawhideBuild, {
    buildersuffix = ".nogil",
    configureFlags = concat(FedoraRawhideBuild.configureFlags, {
        "--disable-gil",
    }),
    factory_tags = { "nogil" },
})

-- Build on 64-bit RHEL8 using: --with-builtin-hashlib-hashes=blake2
M.RHEL8NoBuiltinHashesUnixBuildExceptBlake2 = Class(RHEL8Build, {
    buildersuffix = ".no-builtin-hashes-except-blake2",
    configureFlags = concat(RHEL8Build.configureFlags, {
        "--with-builtin-hashlib-hashes=blake2",
    }),
    factory_tags = { "no-builtin-hashes-except-blake2" },
})

-- Build on 64-bit RHEL8 using: --without-builtin-hashlib-hashes
M.RHEL8NoBuiltinHashesUnixBuild = Class(RHEL8Build, {
    buildersuffix = ".no-builtin-hashes",
    configureFlags = concat(RHEL8Build.configureFlags, {
        "--without-builtin-hashlib-hashes",
    }),
    factory_tags = { "no-builtin-hashes" },
})

-- Build on 64-bit CentOS Stream 9 using: --with-builtin-hashlib-hashes=blake2
M.CentOS9NoBuiltinHashesUnixBuildExceptBlake2 = Class(CentOS9Build, {
    buildersuffix = ".no-builtin-hashes-except-blake2",
    configureFlags = concat(CentOS9Build.configureFlags, {
        "--with-builtin-hashlib-hashes=blake2",
    }),
    factory_tags = { "no-builtin-hashes-except-blake2" },
})

-- Build on 64-bit CentOS Stream 9 using: --without-builtin-hashlib-hashes
M.CentOS9NoBuiltinHashesUnixBuild = Class(CentOS9Build, {
    buildersuffix = ".no-builtin-hashes",
    configureFlags = concat(CentOS9Build.configureFlags, {
        "--without-builtin-hashlib-hashes",
    }),
    factory_tags = { "no-builtin-hashes" },
})

-- ############################  MACOS BUILDS  ##################################

local brew_flags = {
    "--with-openssl=/opt/homebrew/opt/openssl@3",
    "CPPFLAGS=-I/opt/homebrew/include",
    "LDFLAGS=-L/opt/homebrew/lib",
    "PKG_CONFIG_PATH=/opt/homebrew/opt/tcl-tk@8/lib/pkgconfig",
}

M.MacOSArmWithBrewBuild = Class(UnixBuild, {
    buildersuffix = ".macos-with-brew",
    configureFlags = concat(UnixBuild.configureFlags, brew_flags),
    -- These tests are known to crash on M1 macs (see bpo-45289).
    testFlags = concat(UnixBuild.testFlags,
        { "-x", "test_dbm", "test_dbm_ndbm", "test_shelve" }),
})

M.MacOSArmWithBrewNoGilBuild = Class(M.UnixNoGilBuild, {
    buildersuffix = ".macos-with-brew.nogil",
    configureFlags = concat(M.UnixNoGilBuild.configureFlags, brew_flags),
})

M.MacOSArmWithBrewRefleakBuild = Class(M.UnixRefleakBuild, {
    buildersuffix = ".macos-with-brew.refleak",
    configureFlags = concat(M.UnixRefleakBuild.configureFlags, brew_flags),
})

M.MacOSArmWithBrewNoGilRefleakBuild = Class(M.UnixNoGilRefleakBuild, {
    buildersuffix = ".macos-with-brew.refleak.nogil",
    configureFlags = concat(M.UnixNoGilRefleakBuild.configureFlags, brew_flags),
})

local mac_asan_options = "detect_leaks=0:allocator_may_return_null=1:handle_segv=0"
M.MacOSAsanNoGilBuild = Class(UnixAsanNoGilBuild, {
    buildersuffix = ".macos-with-brew.asan.nogil",
    configureFlags = concat(UnixAsanNoGilBuild.configureFlags, brew_flags),
    asan_options = mac_asan_options,
    compile_environ = { ASAN_OPTIONS = mac_asan_options },
    test_environ = {
        ASAN_OPTIONS = mac_asan_options,
        -- Note: Need to set `MallocNanoZone=0` environment variable to workaround a macOS issue.
        -- This was needed to workaround an issue with this builder that manifested as failures in 3 tests:
        -- test_cmd_line, test_posix, test_subprocess
        -- These failures seem to be related to the occurrence of this warning:
        -- python.exe(74602,0x7ff84626a700) malloc: nano zone abandoned due to inability to reserve vm space.
        -- It is unclear why (or if) it's *directly* causing the test failures, but setting `MallocNanoZone=0`
        -- disables this optimization (and fixes the tests), which appears to be interfering with ASAN. See also:
        -- https://stackoverflow.com/questions/64126942/malloc-nano-zone-abandoned-due-to-inability-to-preallocate-reserved-vm-space
        -- https://github.com/python/buildmaster-config/issues/450 (and attached PR)
        MallocNanoZone = "0",
    },
})

-- ############################  WINDOWS BUILDS  ################################

local BaseWindowsBuild = Class(BaseBuild, {
    build_command = { [[Tools\buildbot\build.bat]] },
    compile_environ = {},
    test_command = { [[Tools\buildbot\test.bat]] },
    clean_command = { [[Tools\buildbot\clean.bat]] },
    python_command = { [[python.bat]] },
    buildFlags = { "-p", "Win32" },
    testFlags = { "-p", "Win32" },
    cleanFlags = {},
    factory_tags = { "win32" },
})
M.BaseWindowsBuild = BaseWindowsBuild

function BaseWindowsBuild:setup(branch, worker)
    local build_command = concat(self.build_command, self.buildFlags)
    local test_command = concat(self.test_command, self.testFlags, get_j_opts(worker, 2))
    if not has_option("-R", self.testFlags) then
        append(test_command, "--junit-xml", JUNIT_FILENAME)
    end
    local clean_command = concat(self.clean_command, self.cleanFlags, get_j_opts(worker))
    self:addStep(Compile {
        command = build_command,
        env = self.compile_environ,
    })
    self:addStep(PythonInfo {
        command = concat(self.python_command, { "-m", "test.pythoninfo" }),
    })
    append(test_command, "--timeout", ("%d"):format(int(self.test_timeout)))
    self:addStep(Test {
        command = test_command,
        timeout = step_timeout(self.test_timeout),
    })
    if not branch.is_pr and not has_option("-R", self.testFlags) then
        self:addStep(UploadTestResults(branch))
    end
    self:addStep(Clean { command = clean_command })
end

local WindowsBuild = Class(BaseWindowsBuild, {
    buildersuffix = ".x32",
})
M.WindowsBuild = WindowsBuild

local WindowsRefleakBuild = Class(BaseWindowsBuild, {
    buildersuffix = ".x32.refleak",
    testFlags = { "-R", "3:3", "-u-cpu" },
    test_timeout = REFLEAK_TIMEOUT,
    factory_tags = { "win32", "refleak" },
})
M.WindowsRefleakBuild = WindowsRefleakBuild

M.SlowWindowsBuild = Class(WindowsBuild, {
    test_timeout = TEST_TIMEOUT * 2,
    testFlags = { "-u-cpu", "-u-largefile" },
})

local Windows64Build = Class(BaseWindowsBuild, {
    buildFlags = { "-p", "x64" },
    testFlags = { "-p", "x64" },
    cleanFlags = { "-p", "x64" },
    factory_tags = { "win64" },
})
M.Windows64Build = Windows64Build

M.Windows64ClangBuild = Class(Windows64Build, {
    compile_environ = {
        PlatformToolset = "ClangCL",
    },
    factory_tags = concat(Windows64Build.factory_tags, { "clang" }),
    branches = BRANCHES:only_since(3, 14),
})

M.Windows64BigmemBuild = Class(BaseWindowsBuild, {
    buildersuffix = ".bigmem",
    buildFlags = { "-p", "x64" },
    testFlags = {
        "-p", "x64", "-M33g", "-uall,extralargefile",
        "--prioritize=test_bigmem,test_lzma,test_bz2,test_array,test_hashlib,test_zlib",
    },
    test_timeout = TEST_TIMEOUT * 5,
    cleanFlags = { "-p", "x64" },
    factory_tags = { "win64", "bigmem" },
})

M.Windows64RefleakBuild = Class(Windows64Build, {
    buildersuffix = ".refleak",
    testFlags = concat({ "-p", "x64" }, WindowsRefleakBuild.testFlags),
    test_timeout = REFLEAK_TIMEOUT,
    factory_tags = { "win64", "refleak" },
})

M.Windows64ReleaseBuild = Class(Windows64Build, {
    buildersuffix = ".nondebug",
    buildFlags = concat(Windows64Build.buildFlags, { "-c", "Release" }),
    testFlags = concat(Windows64Build.testFlags, { "+d" }),
    -- keep default cleanFlags, both configurations get cleaned
    factory_tags = { "win64", "nondebug" },
})

local Windows64PGOBuild = Class(Windows64Build, {
    buildersuffix = ".pgo",
    buildFlags = concat(Windows64Build.buildFlags, { "--pgo" }),
    testFlags = concat(Windows64Build.testFlags, { "+d" }),
    factory_tags = { "win64", "nondebug", "pgo" },
})
M.Windows64PGOBuild = Windows64PGOBuild

M.Windows64PGOTailcallBuild = Class(Windows64PGOBuild, {
    buildersuffix = ".tailcall.pgo",
    buildFlags = concat(Windows64PGOBuild.buildFlags, { "--tail-call-interp" }),
    factory_tags = concat(Windows64PGOBuild.factory_tags, { "tailcall" }),
})

M.Windows64NoGilBuild = Class(Windows64Build, {
    buildersuffix = ".x64.nogil",
    buildFlags = concat(Windows64Build.buildFlags, { "--disable-gil" }),
    testFlags = concat(Windows64Build.testFlags, { "--disable-gil" }),
    factory_tags = { "win64", "nogil" },
})

local Windows64PGONoGilBuild = Class(Windows64PGOBuild, {
    buildersuffix = ".nogil.pgo",
    buildFlags = concat(Windows64PGOBuild.buildFlags, { "--disable-gil" }),
    testFlags = concat(Windows64PGOBuild.testFlags, { "--disable-gil" }),
    factory_tags = { "win64", "nogil", "nondebug", "pgo" },
})
M.Windows64PGONoGilBuild = Windows64PGONoGilBuild

M.Windows64PGONoGilTailcallBuild = Class(Windows64PGONoGilBuild, {
    buildersuffix = ".nogil.tailcall.pgo",
    buildFlags = concat(Windows64PGONoGilBuild.buildFlags, { "--tail-call-interp" }),
    factory_tags = concat(Windows64PGONoGilBuild.factory_tags, { "tailcall" }),
})

local WindowsARM64Build = Class(BaseWindowsBuild, {
    buildFlags = { "-p", "ARM64" },
    testFlags = { "-p", "ARM64" },
    cleanFlags = { "-p", "ARM64" },
    factory_tags = { "win-arm64" },
})
M.WindowsARM64Build = WindowsARM64Build

M.WindowsARM64ReleaseBuild = Class(WindowsARM64Build, {
    buildersuffix = ".nondebug",
    buildFlags = concat(WindowsARM64Build.buildFlags, { "-c", "Release" }),
    testFlags = concat(WindowsARM64Build.testFlags, { "+d" }),
    -- keep default cleanFlags, both configurations get cleaned
    factory_tags = { "win-arm64", "nondebug" },
})

-- ##############################  WASI BUILDS  #################################

local UnixCrossBuild = Class(UnixBuild, {
    extra_configure_flags = {},
    host_configure_cmd = { "../../configure" },
    host = nil,
    host_make_cmd = { "make" },
    can_execute_python = true,
})
M.UnixCrossBuild = UnixCrossBuild

function UnixCrossBuild:setup(branch, worker, test_with_PTY)
    assert(self.host ~= nil, "Must set self.host on cross builds")

    local out_of_tree_dir = "build_oot"
    local oot_dir_path = path_join("build", out_of_tree_dir)
    local oot_build_path = path_join(oot_dir_path, "build")
    local oot_host_path = path_join(oot_dir_path, "host")

    self:addStep(SetPropertyFromCommand {
        name = "Gather build triple from worker",
        description = "Get the build triple config.guess",
        command = "./config.guess",
        property = "build_triple",
        warnOnFailure = true,
    })

    -- Create out of tree directory for "build", the platform we are
    -- currently running on
    self:addStep(ShellCommand {
        name = "mkdir build out-of-tree directory",
        description = "Create build out-of-tree directory",
        command = { "mkdir", "-p", oot_build_path },
        warnOnFailure = true,
    })
    -- Create directory for "host", the platform we want to compile *for*
    self:addStep(ShellCommand {
        name = "mkdir host out-of-tree directory",
        description = "Create host out-of-tree directory",
        command = { "mkdir", "-p", oot_host_path },
        warnOnFailure = true,
    })

    -- First, we build the "build" Python, which we need to cross compile
    -- the "host" Python
    self:addStep(Configure {
        name = "Configure build Python",
        command = { "../../configure" },
        workdir = oot_build_path,
    })
    local compile = concat({ "make" }, get_j_opts(worker))

    self:addStep(Compile {
        name = "Compile build Python",
        command = compile,
        workdir = oot_build_path,
    })

    -- Now that we have a "build" architecture Python, we can use that
    -- to build a "host" (also known as the target we are cross compiling)
    local configure_cmd = concat(
        self.host_configure_cmd,
        { "--prefix", "$(PWD)/target/host" },
        self.configureFlags, self.extra_configure_flags,
        { bbm.interpolate("--build=%(prop:build_triple)s") },
        { "--host=" .. self.host },
        { "--with-build-python=../build/python" }
    )
    self:addStep(Configure {
        name = "Configure host Python",
        command = configure_cmd,
        env = self.compile_environ,
        workdir = oot_host_path,
    })

    local testopts = concat(self.testFlags, get_j_opts(worker, 2))
    if not has_option("-R", self.testFlags) then
        append(testopts, " --junit-xml", JUNIT_FILENAME)
    end

    local test = {
        "make",
        "buildbottest",
        "TESTOPTS=" .. table.concat(testopts, " ") .. " ${BUILDBOT_TESTOPTS}",
        "TESTPYTHONOPTS=" .. self.interpreterFlags,
        ("TESTTIMEOUT=%d"):format(int(self.test_timeout)),
    }

    compile = concat(self.host_make_cmd, get_j_opts(worker), { self.makeTarget })
    self:addStep(Compile {
        name = "Compile host Python",
        command = compile,
        env = self.compile_environ,
        workdir = oot_host_path,
    })
    if self.can_execute_python then
        self:addStep(PythonInfo {
            command = { "make", "pythoninfo" },
            env = self.test_environ,
            workdir = oot_host_path,
        })
        self:addStep(Test {
            command = test,
            timeout = step_timeout(self.test_timeout),
            usePTY = test_with_PTY,
            env = self.test_environ,
            workdir = oot_host_path,
        })
        if not branch.is_pr and not has_option("-R", self.testFlags) then
            local filename = path_join(oot_host_path, JUNIT_FILENAME)
            self:addStep(UploadTestResults(branch, filename))
        end
    end
    self:addStep(Clean {
        name = "Clean build Python",
        workdir = oot_build_path,
    })
    self:addStep(Clean {
        name = "Clean host Python",
        workdir = oot_host_path,
    })
end

-- Deprecated since Python 3.13; can be dropped once `wasi.py` is in all versions.
--[[ wasm32-wasi builder

* WASI SDK 21 must be installed at /opt/wasi-sdk-21.0
* wasmtime must be installed and on PATH
]]
local Wasm32WasiCrossBuild = Class(UnixCrossBuild, {
    buildersuffix = ".wasi.nondebug",
    factory_tags = { "wasm", "wasi", "nondebug" },
    extra_configure_flags = {
        -- debug builds exhaust the limited call stack on WASI
        "--without-pydebug",
    },
    host = "wasm32-unknown-wasi",
    host_configure_cmd = { "../../Tools/wasm/wasi-env", "../../configure" },

    -- See comment in _Wasm32WasiPreview1Build.init
    branches = BranchSet.of { BRANCHES:get(3, 11), BRANCHES:get(3, 12) },
})
M.Wasm32WasiCrossBuild = Wasm32WasiCrossBuild

function Wasm32WasiCrossBuild:setup(branch, worker, test_with_PTY)
    self:addStep(SetPropertyFromCommand {
        name = "Find config.site-wasm32-wasi",
        description = "Search Tools/wasm for config.site-wasm32-wasi",
        command = "find Tools/wasm -name config.site-wasm32-wasi",
        property = "config_site",
        warnOnFailure = true,
    })
    self.compile_environ = copy(UnixCrossBuild.compile_environ)
    self.compile_environ.CONFIG_SITE = bbm.interpolate("../../%(prop:config_site)s")
    self:addStep(ShellCommand {
        name = "Touch srcdir Modules/Setup.local",
        description = "Hack to work around wasmtime mapdir issue",
        command = { "touch", "Modules/Setup.local" },
        haltOnFailure = true,
    })
    self.compile_environ.WASI_SDK_PATH = "/opt/wasi-sdk-21.0"
    UnixCrossBuild.setup(self, branch, worker, test_with_PTY)
end

-- Build Python for wasm32-wasi using Tools/wasm/wasi.py.
local Wasm32WasiPreview1Build = Class(UnixBuild, {
    buildersuffix = ".wasi",
    factory_tags = { "wasm", "wasi" },
    -- pydebug and append_suffix defined in subclasses.
})

function Wasm32WasiPreview1Build:init(source, kwargs)
    local extra_tags = concat(kwargs.extra_tags or {})
    if not self.pydebug then
        append(extra_tags, "nondebug")
    end
    self.buildersuffix = self.buildersuffix .. self.append_suffix
    if self.pydebug then
        -- The debug buildbot is meant for 3.13+, where WASM is tier 2
        self.branches = BRANCHES:only_since(3, 13)
    else
        -- The non-debug WASI buildbot is meant for 3.11 and 3.12 only.
        -- Don't use it on PRs; it's tier 3 only and getting it to
        -- work on PRs against `main` is too much work.
        self.branches = BranchSet.of { BRANCHES:get(3, 11), BRANCHES:get(3, 12) }
    end
    UnixBuild.init(self, source, with(kwargs, { extra_tags = extra_tags }))
end

function Wasm32WasiPreview1Build:setup(branch, worker, test_with_PTY)
    local wasi_py = "Tools/wasm/wasi.py"
    local host_triple = "wasm32-wasip1"
    local host_path = "build/cross-build/" .. host_triple

    -- Build Python
    local build_configure = { "python3", wasi_py, "configure-build-python" }
    if self.pydebug then
        append(build_configure, "--", "--with-pydebug")
    end
    self:addStep(Configure {
        name = "Configure build Python",
        command = build_configure,
    })
    self:addStep(Compile {
        name = "Compile build Python",
        command = { "python3", wasi_py, "make-build-python" },
    })
    self:addStep(PythonInfo {
        name = "Display build info of the build Python",
        command = { "python3", wasi_py, "pythoninfo-build" },
    })

    -- Host/WASI Python
    -- Pydebug build automatically inferred from build Python.
    self:addStep(Configure {
        name = "Configure host Python",
        command = { "python3", wasi_py, "configure-host" },
    })
    self:addStep(Compile {
        name = "Compile host Python",
        command = { "python3", wasi_py, "make-host" },
    })

    self:addStep(PythonInfo {
        name = "Display build info of the host/WASI Python",
        command = { "python3", wasi_py, "pythoninfo-host" },
    })

    -- Copied from UnixBuild.
    local testopts = concat(self.testFlags, get_j_opts(worker, 2))
    if not has_option("-R", self.testFlags) then
        append(testopts, "--junit-xml", JUNIT_FILENAME)
    end
    local test = {
        "make",
        "buildbottest",
        "TESTOPTS=" .. table.concat(testopts, " ") .. " ${BUILDBOT_TESTOPTS}",
        "TESTPYTHONOPTS=" .. self.interpreterFlags,
        ("TESTTIMEOUT=%d"):format(int(self.test_timeout)),
    }
    self:addStep(Test {
        command = test,
        timeout = step_timeout(self.test_timeout),
        usePTY = test_with_PTY,
        env = self.test_environ,
        workdir = host_path,
    })
    if not branch.is_pr and not has_option("-R", self.testFlags) then
        local filename = path_join(host_path, JUNIT_FILENAME)
        self:addStep(UploadTestResults(branch, filename))
    end

    self:addStep(Clean {
        name = "Clean the builds",
        command = { "python3", wasi_py, "clean" },
    })
end

-- Preventing this from running on versions older than 3.13 is managed in
-- workers.lua.
M.Wasm32WasiPreview1DebugBuild = Class(Wasm32WasiPreview1Build, {
    append_suffix = ".debug",
    pydebug = true,
    testFlags = { "-u-cpu" },
})

-- ################################  IOS BUILDS  ################################

--[[ iOS Simulator build.

* Xcode must be installed, with all licenses accepted
* The iOS Simulator must be installed
* The ~buildbot/support/iphonesimulator.{arch} folder must be populated
  with pre-compiled builds of libFFI, XZ, Bzip2 and OpenSSL.

Subclasses should define `arch`.

This workflow is largely the same as the UnixCrossBuild, except that:
 * It has the required iOS configure options baked in
 * It isolates the build path so that Homebrew and other macOS libraries
   can't leak into the build
 * It adds the environment flags and configuration paths for the binary
   dependencies.
 * It installs the host python after build (which finalizes the Framework
   build)
 * It invokes `make testios` as a test target
]]
local IOSSimulatorBuild = Class(UnixBuild, {
    buildersuffix = ".iOS-simulator",
    ios_min_version = "", -- use the default from the configure file
    factory_tags = { "iOS" },
    extra_configure_flags = {},
    host_configure_cmd = { "../../configure" },
})

function IOSSimulatorBuild:init(source, kwargs)
    self.buildersuffix = self.buildersuffix .. "." .. self.arch
    self.host = ("%s-apple-ios%s-simulator"):format(self.arch, self.ios_min_version)
    UnixBuild.init(self, source, kwargs)
end

function IOSSimulatorBuild:py313_setup(branch, worker, test_with_PTY)
    local out_of_tree_dir = "build_oot"
    local oot_dir_path = path_join("build", out_of_tree_dir)
    local oot_build_path = path_join(oot_dir_path, "build")
    local oot_host_path = path_join(oot_dir_path, "host")

    local j_opts = get_j_opts(worker)

    -- Create out of tree directory for "build", the platform we are
    -- currently running on
    self:addStep(ShellCommand {
        name = "mkdir build out-of-tree directory",
        description = "Create build out-of-tree directory",
        command = { "mkdir", "-p", oot_build_path },
        warnOnFailure = true,
    })
    -- Create directory for "host", the platform we want to compile *for*
    self:addStep(ShellCommand {
        name = "mkdir host out-of-tree directory",
        description = "Create host out-of-tree directory",
        command = { "mkdir", "-p", oot_host_path },
        warnOnFailure = true,
    })

    -- First, we build the "build" Python, which we need to cross compile
    -- the "host" Python
    self:addStep(Configure {
        name = "Configure build Python",
        command = { "../../configure" },
        workdir = oot_build_path,
    })
    local compile = concat({ "make" }, j_opts)

    self:addStep(Compile {
        name = "Compile build Python",
        command = compile,
        workdir = oot_build_path,
    })

    -- Ensure the host path is isolated from Homebrew et al, but includes
    -- the host helper binaries. Also add the configuration paths for
    -- library dependencies.
    local support_path = "/Users/buildbot/support/iphonesimulator." .. self.arch
    local compile_environ = copy(self.compile_environ)
    compile_environ.PATH = table.concat({
        -- This is intentionally a relative path. Buildbot doesn't expose
        -- the absolute working directory where the build is running as
        -- something that can be expanded into an environment variable.
        "../../iOS/Resources/bin",
        "/usr/bin",
        "/bin",
        "/usr/sbin",
        "/sbin",
        "/Library/Apple/usr/bin",
    }, ":")
    compile_environ.LIBLZMA_CFLAGS = ("-I%s/xz/include"):format(support_path)
    compile_environ.LIBLZMA_LIBS = ("-L%s/xz/lib -llzma"):format(support_path)
    compile_environ.BZIP2_CFLAGS = ("-I%s/bzip2/include"):format(support_path)
    compile_environ.BZIP2_LIBS = ("-L%s/bzip2/lib -lbz2"):format(support_path)
    compile_environ.LIBFFI_CFLAGS = ("-I%s/libffi/include"):format(support_path)
    compile_environ.LIBFFI_LIBS = ("-L%s/libffi/lib -lffi"):format(support_path)

    -- Now that we have a "build" architecture Python, we can use that
    -- to build a "host" (also known as the target we are cross compiling)
    local configure_cmd = concat(self.host_configure_cmd, self.configureFlags,
        self.extra_configure_flags, {
            ("--with-openssl=%s/openssl"):format(support_path),
            ("--build=%s-apple-darwin"):format(self.arch),
            "--host=" .. self.host,
            "--with-build-python=../build/python.exe",
            "--enable-framework",
        })

    self:addStep(Configure {
        name = "Configure host Python",
        command = configure_cmd,
        env = compile_environ,
        workdir = oot_host_path,
    })

    compile = concat({ "make" }, j_opts, { self.makeTarget })
    local install = concat({ "make" }, j_opts, { "install" })

    self:addStep(Compile {
        name = "Compile host Python",
        command = compile,
        env = compile_environ,
        workdir = oot_host_path,
    })
    self:addStep(Compile {
        name = "Install host Python",
        command = install,
        env = compile_environ,
        workdir = oot_host_path,
    })
    self:addStep(Test {
        command = { "make", "testios" },
        timeout = step_timeout(self.test_timeout),
        usePTY = test_with_PTY,
        env = self.test_environ,
        workdir = oot_host_path,
    })

    self:addStep(Clean {
        name = "Clean build Python",
        workdir = oot_build_path,
    })
    self:addStep(Clean {
        name = "Clean host Python",
        workdir = oot_host_path,
    })
end

function IOSSimulatorBuild:current_setup(branch, worker, test_with_PTY)
    local apple_py = { "python3", "Platforms/Apple" }
    self:addSteps {
        -- This symlink is needed to support Python 3.14 builds - it makes the
        -- top level Apple folder appear in the new Platforms/Apple location.
        -- It will fail on 3.13 PR branches because the top level Apple folder
        -- doesn't exist. This step can be removed when 3.14 is no longer
        -- supported.
        ShellCommand {
            name = "Set up compatibility symlink",
            command = "if [ ! -e Platforms/Apple ]; then"
                .. " ln -s ../Apple Platforms/Apple; "
                .. "fi",
        },
        -- Build the full iOS XCframework, including a multi-arch simulator slice.
        Compile {
            name = "Configure and compile build Python",
            command = concat(apple_py, { "build", "iOS", "build" }),
        },
        Compile {
            name = "Configure and compile host Pythons",
            command = concat(apple_py, { "build", "iOS", "hosts" }),
        },
        Compile {
            name = "Package XCframework",
            command = concat(apple_py, { "package", "iOS" }),
        },
        Test {
            name = "Run test suite",
            command = {
                "python3",
                "Platforms/Apple",
                "test",
                "iOS",
                "--slow-ci",
            },
            timeout = step_timeout(self.test_timeout),
        },
        Clean {
            name = "Clean the builds",
            command = concat(apple_py, { "clean", "iOS" }),
        },
    }
end

function IOSSimulatorBuild:setup(branch, worker, test_with_PTY)
    -- Builds on Python 3.13 use a direct set of calls to make. Python 3.14
    -- introduced a simpler XCframework build script; Python 3.15 moved that
    -- script to the Platforms folder.
    --
    -- The `Platforms/Apple` location can be used for 3.14 builds with a
    -- symlink, but 3.13 builds have to used the build process.
    --
    -- The symlink approach will fail for Python 3.13 *PR* builds, because
    -- there's no way to identify the base branch for a PR.
    if branch.name == "3.13" then
        self:py313_setup(branch, worker, test_with_PTY)
    else
        self:current_setup(branch, worker, test_with_PTY)
    end
end

-- An ARM64 iOS simulator build.
M.IOSARM64SimulatorBuild = Class(IOSSimulatorBuild, {
    arch = "arm64",
})

-- ##############################  ANDROID BUILDS  ##############################

--[[ Build Python for Android on a Linux or Mac machine, and test it using a
Gradle-managed emulator.

To set up a worker, see cpython/Android/README.md, especially the following
sections:

* Install everything listed under "Prerequisites".
* Do any OS-specific setup mentioned under "Testing".
* If the managed emulator appears to be running out of memory, increase
  its RAM size as described under "Testing".
]]
local AndroidBuild = Class(BaseBuild)
M.AndroidBuild = AndroidBuild

-- a renderer (@util.renderer): the host triple for the build triple the worker guessed
function AndroidBuild.host_triple(props)
    local build_triple = props:getProperty("build_triple")
    return build_triple:match("^[^-]*") .. "-linux-android"
end

function AndroidBuild:setup()
    local android_py = { "python3", "Platforms/Android" }
    self:addSteps {
        -- This symlink is needed to support pre Python 3.15 builds - it makes the
        -- top level Android folder appear in the new Platforms/Android location,
        -- and links `__main__.py` to the older `android.py` script. This step can
        -- be removed when 3.14 is no longer supported.
        ShellCommand {
            name = "Set up compatibility symlink",
            command = "if [ ! -e Platforms/Android ]; then"
                .. " mkdir -p Platforms;"
                .. " ln -s ../Android Platforms/Android;"
                .. " ln -s ./android.py Platforms/Android/__main__.py; "
                .. "fi",
        },
        SetPropertyFromCommand {
            name = "Get build triple",
            command = { "./config.guess" },
            property = "build_triple",
            haltOnFailure = true,
        },
        Configure {
            name = "Configure build Python",
            command = concat(android_py, { "configure-build" }),
        },
        Compile {
            name = "Compile build Python",
            command = concat(android_py, { "make-build" }),
        },
        PythonInfo {
            name = "Display build info of the build Python",
            command = concat(android_py, { "pythoninfo-build" }),
        },
        Configure {
            name = "Configure host/Android Python",
            command = concat(android_py, { "configure-host", self.host_triple }),
        },
        Compile {
            name = "Compile host/Android Python",
            command = concat(android_py, { "make-host", self.host_triple }),
        },
        Test {
            command = concat(android_py, { "test", "--managed", "maxVersion", "-v", "--slow-ci" }),
            timeout = step_timeout(self.test_timeout),
        },
    }
end

-- ############################  VALGRIND BUILDS  ###############################

local ValgrindBuild = Class(UnixBuild, {
    buildersuffix = ".valgrind",
    configureFlags = {
        "--with-pydebug",
        "--with-valgrind",
        "--without-pymalloc",
    },
    testFlags = {
        "test_grammar",
        "test_syntax",
        "test_tokenize",
        "test_fstring",
        "test_ast",
        "test_exceptions",
    },
    factory_tags = { "valgrind" },
    test_timeout = TEST_TIMEOUT * 5,
})
M.ValgrindBuild = ValgrindBuild

function ValgrindBuild:setup(branch, worker)
    self:addStep(Configure {
        command = concat({ "./configure", "--prefix", "$(PWD)/target" }, self.configureFlags),
    })

    local compile = concat({ "make" }, get_j_opts(worker), { self.makeTarget })

    self:addStep(Compile { command = compile, env = self.compile_environ })

    self:addStep(PythonInfo {
        command = { "make", "pythoninfo" },
        env = self.test_environ,
    })

    local test = concat({
        "valgrind",
        "--leak-check=full",
        "--show-leak-kinds=definite",
        "--error-exitcode=10",
        "--gen-suppressions=all",
        "--track-origins=yes",
        "--trace-children=no",
        bbm.interpolate("--suppressions=%(prop:builddir)s/build/Misc/valgrind-python.supp"),
        "./python",
        "-m", "test",
    }, self.testFlags, { ("--timeout=%d"):format(int(self.test_timeout)) })

    self:addStep(Test {
        command = test,
        timeout = step_timeout(self.test_timeout),
        env = self.test_environ,
    })

    self:addStep(Clean())
end

-- ###########################  EMSCRIPTEN BUILDS  ##############################

--[[ Emscripten build.

* The Emscripten SDK must be installed, and configured to use the SDK
  version required by the current main PR.
]]
local EmscriptenBuild = Class(BaseBuild, {
    buildersuffix = ".emscripten",
    factory_tags = { "emscripten" },
})
M.EmscriptenBuild = EmscriptenBuild

function EmscriptenBuild:setup()
    local compile_environ = {
        EMSDK_CACHE = "/home/emscripten/emsdk-versions",
    }

    self:addSteps {
        Configure {
            name = "Install emscripten (if needed)",
            command = { "python3", "Platforms/emscripten", "install-emscripten" },
            env = compile_environ,
        },
        Configure {
            name = "Configure build Python",
            command = { "python3", "Platforms/emscripten", "configure-build-python" },
            env = compile_environ,
        },
        Compile {
            name = "Compile build Python",
            command = { "python3", "Platforms/emscripten", "make-build-python" },
            env = compile_environ,
        },
        PythonInfo {
            name = "Display build info of the build Python",
            command = {
                "python3", "Platforms/emscripten", "pythoninfo-build",
            },
            env = compile_environ,
        },
        Compile {
            name = "Compile host dependencies (if needed)",
            command = { "python3", "Platforms/emscripten", "make-dependencies" },
            env = compile_environ,
        },
        Configure {
            name = "Configure host/Emscripten Python",
            command = { "python3", "Platforms/emscripten", "configure-host" },
            env = compile_environ,
        },
        Compile {
            name = "Compile host/Emscripten Python",
            command = { "python3", "Platforms/emscripten", "make-host" },
            env = compile_environ,
        },
        PythonInfo {
            name = "Display build info of the host/Emscripten Python",
            command = {
                "python3", "Platforms/emscripten", "pythoninfo-host",
            },
            env = compile_environ,
        },
        Test {
            name = "Node full test suite",
            command = {
                "python3",
                "Platforms/emscripten",
                "run",
                "--test",
            },
            env = compile_environ,
            timeout = step_timeout(self.test_timeout),
        },
        Test {
            name = "PyRepl in Chrome smoke test",
            command = {
                "Platforms/emscripten/browser_test/run_test.sh",
            },
            env = compile_environ,
            timeout = step_timeout(self.test_timeout),
        },
        Clean {
            name = "Clean the builds",
            command = { "python3", "Platforms/emscripten", "clean" },
            env = compile_environ,
        },
    }
end

return M
