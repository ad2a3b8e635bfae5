--[[
custom/builders.py: the builder definitions.  master.lua turns each definition into
several builders (one per branch).
]]

local factories = require "custom.factories"
local branches = require "custom.branches"

local BRANCHES, MAIN_BRANCH, PR_BRANCH = branches.BRANCHES, branches.MAIN_BRANCH, branches.PR_BRANCH
local BranchSet = branches.BranchSet

-- A builder can be marked as stable when at least the 10 latest builds are
-- successful, but it's way better to wait at least for at least one week of
-- successful builds before considering to mark a builder as stable.
local STABLE = "stable"

-- New builders should always be marked as unstable. If a stable builder starts
-- to fail randomly, it can be downgraded to unstable if it is not a Tier-1 or
-- Tier-2 builder.
local UNSTABLE = "unstable"

-- https://peps.python.org/pep-0011/ defines Platform Support Tiers
local TIER_1 = "tier-1"
local TIER_2 = "tier-2"
local TIER_3 = "tier-3"

-- linguistic hack: this sorts after 'tier-#' alphabetically
local NO_TIER = "tierless"

-- A set of tags as a sorted list without duplicates (Python's frozenset, in an order
-- that does not change from one load to the next).
local function tag_set(tags)
    local seen, out = {}, {}
    for _, t in ipairs(tags) do
        if not seen[t] then
            seen[t] = true
            out[#out + 1] = t
        end
    end
    table.sort(out)
    return out
end

local function get_tier_from_tags(tags)
    -- Get the first (highest) of the tier flags
    local tiers = {}
    for _, t in ipairs(tags) do
        if t == TIER_1 or t == TIER_2 or t == TIER_3 then
            tiers[#tiers + 1] = t
        end
    end
    table.sort(tiers)
    return tiers[1] or NO_TIER
end

--[[ Definition for a builder: BuilderDef { name =, factory =, tags =, worker_name =,
branches = } (branches defaults to BRANCHES).  def:tier() and def:stability() as the
original's properties. ]]
local BuilderDef = {}
BuilderDef.__index = BuilderDef
setmetatable(BuilderDef, {
    __call = function(_, o)
        return setmetatable({
            name = assert(o.name, "BuilderDef: name"),
            factory = assert(o.factory, "BuilderDef " .. o.name .. ": factory"),
            worker_name = assert(o.worker_name, "BuilderDef " .. o.name .. ": worker_name"),
            tags = tag_set(assert(o.tags, "BuilderDef " .. o.name .. ": tags")),
            branches = o.branches or BRANCHES,
        }, BuilderDef)
    end,
})

function BuilderDef:tier()
    return get_tier_from_tags(self.tags)
end

function BuilderDef:stability()
    for _, t in ipairs(self.tags) do
        if t == STABLE then
            return STABLE
        end
    end
    return UNSTABLE
end

local function extend(list, more)
    for _, v in ipairs(more) do
        list[#list + 1] = v
    end
end

local function is_subset(a, b)
    local set = {}
    for _, t in ipairs(b) do
        set[t] = true
    end
    for _, t in ipairs(a) do
        if not set[t] then
            return false
        end
    end
    return true
end

-- The entries of one group (a stability and a tier): { name, worker_name, factory }, or a
-- BuilderDef whose tags are among the group's.
local function generate_builderdefs(tags, entries)
    tags = tag_set(tags)
    local out = {}
    for _, entry in ipairs(entries) do
        if getmetatable(entry) == BuilderDef then
            if not is_subset(entry.tags, tags) then
                error(("%s is in the wrong generate_builderdefs call; "
                    .. "move it to the main BUILDER_DEFS list above"):format(entry.name), 2)
            end
            out[#out + 1] = entry
        else
            local name, worker_name, factory = entry[1], entry[2], entry[3]
            out[#out + 1] = BuilderDef {
                name = name, factory = factory, tags = tags, worker_name = worker_name,
            }
        end
    end
    return out
end

-- -- Dataclass-based builders -------------------------------------------

-- For now, most builders are defined in "generate_builderdefs" calls below,
-- grouped by stability and tier.
-- Feel free to convert them to a `BuilderDef` call and move them here when
-- updating them (e.g. changing stability)

local BUILDER_DEFS = {
    -- Tests that require the 'tzdata' and 'xpickle' resources
    BuilderDef {
        name = "aarch64 Ubuntu Oddballs",
        factory = factories.UnixOddballsBuild,
        tags = { STABLE, TIER_1 },
        worker_name = "stan-aarch64-ubuntu",
    },
    BuilderDef {
        name = "AMD64 Windows Server 2025 Clang",
        factory = factories.Windows64ClangBuild,
        tags = { UNSTABLE, NO_TIER },
        worker_name = "ware-ws2025",
    },
    BuilderDef {
        name = "AMD64 Windows Server 2025 Refleaks",
        factory = factories.Windows64RefleakBuild,
        tags = { STABLE, TIER_1 },
        worker_name = "ware-ws2025",
        branches = BRANCHES:only_since(3, 13),
    },
    BuilderDef {
        name = "AMD64 Windows PGO",
        factory = factories.Windows64PGOBuild,
        tags = { STABLE, TIER_1 },
        worker_name = "bolen-windows10",
        branches = BranchSet.of { MAIN_BRANCH, PR_BRANCH },
    },
}

-- -- Stable Tier-1 builder ----------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ STABLE, TIER_1 }, {
    -- Linux x86-64 GCC
    { "AMD64 Debian root", "angelico-debian-amd64", factories.UnixBuild },

    { "AMD64 Ubuntu Shared", "bolen-ubuntu", factories.SharedUnixBuild },
    { "AMD64 Fedora Stable", "cstratak-fedora-stable-x86_64", factories.FedoraStableBuild },
    { "AMD64 Fedora Stable Refleaks", "cstratak-fedora-stable-x86_64", factories.UnixRefleakBuild },
    { "AMD64 Fedora Stable LTO", "cstratak-fedora-stable-x86_64", factories.LTONonDebugUnixBuild },
    { "AMD64 Fedora Stable LTO + PGO", "cstratak-fedora-stable-x86_64", factories.LTOPGONonDebugBuild },
    { "AMD64 RHEL8", "cstratak-RHEL8-x86_64", factories.RHEL8Build },
    { "AMD64 RHEL8 Refleaks", "cstratak-RHEL8-x86_64", factories.UnixRefleakBuild },
    { "AMD64 RHEL8 LTO", "cstratak-RHEL8-x86_64", factories.LTONonDebugUnixBuild },
    { "AMD64 RHEL8 LTO + PGO", "cstratak-RHEL8-x86_64", factories.LTOPGONonDebugBuild },
    { "AMD64 CentOS9", "cstratak-CentOS9-x86_64", factories.CentOS9Build },
    { "AMD64 CentOS9 Refleaks", "cstratak-CentOS9-x86_64", factories.UnixRefleakBuild },
    { "AMD64 CentOS9 LTO", "cstratak-CentOS9-x86_64", factories.LTONonDebugUnixBuild },
    { "AMD64 CentOS9 LTO + PGO", "cstratak-CentOS9-x86_64", factories.LTOPGONonDebugBuild },
    { "AMD64 CentOS9 NoGIL", "itamaro-centos-aws", factories.UnixNoGilBuild },
    { "AMD64 CentOS9 NoGIL Refleaks", "itamaro-centos-aws", factories.UnixNoGilRefleakBuild },

    -- Windows x86-64 MSVC
    { "AMD64 Windows10", "bolen-windows10", factories.Windows64Build },
    { "AMD64 Windows11 Non-Debug", "ware-win11", factories.Windows64ReleaseBuild },
    BuilderDef {
        name = "AMD64 Windows11 Refleaks",
        factory = factories.Windows64RefleakBuild,
        tags = { STABLE, TIER_1 },
        worker_name = "ware-win11",
        branches = BRANCHES:only_until(3, 12),
    },
    { "AMD64 Windows Server 2022 NoGIL", "itamaro-win64-srv-22-aws", factories.Windows64NoGilBuild },
    BuilderDef {
        name = "AMD64 Windows PGO Tailcall",
        factory = factories.Windows64PGOTailcallBuild,
        tags = { STABLE, TIER_1 },
        worker_name = "itamaro-win64-srv-22-aws",
        branches = BranchSet.of { MAIN_BRANCH, PR_BRANCH },
    },
    BuilderDef {
        name = "AMD64 Windows PGO NoGIL",
        factory = factories.Windows64PGONoGilBuild,
        tags = { STABLE, TIER_1 },
        worker_name = "itamaro-win64-srv-22-aws",
        branches = BranchSet.of { MAIN_BRANCH, PR_BRANCH },
    },
    BuilderDef {
        name = "AMD64 Windows PGO NoGIL Tailcall",
        factory = factories.Windows64PGONoGilTailcallBuild,
        tags = { STABLE, TIER_1 },
        worker_name = "itamaro-win64-srv-22-aws",
        branches = BranchSet.of { MAIN_BRANCH, PR_BRANCH },
    },
}))

-- -- Stable Tier-2 builder ----------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ STABLE, TIER_2 }, {
    -- Fedora Linux x86-64 Clang
    { "AMD64 Fedora Stable Clang", "cstratak-fedora-stable-x86_64", factories.ClangUnixBuild },
    { "AMD64 Fedora Stable Clang Installed", "cstratak-fedora-stable-x86_64", factories.ClangUnixInstalledBuild },

    -- Fedora Linux ppc64le GCC
    { "PPC64LE Fedora Stable", "cstratak-fedora-stable-ppc64le", factories.FedoraStableBuild },
    { "PPC64LE Fedora Stable Refleaks", "cstratak-fedora-stable-ppc64le", factories.UnixRefleakBuild },
    { "PPC64LE Fedora Stable LTO", "cstratak-fedora-stable-ppc64le", factories.LTONonDebugUnixBuild },
    { "PPC64LE Fedora Stable LTO + PGO", "cstratak-fedora-stable-ppc64le", factories.LTOPGONonDebugBuild },

    -- RHEL8 ppc64le GCC
    { "PPC64LE RHEL8", "cstratak-RHEL8-ppc64le", factories.RHEL8Build },
    { "PPC64LE RHEL8 Refleaks", "cstratak-RHEL8-ppc64le", factories.UnixRefleakBuild },
    { "PPC64LE RHEL8 LTO", "cstratak-RHEL8-ppc64le", factories.LTONonDebugUnixBuild },
    { "PPC64LE RHEL8 LTO + PGO", "cstratak-RHEL8-ppc64le", factories.LTOPGONonDebugBuild },

    -- CentOS Stream 9 Linux ppc64le GCC
    { "PPC64LE CentOS9", "cstratak-CentOS9-ppc64le", factories.CentOS9Build },
    { "PPC64LE CentOS9 Refleaks", "cstratak-CentOS9-ppc64le", factories.UnixRefleakBuild },
    { "PPC64LE CentOS9 LTO", "cstratak-CentOS9-ppc64le", factories.LTONonDebugUnixBuild },
    { "PPC64LE CentOS9 LTO + PGO", "cstratak-CentOS9-ppc64le", factories.LTOPGONonDebugBuild },

    -- Fedora Linux aarch64 GCC/Clang
    { "aarch64 Fedora Stable", "cstratak-fedora-stable-aarch64", factories.FedoraStableBuild },
    { "aarch64 Fedora Stable Refleaks", "cstratak-fedora-stable-aarch64", factories.UnixRefleakBuild },
    { "aarch64 Fedora Stable Clang", "cstratak-fedora-stable-aarch64", factories.ClangUnixBuild },
    { "aarch64 Fedora Stable Clang Installed", "cstratak-fedora-stable-aarch64", factories.ClangUnixInstalledBuild },
    { "aarch64 Fedora Stable LTO", "cstratak-fedora-stable-aarch64", factories.LTONonDebugUnixBuild },
    { "aarch64 Fedora Stable LTO + PGO", "cstratak-fedora-stable-aarch64", factories.LTOPGONonDebugBuild },

    -- RHEL8 aarch64 GCC
    { "aarch64 RHEL8", "cstratak-RHEL8-aarch64", factories.RHEL8Build },
    { "aarch64 RHEL8 Refleaks", "cstratak-RHEL8-aarch64", factories.UnixRefleakBuild },
    { "aarch64 RHEL8 LTO", "cstratak-RHEL8-aarch64", factories.LTONonDebugUnixBuild },
    { "aarch64 RHEL8 LTO + PGO", "cstratak-RHEL8-aarch64", factories.LTOPGONonDebugBuild },

    -- CentOS Stream 9 Linux aarch64 GCC
    { "aarch64 CentOS9", "cstratak-CentOS9-aarch64", factories.CentOS9Build },
    { "aarch64 CentOS9 Refleaks", "cstratak-CentOS9-aarch64", factories.UnixRefleakBuild },
    { "aarch64 CentOS9 LTO", "cstratak-CentOS9-aarch64", factories.LTONonDebugUnixBuild },
    { "aarch64 CentOS9 LTO + PGO", "cstratak-CentOS9-aarch64", factories.LTOPGONonDebugBuild },

    -- macOS aarch64 clang
    { "ARM64 macOS", "pablogsal-macos-m1", factories.MacOSArmWithBrewBuild },
    { "ARM64 MacOS M1 NoGIL", "itamaro-macos-arm64-aws", factories.MacOSArmWithBrewNoGilBuild },
    { "ARM64 MacOS M1 Refleaks NoGIL", "itamaro-macos-arm64-aws", factories.MacOSArmWithBrewNoGilRefleakBuild },

    -- macOS x86-64 clang
    { "x86-64 macOS", "billenstein-macos", factories.UnixBuild },
    { "x86-64 MacOS Intel NoGIL", "itamaro-macos-intel-aws", factories.UnixNoGilBuild },
    { "x86-64 MacOS Intel ASAN NoGIL", "itamaro-macos-intel-aws", factories.MacOSAsanNoGilBuild },

    -- WASI
    { "wasm32-wasi Non-Debug", "bcannon-wasi", factories.Wasm32WasiCrossBuild },
    { "wasm32-wasi", "bcannon-wasi", factories.Wasm32WasiPreview1DebugBuild },

    -- Windows aarch64 MSVC
    { "ARM64 Windows", "ware-win11-arm64", factories.WindowsARM64Build },
    { "ARM64 Windows Non-Debug", "ware-win11-arm64", factories.WindowsARM64ReleaseBuild },

}))

