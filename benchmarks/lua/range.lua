-- One random single Range per request: bytes=START-(START+LENGTH-1), START
-- uniform in [0, SIZE-LENGTH]. Args: SIZE LENGTH. Seeded per thread so every
-- configuration is asked the same sequence of ranges.
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
end

local size, length
init = function(args)
  size = tonumber(args[1])
  length = tonumber(args[2])
  math.randomseed(1000 + (id or 0))
end

request = function()
  local start = math.random(0, size - length)
  return wrk.format("GET", nil, {["Range"] = "bytes=" .. start .. "-" .. (start + length - 1)})
end
