local bbm = require 'bbm'
local strict = { __index = function(t, k) error('no field ' .. k) end }
return {
  workers = { bbm.worker('w1', 'p') },
  builders = { bbm.builder{ name = 'b', workernames = { 'w1' },
    factory = bbm.factory{
      bbm.steps.shell{ command = 'make',
        env = setmetatable({ CC = 'gcc' }, strict) } } } },
  www = setmetatable({ port = 8010 }, strict),
}