-- -- Stable Tier-3 builder ----------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ STABLE, TIER_3 }, {

    -- Fedora Linux s390x GCC/Clang
    { "s390x Fedora Stable", "cstratak-fedora-stable-s390x", factories.UnixBuild },
    { "s390x Fedora Stable Refleaks", "cstratak-fedora-stable-s390x", factories.UnixRefleakBuild },
    { "s390x Fedora Stable Clang", "cstratak-fedora-stable-s390x", factories.ClangUnixBuild },
    { "s390x Fedora Stable Clang Installed", "cstratak-fedora-stable-s390x", factories.ClangUnixInstalledBuild },
    { "s390x Fedora Stable LTO", "cstratak-fedora-stable-s390x", factories.LTONonDebugUnixBuild },
    { "s390x Fedora Stable LTO + PGO", "cstratak-fedora-stable-s390x", factories.LTOPGONonDebugBuild },

    -- RHEL9 GCC
    { "s390x RHEL9", "cstratak-rhel9-s390x", factories.UnixBuild },
    { "s390x RHEL9 Refleaks", "cstratak-rhel9-s390x", factories.UnixRefleakBuild },
    { "s390x RHEL9 LTO", "cstratak-rhel9-s390x", factories.LTONonDebugUnixBuild },
    { "s390x RHEL9 LTO + PGO", "cstratak-rhel9-s390x", factories.LTOPGONonDebugBuild },

    -- RHEL8 GCC
    { "s390x RHEL8", "cstratak-rhel8-s390x", factories.UnixBuild },
    { "s390x RHEL8 Refleaks", "cstratak-rhel8-s390x", factories.UnixRefleakBuild },
    { "s390x RHEL8 LTO", "cstratak-rhel8-s390x", factories.LTONonDebugUnixBuild },
    { "s390x RHEL8 LTO + PGO", "cstratak-rhel8-s390x", factories.LTOPGONonDebugBuild },

    -- Fedora Linux ppc64le Clang
    { "PPC64LE Fedora Stable Clang", "cstratak-fedora-stable-ppc64le", factories.ClangUnixBuild },
    { "PPC64LE Fedora Stable Clang Installed", "cstratak-fedora-stable-ppc64le", factories.ClangUnixInstalledBuild },

    -- Linux armv7l (32-bit) GCC
    { "ARM Raspbian", "gps-raspbian", factories.SlowNonDebugUnixBuild15BitDigits },

    -- Linux armv8 (64-bit) GCC
    { "ARM64 Raspbian", "stan-raspbian", factories.SlowNonDebugUnixBuild },
    { "ARM64 Raspbian Debug", "savannah-raspbian", factories.SlowDebugUnixBuild },

    -- FreBSD x86-64 clang
    { "AMD64 FreeBSD Refleaks", "opsec-fbsd14", factories.UnixRefleakBuild },
    { "AMD64 FreeBSD14", "opsec-fbsd14", factories.UnixBuild },

    -- iOS
    { "iOS ARM64 Simulator", "rkm-arm64-ios-simulator", factories.IOSARM64SimulatorBuild },

    -- Android
    { "aarch64 Android", "mhsmith-android-aarch64", factories.AndroidBuild },
    { "AMD64 Android", "mhsmith-android-x86_64", factories.AndroidBuild },

    -- Emscripten
    { "WASM Emscripten", "rkm-emscripten", factories.EmscriptenBuild },
}))

