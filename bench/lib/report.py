"""The report of a run: the machine's facts, the markdown tables, the targets' checks, and
write_report, which writes the .md, the .json (every figure) and the .svg charts (svg.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from catalog import (CACHED_TWIN, FIXED_RATE, SCENARIOS, TARGET_COMPOSED_RATIO, TARGET_CPU_UNCACHED_VS_CACHED,
                     TARGET_FIXED_P99_MS, TARGET_FIXED_RATE, TARGET_HTTP_RATIO, TARGET_LIST_VS_META)
from cluster import mem_total_bytes, settings_for
from common import ROOT, first_line, ms, run
from dataset import Pg
from svg import svg_chart, svg_growth


def machine_facts(pg: Pg, tools: dict) -> dict:
    def meminfo():
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    settings = pg.query("postgres", "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ') "
                                    "FROM pg_settings WHERE name IN ('shared_buffers', 'max_connections', "
                                    "'work_mem', 'effective_cache_size', 'jit', 'synchronous_commit', "
                                    "'max_worker_processes', 'random_page_cost')")
    git = run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=False).stdout.strip()
    dirty = run(["git", "status", "--porcelain", "--", "src", "sql", "Cargo.toml", "Cargo.lock", "bench/run",
                 "bench/lib", "bench/scenarios"], cwd=ROOT, check=False).stdout.strip()
    return {
        "nproc": os.cpu_count(), "cpu": model, "memory": meminfo(),
        "kernel": os.uname().release,
        "postgres": pg.query("postgres", "SHOW server_version"),
        "shared_buffers": pg.query("postgres", "SHOW shared_buffers"),
        "postgres_settings": settings,
        "rustc": first_line(run(["rustc", "--version"], check=False).stdout),
        "tools": tools["versions"], "commit": git + (" (with uncommitted changes)" if dirty else ""),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    }


def postgres_facts(pg: Pg, cluster) -> dict:
    """The server measured against: the private cluster's settings with their reasons and the
    values in effect, or, for a given server (--pg-url), the values of the same settings as found."""
    if cluster:
        return dict(cluster.describe(), private=True)
    names = [n for n, _, _ in settings_for(mem_total_bytes(), 100, "on")]
    rows = pg.query("postgres", "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ("
                    + ", ".join(f"'{n}'" for n in names) + ")", check=False)
    return {"private": False, "url": pg.base,
            "in_effect": dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)}


def settings_section(report: dict) -> list[str]:
    p = report.get("postgres") or {}
    L = ["## PostgreSQL settings", ""]
    if p.get("private"):
        mem = p["memory_bytes"] / 1024 ** 3
        L += [f"The run's private cluster (`{p['dir']}`, PostgreSQL {p['version']} from `{p['bin']}`, "
              f"127.0.0.1:{p['port']}, trust authentication), configured by bench/run with ALTER SYSTEM for a "
              f"read-heavy service whose data fits in memory, sized from this machine's {mem:.1f} GiB. "
              f"Durability is kept as in production (synchronous_commit, fsync and full_page_writes on): "
              f"the mixed scenario's writes wait for their WAL flush. vm.nr_hugepages is {p['nr_hugepages']}"
              + (", so huge_pages=try falls back to normal pages." if p["nr_hugepages"] in ("0", "?") else ".")
              , "",
              "| setting | value | in effect | why |", "|---|---|---|---|"]
        for s_ in p["settings"]:
            L.append(f"| {s_['name']} | {s_['value']} | {p['in_effect'].get(s_['name'], '?')} | {s_['why']} |")
    else:
        L += [f"A server bench/run does not manage ({p.get('url', '?')}: `--pg-url`, `BENCH_PG_URL`, or the "
              "machine's own server for `--smoke`), measured as it is configured: bench/run changed nothing. "
              "The settings the private cluster would set, as found there:", "",
              "| setting | in effect |", "|---|---|"]
        for name, value in sorted((p.get("in_effect") or {}).items()):
            L.append(f"| {name} | {value} |")
    return L + [""]


def fmt_rps(v) -> str:
    return f"{v:,.0f}" if v is not None else "–"


def fmt_ratio(v) -> str:
    return f"{v * 100:.0f}%" if v is not None else "–"


def errors_cell(r) -> str:
    return f"{r.get('socket_error_count', 0)} / {r.get('non2xx', 0)}"


def fmt_us(v) -> str:
    return f"{v:,.0f}" if v is not None else "–"


def cpu_us(r, group):
    return ((r or {}).get("cpu_us_per_req") or {}).get(group)


def cpu_cell(r) -> str:
    """service / PostgreSQL / load generator CPU µs per request."""
    return " / ".join(fmt_us(cpu_us(r, g)) for g in ("server", "postgres", "loadgen"))


def ceiling_name(r) -> str:
    c = r.get("ceiling")
    if not c:
        return "–"
    if c["kind"] == "constant":
        return f"constant {c['bytes']} B"
    return f"pgbench -c {c['clients']}"


def results_table(d: dict) -> list[str]:
    lines = ["| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | errors (socket / non-2xx) "
             "| ceiling | ceiling req/s | ceiling p99 ms | ratio | per-core ratio | HTTP ceiling (constant) req/s "
             "| composed ceiling req/s | ratio to composed |",
             "|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for sc in SCENARIOS:
        r = d["scenarios"].get(sc["name"])
        if not r:
            continue
        l, c = r["latency_us"], r.get("ceiling") or {}
        lines.append(f"| {sc['name']}{' (cache on)' if sc['cache'] else ''} | {fmt_rps(r['rps'])} | "
                     f"{ms(l['p50'])} | {ms(l['p90'])} | {ms(l['p99'])} | {ms(l['max'])} | {errors_cell(r)} | "
                     f"{ceiling_name(r)} | {fmt_rps(c.get('rps'))} | "
                     f"{ms(c['latency_us']['p99']) if c else '–'} | {fmt_ratio(r.get('ratio'))} | "
                     f"{fmt_ratio(r.get('per_core_ratio'))} | {fmt_rps((r.get('constant') or {}).get('rps'))} | "
                     f"{fmt_rps(r.get('composed_rps'))} | **{fmt_ratio(r.get('composed_ratio'))}** |")
    return lines


def summary_table(d: dict) -> list[str]:
    lines = ["| scenario | req/s | p99 ms | pgbench ceiling | composed ceiling | ratio to composed "
             "| CPU µs/req service / PG / loadgen | errors |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for sc in SCENARIOS:
        r = d["scenarios"].get(sc["name"])
        if not r:
            continue
        c = r.get("ceiling") or {}
        pgb = fmt_rps(c["rps"]) if c.get("kind") == "pgbench" else "–"
        composed = fmt_rps(r.get("composed_rps"))
        if c.get("kind") == "constant":
            composed += " (constant)"
        lines.append(f"| {sc['name']}{' (cached)' if sc['cache'] else ''} | {fmt_rps(r['rps'])} | "
                     f"{ms(r['latency_us']['p99'])} | {pgb} | {composed} | {fmt_ratio(r.get('composed_ratio'))} | "
                     f"{cpu_cell(r)} | {r['socket_error_count'] + r['non2xx']} |")
    for r in d["fixed_rate"]:
        lines.append(f"| {r['name']} at {r['rate']:,} req/s | {fmt_rps(r['rps'])} | {ms(r['latency_us']['p99'])} "
                     f"| – | – | – | {cpu_cell(r)} | {r['socket_error_count'] + r['non2xx']} |")
    return lines


def browser_table(d: dict) -> list[str]:
    """The reads as browsers ask them (gzip; If-None-Match), each beside its plain twin of the same
    run: req/s, bytes of body on the wire per answer, the service's CPU per request."""
    rows = [sc for sc in SCENARIOS if sc.get("twin") and sc["name"] in d["scenarios"]]
    if not rows:
        return []
    lines = ["| scenario | req/s | twin | twin req/s | body bytes on the wire per answer (twin) "
             "| service CPU µs/req (twin) | 304s | errors |", "|---|--:|---|--:|--:|--:|--:|--:|"]
    for sc in rows:
        r, t = d["scenarios"][sc["name"]], d["scenarios"].get(sc["twin"]) or {}
        statuses = r.get("statuses") or {}
        share = statuses.get("304", 0) / r["responses"] if r.get("responses") else 0
        lines.append(f"| {sc['name']}{' (cache on)' if sc['cache'] else ''} | {fmt_rps(r['rps'])} | {sc['twin']} | "
                     f"{fmt_rps(t.get('rps'))} | {r['mean_body_bytes']:,.0f} ({t.get('mean_body_bytes', 0):,.0f}) | "
                     f"{fmt_us(cpu_us(r, 'server'))} ({fmt_us(cpu_us(t, 'server'))}) | {share:.0%} | "
                     f"{errors_cell(r)} |")
    return lines


