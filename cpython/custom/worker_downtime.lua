--[[
custom/worker_downtime.py: planned downtime of a worker, as a canStartBuild function.

no_builds_between("8:00", "10:00", { day_of_week = WEDNESDAY, tz = "America/Los_Angeles" })
returns a builder's canStartBuild that refuses to start a build between the two times
(of that day only, with day_of_week; Monday is 0 as in Python's datetime.weekday()), in
that time zone (the master's local time without tz), and puts the worker in quarantine
until the end time.

Lua has no time zone database: the zones used here are described in ZONES (the UTC
offsets and the United States' daylight saving rule since 2007).
]]

local M = {}

M.MONDAY, M.TUESDAY, M.WEDNESDAY, M.THURSDAY = 0, 1, 2, 3
M.FRIDAY, M.SATURDAY, M.SUNDAY = 4, 5, 6

-- standard and daylight offsets from UTC, in hours
local ZONES = {
    ["America/Los_Angeles"] = { std = -8, dst = -7, rule = "us" },
}

-- Days since 1970-01-01 of a date of the proleptic Gregorian calendar.
local function days_from_civil(y, m, d)
    if m <= 2 then
        y = y - 1
    end
    local era = (y >= 0 and y or y - 399) // 400
    local yoe = y - era * 400
    local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
    local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
end

-- Monday = 0 (1970-01-01 was a Thursday)
local function weekday(days)
    return (days + 3) % 7
end

-- The n-th Sunday of a month, in days since the epoch.
local function nth_sunday(year, month, n)
    local first = days_from_civil(year, month, 1)
    return first + (6 - weekday(first)) % 7 + 7 * (n - 1)
end

-- Seconds east of UTC in zone `z` at UTC time `t`.
local function utc_offset(z, t)
    if z.rule ~= "us" then
        return z.std * 3600
    end
    local year = os.date("!*t", t).year
    -- from the second Sunday of March, 2:00 standard time, to the first Sunday of
    -- November, 2:00 daylight time
    local starts = nth_sunday(year, 3, 2) * 86400 + (2 - z.std) * 3600
    local ends = nth_sunday(year, 11, 1) * 86400 + (2 - z.dst) * 3600
    if t >= starts and t < ends then
        return z.dst * 3600
    end
    return z.std * 3600
end

-- The time of day (seconds since midnight) and weekday (Monday = 0) at `t` (seconds since
-- the epoch; now if nil), in `tz` (the master's local time if nil).
function M.time_in(tz, t)
    t = t or os.time()
    if tz == nil then
        local d = os.date("*t", t)
        return d.hour * 3600 + d.min * 60 + d.sec, (d.wday + 5) % 7
    end
    local z = assert(ZONES[tz], "worker_downtime: unknown time zone " .. tostring(tz))
    local here = t + utc_offset(z, t)
    return here % 86400, weekday(here // 86400)
end

local function parse_time(text)
    local h, m = text:match("^(%d%d?):(%d%d)$")
    assert(h, "worker_downtime: not a time (H:MM): " .. tostring(text))
    return tonumber(h) * 3600 + tonumber(m) * 60
end

function M.is_within_time_range(now, start, stop)
    if start <= stop then
        return start <= now and now <= stop
    end
    return now >= start or now <= stop
end

-- Seconds from `now` to `stop` (times of day, in seconds), tomorrow's if it is past.
function M.get_delay(now, stop)
    if now > stop then
        stop = stop + 86400
    end
    return stop - now
end

-- A function for builder.canStartBuild that implements planned downtime: a build is not
-- started between start and end time, and waits until end time.
function M.no_builds_between(start, stop, options)
    options = options or {}
    start, stop = parse_time(start), parse_time(stop)
    local day_of_week, tz = options.day_of_week, options.tz
    if tz ~= nil then
        assert(ZONES[tz], "worker_downtime: unknown time zone " .. tostring(tz))
    end
    return function(builder, wfb, request)
        local now, today = M.time_in(tz)
        if day_of_week ~= nil and today ~= day_of_week then
            return true
        end
        if M.is_within_time_range(now, start, stop) then
            local delay = M.get_delay(now, stop)
            -- Adapted from: https://docs.buildbot.net/current/manual/customization.html#canstartbuild-functions
            wfb.worker.quarantine_timeout = delay
            wfb.worker:putInQuarantine()
            -- This does not take the worker out of quarantine, it only resets
            -- the timeout value to default (restarting the default
            -- exponential backoff)
            wfb.worker:resetQuarantine()
            return false
        end
        -- Schedule the build now
        return true
    end
end

return M