-- -- Stable No Tier builders --------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ STABLE }, {
    -- Linux x86-64 GCC musl
    { "AMD64 Alpine Linux", "ware-alpine", factories.UnixBuild },
    -- Linux x86-64 GCC musl Freethreading
    { "AMD64 Alpine Linux NoGIL", "ware-alpine", factories.UnixNoGilBuild },

    -- Linux x86-64 GCC/Clang
    -- Special builds: FIPS, ASAN, UBSAN, TraceRefs, Perf, etc.
    { "AMD64 RHEL8 FIPS Only Blake2 Builtin Hash", "cstratak-RHEL8-fips-x86_64", factories.RHEL8NoBuiltinHashesUnixBuildExceptBlake2 },
    { "AMD64 Arch Linux Asan", "pablogsal-arch-x86_64", factories.UnixAsanBuild },
    { "AMD64 Arch Linux Asan Debug", "pablogsal-arch-x86_64", factories.UnixAsanDebugBuild },
    { "AMD64 Arch Linux TraceRefs", "pablogsal-arch-x86_64", factories.UnixTraceRefsBuild },
    BuilderDef {
        name = "AMD64 Arch Linux Perf",
        factory = factories.UnixPerfBuild,
        tags = { STABLE },
        worker_name = "pablogsal-arch-x86_64",
        branches = BranchSet.of { MAIN_BRANCH, PR_BRANCH },
    },
    -- UBSAN with -fno-sanitize=function, without which we currently fail (as
    --  tracked in gh-111178). The full "AMD64 Arch Linux Usan" is unstable, below
    { "AMD64 Arch Linux Usan Function", "pablogsal-arch-x86_64", factories.ClangUbsanFunctionLinuxBuild },

    -- Linux x86 (32-bit) GCC
    { "x86 Debian Non-Debug with X", "ware-debian-x86", factories.NonDebugUnixBuild },
    { "x86 Debian Installed with X", "ware-debian-x86", factories.UnixInstalledBuild },

    -- RISC-V 64-bit GCC/Clang
    { "riscv64 Ubuntu", "onder-riscv64", factories.SlowUnixInstalledBuild },
    { "RISC-V 64-bit Ubuntu", "rise-riscv64-4", factories.SlowDebugUnixBuild },
    { "RISC-V 64-bit Ubuntu Clang", "rise-riscv64-2", factories.SlowClangUnixBuild },
}))

