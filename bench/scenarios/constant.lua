-- The HTTP ceiling: GET /bench/constant/BYTES, a constant in-memory body of the scenario's mean
-- size, through the same response() accounting as the scenario it is compared with.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local path
function scenario_init()
  path = "/bench/constant/" .. tonumber(params.bytes)
end

function request()
  return wrk.format("GET", path)
end
