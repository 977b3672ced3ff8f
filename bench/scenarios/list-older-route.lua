-- The older route form of GET /reviews, which the original load test used: GET /reviews/R/list, R uniform in [lo, hi] (1..100000).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  return wrk.format("GET", "/reviews/" .. random_id() .. "/list")
end