-- -- Unstable Tier-1 builders -------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ UNSTABLE, TIER_1 }, {
    -- Ubuntu Linux AArch64
    { "aarch64 Ubuntu 24.04 BigMem", "diegorusso-aarch64-bigmem", factories.UnixBigmemBuild },

    -- Linux x86-64 GCC
    -- Fedora Rawhide is unstable
    { "AMD64 Fedora Rawhide", "cstratak-fedora-rawhide-x86_64", factories.FedoraRawhideBuild },
    { "AMD64 Fedora Rawhide Refleaks", "cstratak-fedora-rawhide-x86_64", factories.UnixRefleakBuild },
    { "AMD64 Fedora Rawhide LTO", "cstratak-fedora-rawhide-x86_64", factories.LTONonDebugUnixBuild },
    { "AMD64 Fedora Rawhide LTO + PGO", "cstratak-fedora-rawhide-x86_64", factories.LTOPGONonDebugBuild },

    { "AMD64 Ubuntu", "skumaran-ubuntu-x86_64", factories.UnixBuild },

    { "AMD64 RHEL8 FIPS No Builtin Hashes", "cstratak-RHEL8-fips-x86_64", factories.RHEL8NoBuiltinHashesUnixBuild },

    { "AMD64 CentOS9 FIPS Only Blake2 Builtin Hash", "cstratak-CentOS9-fips-x86_64", factories.CentOS9NoBuiltinHashesUnixBuildExceptBlake2 },
    { "AMD64 CentOS9 FIPS No Builtin Hashes", "cstratak-CentOS9-fips-x86_64", factories.CentOS9NoBuiltinHashesUnixBuild },

    BuilderDef {
        name = "AMD64 Arch Linux Valgrind",
        factory = factories.ValgrindBuild,
        tags = { UNSTABLE, TIER_1 },
        worker_name = "pablogsal-arch-x86_64",
        branches = BranchSet.of { MAIN_BRANCH, PR_BRANCH },
    },
}))

