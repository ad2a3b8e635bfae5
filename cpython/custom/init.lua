-- custom/__init__.py: what the modules of custom/ share, and two list helpers Python
-- has built in.
local M = {
    JUNIT_FILENAME = "test-results.xml",
}

-- `value` is in `list` (Python's `in`).
function M.has(list, value)
    for _, v in ipairs(list) do
        if v == value then
            return true
        end
    end
    return false
end

-- The lists given, one after the other, in a new list ([*a, *b, ...]).
function M.concat(...)
    local out = {}
    for i = 1, select("#", ...) do
        local list = (select(i, ...))
        table.move(list, 1, #list, #out + 1, out)
    end
    return out
end

return M