def fixed_table(d: dict) -> list[str]:
    lines = ["| scenario | target req/s | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
             "| errors (socket / non-2xx) |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in d["fixed_rate"]:
        l = r["latency_us"]
        lines.append(f"| {r['name']} | {r['rate']:,} | {fmt_rps(r['rps'])} | {ms(l['p50'])} | {ms(l['p90'])} | "
                     f"{ms(l['p99'])} | {ms(l['p999'])} | {ms(l['max'])} | {errors_cell(r)} |")
    return lines


def cpu_table(d: dict) -> list[str]:
    lines = ["| run | req/s | CPU µs/req service | CPU µs/req PG | CPU µs/req loadgen | cores: load generator "
             "| server | postgres (bench db) | postgres (other) | other processes "
             "| steal (other guests) | machine busy | busy before (others) | disk reads/s (MB) |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]

    def row(name, r):
        c = r.get("cpu_cores") or {}
        if r.get("attempts", 1) > 1:
            name += f" (kept attempt {r['attempt']} of {r['attempts']})"
        lines.append(f"| {name} | {fmt_rps(r.get('rps'))} | {fmt_us(cpu_us(r, 'server'))} | "
                     f"{fmt_us(cpu_us(r, 'postgres'))} | {fmt_us(cpu_us(r, 'loadgen'))} | {c.get('loadgen', 0):.2f} | {c.get('server', 0):.2f} | {c.get('postgres', 0):.2f} | "
                     f"{c.get('postgres-other', 0):.2f} | {c.get('other', 0):.2f} | {c.get('steal', 0):.2f} | "
                     f"{c.get('machine_busy', 0):.2f} | "
                     f"{r.get('foreign_busy_cores_before', 0):.2f} | {c.get('disk_reads_per_s', 0):,} ({c.get('disk_read_mb', 0)}) |")
    for sc in SCENARIOS:
        r = d["scenarios"].get(sc["name"])
        if r:
            row(sc["name"], r)
            if r.get("ceiling"):
                row(f"{sc['name']} ceiling ({ceiling_name(r)})", r["ceiling"])
            if r.get("constant"):
                k = r["constant"]
                row(f"{sc['name']} HTTP ceiling (constant {k['bytes']} B)", k)
    for r in d["fixed_rate"]:
        row(f"{r['name']} @ {r['rate']}/s", r)
    return lines


def target_checks(report: dict) -> list[tuple[bool, str]]:
    """The issue's targets, on the largest dataset of the run."""
    d = max(report["datasets"], key=lambda x: x["products"])
    sc_ = d["scenarios"]
    checks = []
    for name in ("list-random", "meta-random"):
        r = sc_.get(name)
        if r and r.get("composed_ratio") is not None:
            checks.append((r["composed_ratio"] >= TARGET_COMPOSED_RATIO,
                           f"{name} at {fmt_ratio(r['composed_ratio'])} of its composed ceiling "
                           f"1 / (1/pgbench + 1/constant) = {fmt_rps(r['composed_rps'])} req/s "
                           f"(target ≥ {TARGET_COMPOSED_RATIO:.0%})"))
    lr, mr = sc_.get("list-random"), sc_.get("meta-random")
    if lr and mr and mr["rps"]:
        q = lr["rps"] / mr["rps"]
        checks.append((q >= TARGET_LIST_VS_META, f"list-random at {fmt_ratio(q)} of meta-random's req/s "
                                                  f"({fmt_rps(lr['rps'])} / {fmt_rps(mr['rps'])}; "
                                                  f"target ≥ {TARGET_LIST_VS_META:.0%})"))
    for uncached, cached in CACHED_TWIN.items():
        u, c = cpu_us(sc_.get(uncached), "server"), cpu_us(sc_.get(cached), "server")
        if u is not None and c:
            checks.append((u <= TARGET_CPU_UNCACHED_VS_CACHED * c,
                           f"service CPU per uncached read {uncached} {u:,.0f} µs = {u / c:.2f}× per cached "
                           f"read {cached} {c:,.0f} µs (target ≤ {TARGET_CPU_UNCACHED_VS_CACHED}×)"))
    for name in ("list-hot", "meta-hot"):
        r = sc_.get(name)
        if r and r.get("ratio") is not None:
            checks.append((r["ratio"] >= TARGET_HTTP_RATIO,
                           f"{name} cached at {fmt_ratio(r['ratio'])} of the constant-body ceiling "
                           f"(target ≥ {TARGET_HTTP_RATIO:.0%})"))
    for r in d["fixed_rate"]:
        if r["rate"] == TARGET_FIXED_RATE:
            checks.append((r["latency_us"]["p99"] / 1000 < TARGET_FIXED_P99_MS,
                           f"{r['name']} p99 {ms(r['latency_us']['p99'])} ms at {r['rate']:,} req/s "
                           f"(target < {TARGET_FIXED_P99_MS:.0f} ms)"))
    checks.append((not report["errors"], f"{len(report['errors'])} runs with errors (target: none)"))
    if d.get("verify") is not None:
        checks.append((d["verify"]["ok"], "`reviews-api verify` after the mixed scenario's writes: "
                                          + ("clean" if d["verify"]["ok"] else "FAILED") + " (target: clean)"))
    return checks


def write_report(report: dict, out: Path) -> None:
    a = report["args"]
    m = report["machine"]
    L = [f"# reviews-api benchmark, {report['date']}", ""]
    L += [f"`{report['command']}`, {a['duration']} s per measurement after a {a['warmup']} s warm-up; "
          f"wrk -t{a['threads']} -c{a['connections']}; pgbench -M prepared -c {a['pgbench_clients']} -j 2; "
          f"oha -c {a['rate_connections']}. Commit {m['commit']}.", ""]
    big = max(report["datasets"], key=lambda x: x["products"])
    L += ["## Summary", "", f"For the README: `{report['command']}`, {big['products']:,} products, "
          f"2 shared cores; req/s closed loop (wrk -c{a['connections']}), latency at a fixed "
          f"{TARGET_FIXED_RATE:,} req/s (oha).", ""]
    L += summary_table(big)
    L += [""]
    L += ["## Machine", "",
          f"- {m['nproc']} cores ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}; "
          f"load generator, server and PostgreSQL share the cores",
          f"- PostgreSQL {m['postgres']}, " + ("the run's private cluster" if (report.get('postgres') or {}).get('private')
                                                 else "a given server") + ", shared_buffers "
          f"{m['shared_buffers']} (see PostgreSQL settings below)",
          f"- {m['rustc']}; {m['tools']['wrk']}; {m['tools']['pgbench']}; {m['tools']['oha'] or 'oha not installed'}",
          f"- load average at start {' '.join(m['loadavg_at_start'])}", ""]
    for d in report["datasets"]:
        f = d["facts"]
        lo, hi = d["ranges"]["last10"]
        ol, oh = d["ranges"]["original"]
        hl, hh = d["ranges"]["hot"]
        L += [f"## {d['products']:,} products", "",
              f"Database `{d['database']}`: {int(f['reviews']):,} reviews ({int(f['reported']):,} reported), "
              f"{int(f['characteristics']):,} characteristics, {int(f['photos']):,} photos, {f['database_size']}. "
              f"Random ids {lo:,}..{hi:,} (last 10%), original ids {ol:,}..{oh:,}, hot ids {hl:,}..{hh:,}.", "",
              "Closed loop (wrk), each against its ceiling measured in the same run:", ""]
        L += results_table(d)
        L += [""]
        if browser_table(d):
            L += ["As browsers ask: `Accept-Encoding: gzip, deflate, br` (body sizes as sent, compressed), "
                  "and revalidation with `If-None-Match` (304s). Each beside its plain twin:", ""]
            L += browser_table(d) + [""]
        if d["fixed_rate"]:
            L += ["Fixed rate (oha, open loop, latency corrected for coordinated omission), cache off:", ""]
            L += fixed_table(d)
            L += [""]
        elif d.get("fixed_rate_skipped"):
            L += [f"Fixed-rate runs skipped: {d['fixed_rate_skipped']}.", ""]
    if len(report["datasets"]) > 1:
        L += ["## Growth: the same scenarios as the data grows", "",
              "Requests/s and p99 (ms) by dataset size; latency should not grow with the data "
              "(every read is an index range or a primary-key lookup).", ""]
        ds = report["datasets"]
        L += ["| scenario | " + " | ".join(f"{d['products']:,}: req/s | p99 ms" for d in ds) + " |",
              "|---|" + "--:|--:|" * len(ds)]
        for sc in SCENARIOS:
            cells = []
            for d in ds:
                r = d["scenarios"].get(sc["name"])
                cells.append(f"{fmt_rps(r['rps'])} | {ms(r['latency_us']['p99'])}" if r else "– | –")
            L.append(f"| {sc['name']} | " + " | ".join(cells) + " |")
        for fr in FIXED_RATE:
            for rate in a["rate"]:
                cells = []
                for d in ds:
                    r = next((x for x in d["fixed_rate"] if x["name"] == fr["name"] and x["rate"] == rate), None)
                    cells.append(f"{fmt_rps(r['rps'])} | {ms(r['latency_us']['p99'])}" if r else "– | –")
                L.append(f"| {fr['name']} @ {rate:,}/s | " + " | ".join(cells) + " |")
        L += ["", f"![growth]({out.name}-growth.svg)", ""]
    L += ["## Chart", "", f"![requests/s and p99 per scenario against its ceiling]({out.name}.svg)", ""]
    L += settings_section(report)
    L += ["## Targets", ""]
    for ok, text in target_checks(report):
        L.append(f"- {'met' if ok else '**missed**'}: {text}")
    if report["errors"]:
        L += ["", "Errors:", ""] + [f"- {e}" for e in report["errors"]]
    L += ["", "## Notes", "",
          "<!-- Analysis of any missed target goes here, with the evidence below. -->", ""]
    L += [f"### Where the CPU went ({big['products']:,} products)", "",
          "Cores used during each measurement, from /proc (utime + stime), sampled every 0.25 s. "
          "`busy before` is what other users of the machine were using just before it started; "
          "disk reads (from /proc/diskstats) are reads that missed the page cache, by anyone.", ""]
    L += cpu_table(big)
    L += ["", f"### Plans ({big['products']:,} products)", ""]
    for name, e in big["explain"].items():
        L += [f"`sql/{name}.sql` prepared with the service's parameter types, executed ten times: "
              f"{e.get('generic_plans')} generic and {e.get('custom_plans')} custom plans "
              "(custom = planned again at each call). Then the next execution as the plan cache "
              f"chooses it, and with the generic plan forced (product {e['product_id']}):",
              "", "```", e["plan"], "```", ""]
    L += ["## How each number was measured", "",
          f"- **Scenarios**: `wrk -t{a['threads']} -c{a['connections']} -d{a['duration']}s --timeout 5s -s "
          "bench/scenarios/SCRIPT URL -- lo= hi= ...` (closed loop, each connection sends its next request when "
          "the previous answer arrives). Every response passes through the Lua `response()` of "
          "`bench/scenarios/common.lua`, which counts it by status and sums its body bytes; req/s = "
          "completed requests / wrk's measured duration; latency percentiles are wrk's own histogram. "
          f"Each is preceded by a {a['warmup']} s warm-up with another random seed. The server's "
          "`/metrics` counters by status class are read before and after, as a second count of non-2xx.",
          "- **Ids**: uniform with `math.random(lo, hi)` per request, seeded per thread; random = the last 10% of "
          "product ids, original = 1..100000 (or all ids on a smaller dataset), hot = the last 10 ids.",
          "- **Database ceiling**: pgbench -M prepared with the same client count as the server's connection pool "
          f"(-c {a['pgbench_clients']} -j 2 -T {a['duration']}), running the statement text of `sql/list.sql` / "
          "`sql/meta.sql` (comments dropped, `$n` replaced by pgbench variables, generated at run time) with ids "
          "drawn by `\\set pid random(lo, hi)` from the same range and the same other parameters "
          "(sort=relevant, count 5 or 1000, page 0, offset 0). Percentiles from pgbench's per-transaction log. "
          "The mixed ceiling runs the same five statements with pgbench weights 45/45/5/4/1; its POST reads the "
          "product's characteristic ids first (`\\gset`), one extra lookup the HTTP run did up front.",
          "- **HTTP ceiling**: the same binary answering `GET /bench/constant/{bytes}` (a constant in-memory body "
          "with the headers of a document), bytes = the mean body size measured in the scenario's own run, "
          "through the same wrk script accounting; measured after every scenario, cached or not.",
          "- **Composed ceiling** (uncached scenarios): 1 / (1/pgbench + 1/constant), the time per request of the "
          "database ceiling plus that of the HTTP ceiling: what the service would reach if its own way to "
          "PostgreSQL cost nothing beyond what pgbench's client pays. For a cached scenario it is the constant "
          "body's req/s. The pgbench ratio is kept beside it.",
          "- **CPU per request**: CPU-seconds of each process group (service, PostgreSQL backends of the "
          "benchmark database, load generator) during the measurement / completed requests (pgbench: "
          "transactions) × 1e6, for every scenario and every ceiling.",
          "- **Fixed rate**: `oha --urls-from-file FILE -z D -q RATE --latency-correction -c N -w` with FILE listing "
          "every id of the range once (oha picks a line uniformly per request); latency is measured from when "
          "each request was scheduled, so a stall is not hidden (coordinated omission).",
          "- **Server**: the release binary, `reviews-api serve` with " +
          " ".join(f"`{k}={v}`" for k, v in sorted((big.get('server_env') or {}).items())
                   if k != 'PORT') + " (cache on for list-hot, meta-hot and mixed), started from a scratch "
          "directory so no config/local.toml applies.",
          "- **Data**: `reviews-api generate --products N --seed 1`, loaded by `reviews-api load`, then "
          "`VACUUM (ANALYZE)` and `pg_prewarm(..., 'read')` of every table and index (page cache). "
          "The mixed scenario and its ceiling write (POST, helpful, report), so each run changes the data "
          "slightly; the review counts above are those at the start of this run.",
          "- **Other users**: before each measurement the runner waits (up to "
          f"{a['quiet_wait']} s) until other processes use less than {a['quiet_threshold']} cores, and when "
          f"they took more than that during a measurement it measures again (up to {a['retries']} times), "
          "keeping the least disturbed attempt; the CPU table says which attempt was kept.", ""]
    out.with_suffix(".md").write_text("\n".join(L))
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    out.with_suffix(".svg").write_text(svg_chart(report))
    if len(report["datasets"]) > 1:
        Path(str(out) + "-growth.svg").write_text(svg_growth(report))
