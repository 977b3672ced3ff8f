-- GET /reviews?product_id=R&sort=relevant[&count=C], R uniform in [lo, hi].
-- Scenarios list-random (last 10% of ids), list-hot (10 ids) and list-large (count=1000).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  local id = random_id()
  local path = "/reviews?product_id=" .. id .. "&sort=relevant"
  if params.count then path = path .. "&count=" .. params.count end
  return get(path, id)
end
