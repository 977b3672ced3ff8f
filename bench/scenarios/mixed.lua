-- mixed: 90% reads (45% GET /reviews, 45% GET /reviews/meta), 5% POST /reviews,
-- 4% PUT /reviews/:id/helpful, 1% PUT /reviews/:id/report; ids uniform, cache on.
--
-- params: lo, hi        product ids of the reads
--         pool          file of "product_id char_id,char_id,..." lines (bench/run writes it from
--                       the database): POST rates exactly the product's characteristics, as
--                       api.md requires, so every POST is a valid 201
--         rlo, rhi      review ids for helpful and report (existing reviews)
--         track=1       count answers by kind of request (GET, POST, helpful, report) in
--                       `by_kind`, and count a request as failed when request() is called again
--                       before its answer came (wrk reconnected after a socket error). Exact only
--                       with one connection per thread (wrk -tC -cC): bench/run's drills.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local products = {}
local rlo, rhi

function scenario_init()
  for line in io.lines(params.pool) do
    local pid, chars = line:match("^(%d+)%s*(.*)$")
    if pid then
      local ids = {}
      for c in chars:gmatch("%d+") do table.insert(ids, c) end
      table.insert(products, { pid = pid, chars = ids })
    end
  end
  assert(#products > 0, "empty product pool " .. tostring(params.pool))
  rlo, rhi = tonumber(params.rlo), tonumber(params.rhi)
end

local json_headers = { ["Content-Type"] = "application/json" }

local function post_body()
  local p = products[math.random(#products)]
  local rated = {}
  for i, c in ipairs(p.chars) do rated[i] = '"' .. c .. '":' .. math.random(1, 5) end
  return string.format(
    '{"product_id":%s,"rating":%d,"summary":"bench run","body":"Written by bench/run mixed.",' ..
    '"recommend":%s,"name":"bench","email":"bench@example.com","photos":[],' ..
    '"characteristics":{%s}}',
    p.pid, math.random(1, 5), math.random() < 0.8 and "true" or "false", table.concat(rated, ","))
end

by_kind = {}
local pending -- the kind of the request sent and not answered yet (track=1)

local function count(key)
  by_kind[key] = (by_kind[key] or 0) + 1
end

local function build()
  local r = math.random()
  if r < 0.45 then
    return "GET", wrk.format("GET", "/reviews?product_id=" .. random_id() .. "&sort=relevant")
  elseif r < 0.90 then
    return "GET", wrk.format("GET", "/reviews/meta?product_id=" .. random_id())
  elseif r < 0.95 then
    return "POST", wrk.format("POST", "/reviews", json_headers, post_body())
  elseif r < 0.99 then
    return "helpful", wrk.format("PUT", "/reviews/" .. math.random(rlo, rhi) .. "/helpful")
  else
    return "report", wrk.format("PUT", "/reviews/" .. math.random(rlo, rhi) .. "/report")
  end
end

function request()
  local kind, req = build()
  if params.track == "1" then
    -- One connection per thread: a request() before the previous answer means wrk gave the
    -- previous request up (socket error) and reconnected.
    if pending then count(pending .. " socket-error") end
    pending = kind
    count(kind .. " sent")
  end
  return req
end

function scenario_response(status)
  if params.track == "1" and pending then
    count(pending .. " " .. status)
    pending = nil
  end
end
