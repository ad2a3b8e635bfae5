local bbm = require "bbm"
return {
  workers = { bbm.worker("w1", "p") },
  services = { setmetatable({}, {__index = function() while true do end end}) },
}
