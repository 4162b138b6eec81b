-- COUNT non-overlapping random ranges of LENGTH bytes per request (one in each
-- of COUNT equal zones of the file, ascending), answered as multipart/byteranges.
-- Args: SIZE LENGTH COUNT. Seeded per thread, like range.lua.
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
end

local size, length, count, zone
init = function(args)
  size = tonumber(args[1])
  length = tonumber(args[2])
  count = tonumber(args[3])
  zone = math.floor(size / count)
  math.randomseed(2000 + (id or 0))
end

request = function()
  local specs = {}
  for i = 0, count - 1 do
    local start = i * zone + math.random(0, zone - length)
    specs[#specs + 1] = start .. "-" .. (start + length - 1)
  end
  return wrk.format("GET", nil, {["Range"] = "bytes=" .. table.concat(specs, ",")})
end