-- -- Unstable Tier-2 builders -------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ UNSTABLE, TIER_2 }, {
    -- Linux x86-64 Clang
    -- Fedora Rawhide is unstable
    -- UBSan is a special build
    { "AMD64 Fedora Rawhide Clang", "cstratak-fedora-rawhide-x86_64", factories.ClangUnixBuild },
    { "AMD64 Fedora Rawhide Clang Installed", "cstratak-fedora-rawhide-x86_64", factories.ClangUnixInstalledBuild },

    -- Fedora Linux ppc64le GCC
    -- Fedora Rawhide is unstable
    { "PPC64LE Fedora Rawhide", "cstratak-fedora-rawhide-ppc64le", factories.FedoraRawhideBuild },
    { "PPC64LE Fedora Rawhide Refleaks", "cstratak-fedora-rawhide-ppc64le", factories.UnixRefleakBuild },
    { "PPC64LE Fedora Rawhide LTO", "cstratak-fedora-rawhide-ppc64le", factories.LTONonDebugUnixBuild },
    { "PPC64LE Fedora Rawhide LTO + PGO", "cstratak-fedora-rawhide-ppc64le", factories.LTOPGONonDebugBuild },

    -- Fedora Linux aarch64 GCC/Clang
    -- Fedora Rawhide is unstable
    { "aarch64 Fedora Rawhide", "cstratak-fedora-rawhide-aarch64", factories.FedoraRawhideBuild },
    { "aarch64 Fedora Rawhide Refleaks", "cstratak-fedora-rawhide-aarch64", factories.UnixRefleakBuild },
    { "aarch64 Fedora Rawhide Clang", "cstratak-fedora-rawhide-aarch64", factories.ClangUnixBuild },
    { "aarch64 Fedora Rawhide Clang Installed", "cstratak-fedora-rawhide-aarch64", factories.ClangUnixInstalledBuild },
    { "aarch64 Fedora Rawhide LTO", "cstratak-fedora-rawhide-aarch64", factories.LTONonDebugUnixBuild },
    { "aarch64 Fedora Rawhide LTO + PGO", "cstratak-fedora-rawhide-aarch64", factories.LTOPGONonDebugBuild },

    -- CentOS Stream 10 Linux aarch64 GCC/Clang
    { "aarch64 CentOS10", "cstratak-CentOS10-aarch64", factories.CentOS10Build },
    { "aarch64 CentOS10 Refleaks", "cstratak-CentOS10-aarch64", factories.UnixRefleakBuild },
    { "aarch64 CentOS10 Clang", "cstratak-CentOS10-aarch64", factories.ClangUnixBuild },
    { "aarch64 CentOS10 Clang Installed", "cstratak-CentOS10-aarch64", factories.ClangUnixInstalledBuild },
    { "aarch64 CentOS10 LTO", "cstratak-CentOS10-aarch64", factories.LTONonDebugUnixBuild },
    { "aarch64 CentOS10 LTO + PGO", "cstratak-CentOS10-aarch64", factories.LTOPGONonDebugBuild },

    -- WebAssembly
    { "wasm32 WASI 8Core", "kushaldas-wasi", factories.Wasm32WasiCrossBuild },
}))

