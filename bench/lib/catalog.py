"""What a run measures and how it is judged: the dataset sizes, the scenarios with their
ceilings, the fixed-rate runs, and the targets of the issue. bench/README.md explains each."""

FULL_SIZE = 1_000_011
SMOKE_SIZE = 2_000

# The machine's own PostgreSQL, which --smoke uses unless --private-pg (bench/README.md says why).
STOCK_PG_URL = "postgres://postgres@127.0.0.1:5432"

# The session settings of the service's own connections that change plans (src/db/mod.rs,
# make_pool: none; the plan cache is left to itself), given to pgbench too, so that each ceiling
# runs the very statements the service runs, planned the same way.
SERVICE_PGOPTIONS = ""

# The scenarios. `ids` names the product-id range (see dataset.Dataset.ranges); `script` is the wrk
# script in bench/scenarios/; `ceiling` is what the scenario is divided by: a pgbench run of the
# same statement(s), or the constant body.
SCENARIOS = [
    dict(name="list-random", cache=False, script="list.lua", ids="last10", count=None,
         route="GET /reviews?product_id=R&sort=relevant", ceiling="pgbench-list"),
    dict(name="meta-random", cache=False, script="meta.lua", ids="last10",
         route="GET /reviews/meta?product_id=R", ceiling="pgbench-meta"),
    dict(name="list-original", cache=False, script="list-older-route.lua", ids="original", count=None,
         route="GET /reviews/R/list", ceiling="pgbench-list"),
    dict(name="meta-original", cache=False, script="meta-older-route.lua", ids="original",
         route="GET /reviews/R/meta", ceiling="pgbench-meta"),
    dict(name="list-large", cache=False, script="list.lua", ids="last10", count=1000,
         route="GET /reviews?product_id=R&sort=relevant&count=1000", ceiling="pgbench-list"),
    dict(name="list-hot", cache=True, script="list.lua", ids="hot", count=None,
         route="GET /reviews?product_id=R&sort=relevant", ceiling="constant"),
    dict(name="meta-hot", cache=True, script="meta.lua", ids="hot",
         route="GET /reviews/meta?product_id=R", ceiling="constant"),
    dict(name="mixed", cache=True, script="mixed.lua", ids="last10",
         route="45% GET list, 45% GET meta, 5% POST /reviews, 4% PUT helpful, 1% PUT report",
         ceiling="pgbench-mixed"),
    # As browsers ask (Accept-Encoding: gzip, deflate, br): the same reads, compressed answers.
    # No ceiling of their own: the report sets each beside its plain twin above.
    dict(name="list-random-gzip", cache=False, script="list.lua", ids="last10", count=None, gzip=True,
         twin="list-random", route="GET /reviews?product_id=R&sort=relevant, Accept-Encoding: gzip", ceiling=None),
    dict(name="meta-random-gzip", cache=False, script="meta.lua", ids="last10", gzip=True, twin="meta-random",
         route="GET /reviews/meta?product_id=R, Accept-Encoding: gzip", ceiling=None),
    dict(name="list-large-gzip", cache=False, script="list.lua", ids="last10", count=1000, gzip=True,
         twin="list-large", route="GET /reviews?...&count=1000, Accept-Encoding: gzip", ceiling=None),
    dict(name="list-hot-gzip", cache=True, script="list.lua", ids="hot", count=None, gzip=True, twin="list-hot",
         route="GET /reviews?product_id=R&sort=relevant, Accept-Encoding: gzip", ceiling=None),
    dict(name="meta-hot-gzip", cache=True, script="meta.lua", ids="hot", gzip=True, twin="meta-hot",
         route="GET /reviews/meta?product_id=R, Accept-Encoding: gzip", ceiling=None),
    # A client revalidating what it has (If-None-Match with the ETag it was given): 304s. Plain
    # bodies, from which the script reads which product an ETag is of (wrk's answers do not say
    # which request they answer).
    dict(name="list-hot-revalidate", cache=True, script="list.lua", ids="hot", count=None,
         revalidate=True, twin="list-hot",
         route="GET /reviews?product_id=R&sort=relevant, If-None-Match", ceiling=None),
    dict(name="meta-hot-revalidate", cache=True, script="meta.lua", ids="hot", revalidate=True,
         twin="meta-hot", route="GET /reviews/meta?product_id=R, If-None-Match", ceiling=None),
]
# Fixed-rate (open loop) runs: oha at a given rate, cache off.
FIXED_RATE = [
    dict(name="list-random", ids="last10", path="/reviews?product_id={id}&sort=relevant"),
    dict(name="meta-random", ids="last10", path="/reviews/meta?product_id={id}"),
]
# The judged targets (the issue "Uncached reads at the cost of their parts"): checked in the
# report's Targets section and printed at the end of the run.
TARGET_COMPOSED_RATIO = 0.95  # uncached list-random and meta-random vs 1 / (1/pgbench + 1/constant)
TARGET_LIST_VS_META = 0.95    # list-random req/s vs meta-random req/s
TARGET_CPU_UNCACHED_VS_CACHED = 1.5  # server CPU µs per uncached read vs per cached read
TARGET_HTTP_RATIO = 0.80      # cached list-hot and meta-hot vs the constant body
TARGET_FIXED_P99_MS = 2.0     # p99 at 1,000 requests/s, list-random and meta-random
TARGET_FIXED_RATE = 1000
# Cached scenario whose server CPU per request an uncached one is compared with.
CACHED_TWIN = {"list-random": "list-hot", "meta-random": "meta-hot"}
