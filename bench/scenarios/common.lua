-- Shared by every wrk scenario (loaded with dofile from the scenario script).
--
-- * Every response goes through response(): it is counted by status, so a non-2xx answer is
--   never hidden (wrk alone counts only status > 399, and only as a total), and its body length
--   is summed, so the runner learns the scenario's mean body size for the constant-body ceiling.
-- * Parameters come as key=value after `--` on the wrk command line (init(args)).
-- * done() prints one line `BENCH_JSON {...}` that bench/run parses: wrk's own counters, its
--   latency percentiles, and the per-status counts gathered from every thread.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

params = {}
statuses = {}
body_bytes = 0
responses = 0
-- Answers that are not what the scenario expects: anything but 2xx (a 304 is expected when
-- revalidating), counted where the scenario's parameters are known.
unexpected = 0

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then params[k] = v end
  end
  -- A different sequence per thread, the same per seed: the warm-up uses another seed, so it
  -- does not pre-load exactly the ids the measured run asks for.
  math.randomseed(tonumber(params.seed or "1") * 1000 + (thread_no or 1))
  lo = tonumber(params.lo or "1")
  hi = tonumber(params.hi or "1")
  -- gzip=1: ask as browsers do; the body sizes summed are then the compressed ones, on the wire.
  if params.gzip == "1" then wrk.headers["Accept-Encoding"] = "gzip, deflate, br" end
  if scenario_init then scenario_init() end
end

-- revalidate=1: each product's ETag, once answered, is sent back as If-None-Match, as a browser
-- revalidating its copy does (the product is read off the body: `"product":"N"` or
-- `"product_id":"N"`).
etags = {}

-- A GET of `path` for product `id`, conditional when revalidating and its ETag is known.
function get(path, id)
  if params.revalidate == "1" and etags[id] then
    return wrk.format("GET", path, { ["If-None-Match"] = etags[id] })
  end
  return wrk.format("GET", path)
end

-- A product id uniform in [lo, hi].
function random_id()
  return math.random(lo, hi)
end

function response(status, headers, body)
  responses = responses + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if (status < 200 or status > 299) and not (status == 304 and params.revalidate == "1") then
    unexpected = unexpected + 1
  end
  if body then body_bytes = body_bytes + #body end
  if params.revalidate == "1" and status == 200 and body then
    local id = body:match('"product_?i?d?":"(%d+)"')
    local etag = headers["etag"] or headers["ETag"]
    if id and etag then etags[tonumber(id)] = etag end
  end
  if scenario_response then scenario_response(status) end
end

function done(summary, latency, requests)
  local agg, bytes, n, kinds, non2xx = {}, 0, 0, {}, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses") or {}) do agg[k] = (agg[k] or 0) + v end
    for k, v in pairs(t:get("by_kind") or {}) do kinds[k] = (kinds[k] or 0) + v end
    bytes = bytes + (t:get("body_bytes") or 0)
    non2xx = non2xx + (t:get("unexpected") or 0)
    n = n + (t:get("responses") or 0)
  end
  local parts = {}
  for k, v in pairs(agg) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local kparts = {}
  for k, v in pairs(kinds) do table.insert(kparts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"wrk_status_errors":%d,' ..
    '"responses":%d,"non2xx":%d,"statuses":{%s},"by_kind":{%s},"body_bytes":%d,' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    n, non2xx, table.concat(parts, ","), table.concat(kparts, ","), bytes,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