-- -- Unstable Tier-3 builders -------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ UNSTABLE, TIER_3 }, {
    -- Linux ppc64le Clang
    -- Fedora Rawhide is unstable
    { "PPC64LE Fedora Rawhide Clang", "cstratak-fedora-rawhide-ppc64le", factories.ClangUnixBuild },
    { "PPC64LE Fedora Rawhide Clang Installed", "cstratak-fedora-rawhide-ppc64le", factories.ClangUnixInstalledBuild },

    -- Linux s390x GCC/Clang
    { "s390x Fedora Rawhide", "cstratak-fedora-rawhide-s390x", factories.UnixBuild },
    { "s390x Fedora Rawhide Refleaks", "cstratak-fedora-rawhide-s390x", factories.UnixRefleakBuild },
    { "s390x Fedora Rawhide Clang", "cstratak-fedora-rawhide-s390x", factories.ClangUnixBuild },
    { "s390x Fedora Rawhide Clang Installed", "cstratak-fedora-rawhide-s390x", factories.ClangUnixInstalledBuild },
    { "s390x Fedora Rawhide LTO", "cstratak-fedora-rawhide-s390x", factories.LTONonDebugUnixBuild },
    { "s390x Fedora Rawhide LTO + PGO", "cstratak-fedora-rawhide-s390x", factories.LTOPGONonDebugBuild },

    -- CentOS Stream 10 Linux s390x GCC/Clang
    { "s390x CentOS10", "cstratak-c10s-s390x", factories.CentOS10Build },
    { "s390x CentOS10 Refleaks", "cstratak-c10s-s390x", factories.UnixRefleakBuild },
    { "s390x CentOS10 Clang", "cstratak-c10s-s390x", factories.ClangUnixBuild },
    { "s390x CentOS10 Clang Installed", "cstratak-c10s-s390x", factories.ClangUnixInstalledBuild },
    { "s390x CentOS10 LTO", "cstratak-c10s-s390x", factories.LTONonDebugUnixBuild },
    { "s390x CentOS10 LTO + PGO", "cstratak-c10s-s390x", factories.LTOPGONonDebugBuild },

    -- FreeBSD x86-64 clang
    -- FreeBSD 15 is CURRENT: development branch (at 2023-10-17)
    { "AMD64 FreeBSD15", "opsec-fbsd15", factories.UnixBuild },
    -- FreeBSD 16 is CURRENT: development branch (at 2026-01-09)
    { "AMD64 FreeBSD16", "opsec-fbsd16", factories.UnixBuild },

}))

