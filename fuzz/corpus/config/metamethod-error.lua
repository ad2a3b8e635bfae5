local bbm = require "bbm"
return {
  workers = { bbm.worker("w1", "p") },
  services = { 7, setmetatable({}, {__index = function() error("boom") end}) },
}
