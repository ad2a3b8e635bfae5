--[[
custom/settings.py: the private settings (worker passwords, tokens, db_url...), read from
a YAML file with bbm.yaml.load.

    local Settings = require "custom.settings"
    local settings = Settings.from_file(path)    -- or Settings.new() without a file
    settings:str("db_url")                       -- str(settings.db_url)
    settings:int("web_port")                     -- int(settings.web_port)
    settings:bool("send_mail")                   -- bool(settings.send_mail)
    settings:str("workers", name, "password")    -- str(settings.workers[name].password)
    settings:get("irc_password", nil)            -- settings.get('irc_password', None)
    settings:at("owners", owner)                 -- settings.owners[owner], a Settings

As in the original, a setting that is missing converts to its entry in DEFAULTS (by its
dotted path), or else to 1 (int), False (bool) or a random string (str), with a warning
unless $CI is set.
]]

local bbm = require "bbm"

local DEFAULTS = {
    web_port = 9011,
    worker_port = 9021,
    irc_notice = false,
    irc_host = "irc.libera.chat",
    irc_channel = "#python-dev-notifs",
    irc_nick = "py-bb-test",
    buildbot_url = "http://localhost:9011/",
    db_url = "sqlite:///state.sqlite",
    do_auth = false,
    send_mail = false,
    status_email = "example@example.org",
    email_relay_host = "mail.example.org",
    from_email = "buildbot@example.org",
    verbosity = 1,
    git_url = "https://github.com/python/cpython",
    use_local_worker = false,
    discord_webook = "https://discordapp.com/api/webhooks/", -- sic, as upstream spells it
}

local Settings = {}
Settings.__index = Settings

function Settings.new(value, path)
    return setmetatable({ value = value, path = path or {} }, Settings)
end

function Settings.from_file(filename)
    return Settings.new(bbm.yaml.load(filename) or {}, {})
end

-- settings[key1][key2]...: a Settings for the value there (which may be missing)
function Settings:at(...)
    local value, path = self.value, { table.unpack(self.path) }
    for _, key in ipairs({ ... }) do
        path[#path + 1] = tostring(key)
        if type(value) == "table" then
            value = value[key]
        else
            value = nil
        end
    end
    return Settings.new(value, path)
end

-- settings.get(key, default): the raw value, or `default` when it is missing
function Settings:get(key, default)
    local value = type(self.value) == "table" and self.value[key] or nil
    if value == nil then
        return default
    end
    return value
end

-- A random string in place of a missing secret (secrets.token_urlsafe(8)).
local function token_urlsafe()
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    local out = {}
    for i = 1, 11 do
        local k = math.random(1, #alphabet)
        out[i] = alphabet:sub(k, k)
    end
    return table.concat(out)
end

function Settings:_convert(convert, default, ...)
    local s = select("#", ...) > 0 and self:at(...) or self
    if s.value ~= nil then
        return convert(s.value)
    end
    local key = table.concat(s.path, ".")
    if DEFAULTS[key] ~= nil then
        default = DEFAULTS[key]
    elseif type(default) == "function" then
        default = default() -- a random secret is made only when one is missing
    end
    if not os.getenv("CI") then
        print(("WARNING: No setting at {%s}, returning %s"):format(key, tostring(default)))
    end
    return convert(default)
end

local function to_bool(v)
    return not (v == false or v == 0 or v == "" or (type(v) == "table" and next(v) == nil))
end

function Settings:str(...)
    return self:_convert(tostring, token_urlsafe, ...)
end

function Settings:int(...)
    return self:_convert(function(v) return math.tointeger(tonumber(v)) end, 1, ...)
end

function Settings:bool(...)
    return self:_convert(to_bool, false, ...)
end

Settings.DEFAULTS = DEFAULTS
return Settings
