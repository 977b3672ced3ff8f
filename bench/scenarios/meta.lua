-- GET /reviews/meta?product_id=R, R uniform in [lo, hi]. Scenarios meta-random and meta-hot.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  return wrk.format("GET", "/reviews/meta?product_id=" .. random_id())
end
