-- GET /reviews/meta?product_id=R, R uniform in [lo, hi]. Scenarios meta-random and meta-hot.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  local id = random_id()
  return get("/reviews/meta?product_id=" .. id, id)
end
