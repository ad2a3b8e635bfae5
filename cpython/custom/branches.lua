--[[
custom/branches.py: all the info about Buildbot branches.

We treat the main branch specially, and we use a pseudo-branch for the Pull Request
buildbots.  In older branches some config needs to be nudged -- for example,
free-threading builds only make sense in 3.13+.

A branch is a table (BranchInfo): name, version_tuple ({3, 14}, nil for PR), git_branch,
builddir_name, builder_tag, sort_key, is_main, is_pr, gil_only, monolithic_test_asyncio.
A BranchSet is an immutable set of them: set:contains(b), set:get(3, 12) (BRANCHES[3, 12]),
set:only_since(3, 12[, include_pr]), set:only_until(3, 12[, include_pr]), and
BranchSet.of{b1, b2} ({b1, b2} in Python).
]]

local BranchInfo = {}
BranchInfo.__index = BranchInfo
BranchInfo.__tostring = function(b) return b.name end

function BranchInfo.new(fields)
    local b = {
        is_main = false,
        is_pr = false,
        -- Branch features.  Defaults are for main (and PR), overrides are in
        -- maintenance_branch.
        gil_only = false,
        monolithic_test_asyncio = false,
    }
    for k, v in pairs(fields) do
        b[k] = v
    end
    return setmetatable(b, BranchInfo)
end

-- (a, b) <=> (major, minor) as Python compares tuples: -1, 0 or 1
local function compare(v, major, minor)
    if v[1] ~= major then
        return v[1] < major and -1 or 1
    end
    if v[2] ~= minor then
        return v[2] < minor and -1 or 1
    end
    return 0
end

local function maintenance_branch(major, minor)
    local version_str = ("%d.%d"):format(major, minor)
    local result = BranchInfo.new {
        name = version_str,
        builder_tag = version_str,
        version_tuple = { major, minor },
        git_branch = version_str,
        builddir_name = version_str,
        sort_key = -minor,
    }
    if compare(result.version_tuple, 3, 11) < 0 then
        -- Before 3.11, test_asyncio wasn't split out, and refleaks tests
        -- need more time.
        result.monolithic_test_asyncio = true
    end
    if compare(result.version_tuple, 3, 13) < 0 then
        -- Free-threaded builds are available since 3.13
        result.gil_only = true
    end
    return result
end

local function generate_branches()
    return {
        BranchInfo.new {
            name = "3.x",
            version_tuple = { 3, 16 },
            git_branch = "main",
            is_main = true,
            builddir_name = "3.x",
            builder_tag = "3.x",
            sort_key = -9999,
        },
        maintenance_branch(3, 15),
        maintenance_branch(3, 14),
        maintenance_branch(3, 13),
        maintenance_branch(3, 12),
        maintenance_branch(3, 11),
        maintenance_branch(3, 10),
        BranchInfo.new {
            name = "PR",
            version_tuple = nil,
            git_branch = nil,
            is_pr = true,
            builddir_name = "pull_request",
            builder_tag = "PullRequest",
            sort_key = 0,
        },
    }
end

local BranchSet = {}
BranchSet.__index = BranchSet
BranchSet.__len = function(s) return #s.branches end

function BranchSet.of(branches)
    return setmetatable({ branches = branches }, BranchSet)
end

-- for _, branch in set:iter() do ... end
function BranchSet:iter()
    return ipairs(self.branches)
end

function BranchSet:contains(branch)
    for _, b in ipairs(self.branches) do
        if b.sort_key == branch.sort_key then
            return true
        end
    end
    return false
end

-- branchset[3, x] -> BranchInfo for 3.x
function BranchSet:get(major, minor)
    for _, b in ipairs(self.branches) do
        if b.version_tuple and compare(b.version_tuple, major, minor) == 0 then
            return b
        end
    end
    error(("version (%d, %d) not found"):format(major, minor), 2)
end

local function filter(set, keep)
    local out = {}
    for _, b in ipairs(set.branches) do
        if keep(b) then
            out[#out + 1] = b
        end
    end
    return BranchSet.of(out)
end

-- only_since(3, x) -> BranchSet with 3.x and later
function BranchSet:only_since(major, minor, include_pr)
    if include_pr == nil then
        include_pr = true
    end
    return filter(self, function(b)
        if b.is_pr then
            return include_pr
        end
        return compare(b.version_tuple, major, minor) >= 0
    end)
end

-- only_until(3, x) -> BranchSet with up to (and including) 3.x
function BranchSet:only_until(major, minor, include_pr)
    return filter(self, function(b)
        if b.is_pr then
            return include_pr or false
        end
        return compare(b.version_tuple, major, minor) <= 0
    end)
end

local BRANCHES = BranchSet.of(generate_branches())
local MAIN_BRANCH, PR_BRANCH
for _, b in BRANCHES:iter() do
    if b.is_main then
        MAIN_BRANCH = b
    end
    if b.is_pr then
        PR_BRANCH = b
    end
end

-- Verify that the (sort) keys are distinct
do
    local seen = {}
    for _, b in BRANCHES:iter() do
        assert(not seen[b.sort_key], "two branches have the sort key " .. b.sort_key)
        seen[b.sort_key] = true
    end
end

return {
    BranchInfo = BranchInfo,
    BranchSet = BranchSet,
    BRANCHES = BRANCHES,
    MAIN_BRANCH = MAIN_BRANCH,
    PR_BRANCH = PR_BRANCH,
}