-- -- Unstable No Tier builders ------------------------------------------
extend(BUILDER_DEFS, generate_builderdefs({ UNSTABLE }, {
    -- Linux GCC Fedora Rawhide Freethreading builders
    { "AMD64 Fedora Rawhide NoGIL", "cstratak-fedora-rawhide-x86_64", factories.FedoraRawhideFreedthreadingBuild },
    { "aarch64 Fedora Rawhide NoGIL", "cstratak-fedora-rawhide-aarch64", factories.FedoraRawhideFreedthreadingBuild },
    { "PPC64LE Fedora Rawhide NoGIL", "cstratak-fedora-rawhide-ppc64le", factories.FedoraRawhideFreedthreadingBuild },
    { "s390x Fedora Rawhide NoGIL", "cstratak-fedora-rawhide-s390x", factories.FedoraRawhideFreedthreadingBuild },
    -- Linux GCC Fedora Rawhide Freethreading refleak builders
    { "AMD64 Fedora Rawhide NoGIL refleaks", "cstratak-fedora-rawhide-x86_64", factories.UnixNoGilRefleakBuild },
    { "aarch64 Fedora Rawhide NoGIL refleaks", "cstratak-fedora-rawhide-aarch64", factories.UnixNoGilRefleakBuild },
    { "PPC64LE Fedora Rawhide NoGIL refleaks", "cstratak-fedora-rawhide-ppc64le", factories.UnixNoGilRefleakBuild },
    { "s390x Fedora Rawhide NoGIL refleaks", "cstratak-fedora-rawhide-s390x", factories.UnixNoGilRefleakBuild },

    -- Linux x86-64 NixOS Unstable
    { "AMD64 NixOS Unstable", "malvex-nixos-x86_64", factories.UnixBuild },
    { "AMD64 NixOS Unstable Refleaks", "malvex-nixos-x86_64", factories.UnixRefleakBuild },
    { "AMD64 NixOS Unstable Perf", "malvex-nixos-x86_64", factories.UnixPerfBuild },

    -- Solaris sparcv9
    { "SPARCv9 Oracle Solaris 11.4", "kulikjak-solaris-sparcv9", factories.UnixBuild },

    -- Arch Usan (see stable "AMD64 Arch Linux Usan Function" above)
    { "AMD64 Arch Linux Usan", "pablogsal-arch-x86_64", factories.ClangUbsanLinuxBuild },

    -- RISC-V 64-bit GCC
    { "RISC-V 64-bit Ubuntu NoGIL", "rise-riscv64-3", factories.SlowUnixNoGilBuild },
}))

local function get_builder_defs(settings)
    -- Override with a simple default if we are using local workers
    if settings:bool("use_local_worker") then
        local name = settings:get("local_worker_buildfactory", nil)
        local local_buildfactory = name and factories[name] or factories.UnixBuild
        return { BuilderDef {
            name = "Test Builder",
            factory = local_buildfactory,
            tags = { STABLE },
            worker_name = "local-worker",
        } }
    end
    return BUILDER_DEFS
end

return {
    STABLE = STABLE,
    UNSTABLE = UNSTABLE,
    TIER_1 = TIER_1,
    TIER_2 = TIER_2,
    TIER_3 = TIER_3,
    NO_TIER = NO_TIER,
    BuilderDef = BuilderDef,
    BUILDER_DEFS = BUILDER_DEFS,
    get_tier_from_tags = get_tier_from_tags,
    get_builder_defs = get_builder_defs,
}
