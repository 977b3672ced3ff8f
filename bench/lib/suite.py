"""The run itself: the command line, one dataset size's scenarios in order (bench_dataset), and
main, which ties the tools, the datasets, the measurements and the report together."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import common
from catalog import (FIXED_RATE, FULL_SIZE, SCENARIOS, SERVICE_PGOPTIONS, SMOKE_SIZE, STOCK_PG_URL,
                     TARGET_FIXED_RATE)
from cluster import PrivateCluster
from common import BENCH, build, die, ensure_tools, log, release_binary, run
from dataset import BenchLock, Dataset, MachineLock, Pg, csv_files, ensure_dataset, prepare_dataset, restore_writes, snapshot_writes
from measure import Runner, Server, free_port
from report import fixed_table, machine_facts, postgres_facts, results_table, target_checks, write_report
from service_sql import explain, pgbench_scripts
from topology import DRILLS, TOPOLOGY_SCENARIOS, bench_topology, write_topology_report

# ---------------------------------------------------------------------------------------------
# One dataset size


def bench_dataset(runner: Runner, binary: Path, ds: Dataset, selected: set[str]) -> dict:
    a, pg = runner.args, runner.pg
    scripts = pgbench_scripts(ds, runner.workdir)
    list_defines = {"sort": "relevant", "page": 0, "offset": 0}
    result = {"products": ds.products, "seed": ds.seed, "database": ds.db, "facts": ds.facts,
              "ranges": ds.ranges, "review_range": ds.review_range, "scenarios": {}, "fixed_rate": [],
              "explain": explain(pg, ds)}
    port = a.port or free_port()

    def pgbench_ceiling(sc):
        kind, ids = sc["ceiling"], sc["ids"]
        if kind == "pgbench-list":
            return runner.clean(sc["name"], lambda: runner.pgbench(
                ds, [(scripts[f"list-{ids}"], 1)], dict(list_defines, count=sc.get("count") or 5),
                f"{ds.products}/{sc['name']} ceiling (pgbench)", pgoptions=SERVICE_PGOPTIONS))
        if kind == "pgbench-meta":
            return runner.clean(sc["name"], lambda: runner.pgbench(
                ds, [(scripts[f"meta-{ids}"], 1)], {}, f"{ds.products}/{sc['name']} ceiling (pgbench)", pgoptions=SERVICE_PGOPTIONS))
        if kind == "pgbench-mixed":
            return runner.clean("mixed ceiling", lambda: runner.pgbench(
                ds, [(scripts["list-last10"], 45), (scripts["meta-last10"], 45),
                     (scripts["post"], 5), (scripts["helpful"], 4), (scripts["report"], 1)],
                dict(list_defines, count=5, summary="bench run", body="Written by bench/run mixed.",
                     recommend="true", name="bench", email="bench@example.com", photos="{}"),
                f"{ds.products}/mixed ceiling (pgbench)", pgoptions=SERVICE_PGOPTIONS))
        raise ValueError(kind)

    # Cache off: the uncached scenarios, each followed by its database ceiling, then fixed rate.
    uncached = [sc for sc in SCENARIOS if not sc["cache"] and sc["name"] in selected]
    fixed = [fr for fr in FIXED_RATE if fr["name"] in selected]
    if uncached or fixed:
        server = Server(binary, pg.url(ds.db), port, False, a, runner.workdir)
        result["server_env"] = server.env
        try:
            for sc in uncached:
                r = runner.clean(sc["name"], lambda: runner.scenario(ds, server, sc))
                if sc["ceiling"]:
                    r["ceiling"] = pgbench_ceiling(sc)
                    # The HTTP half of the path: the same binary answering a constant body of the
                    # scenario's mean size, for the composed ceiling below.
                    nbytes = max(1, round(r["mean_body_bytes"]))
                    r["constant"] = runner.clean(f"{sc['name']} constant", lambda: runner.constant(
                        ds, server, nbytes, f"{ds.products}/{sc['name']} HTTP ceiling (constant {nbytes} B)"))
                result["scenarios"][sc["name"]] = r
            for rate in a.rate:
                for fr in fixed:
                    fr_r = runner.clean(f"{fr['name']} @ {rate}/s",
                                        lambda: runner.fixed_rate(ds, server, fr, rate))
                    if fr_r:
                        fr_r["name"] = fr["name"]
                        result["fixed_rate"].append(fr_r)
            if not runner.tools["oha"] and fixed:
                result["fixed_rate_skipped"] = "oha is not installed (cargo install oha --locked)"
        finally:
            server.stop()

    # Cache on: the hot ids against the constant body of their mean size, then the mix.
    cached = [sc for sc in SCENARIOS if sc["cache"] and sc["name"] in selected]
    if "mixed" in selected:
        snapshot_writes(pg, ds)
    if cached:
        server = Server(binary, pg.url(ds.db), port, True, a, runner.workdir)
        result["server_env_cached"] = server.env
        mixed_done = False
        try:
            for sc in cached:
                r = runner.clean(sc["name"], lambda: runner.scenario(ds, server, sc))
                if sc["ceiling"] == "constant":
                    nbytes = max(1, round(r["mean_body_bytes"]))
                    r["ceiling"] = runner.clean(f"{sc['name']} ceiling", lambda: runner.constant(
                        ds, server, nbytes, f"{ds.products}/{sc['name']} ceiling (constant {nbytes} B)"))
                elif sc["name"] == "mixed":
                    mixed_done = True
                result["scenarios"][sc["name"]] = r
        finally:
            server.stop()
        if mixed_done:
            # After the server stopped: its LISTEN connection would otherwise do work for
            # pgbench's writes during the ceiling.
            result["scenarios"]["mixed"]["ceiling"] = pgbench_ceiling(
                next(sc for sc in SCENARIOS if sc["name"] == "mixed"))
    if "mixed" in selected:
        if ds.products <= a.verify_up_to:
            # The service's own check that every product's meta equals what its reviews say,
            # right after thousands of concurrent writes (the server's and pgbench's), before
            # the runner undoes them.
            env = dict(os.environ, DATABASE_URL=pg.url(ds.db), RUST_LOG="warn")
            v = run([binary, "verify"], env=env, cwd=runner.workdir, check=False)
            result["verify"] = {"ok": v.returncode == 0, "output": v.stdout.strip()[-2000:]}
            if v.returncode != 0:
                runner.errors.append(f"{ds.products}: reviews-api verify failed after the mixed run")
            log(f"reviews-api verify after the writes: {'ok' if v.returncode == 0 else 'FAILED'}")
        result["writes_undone"] = restore_writes(pg, ds.db)

    for name, r in result["scenarios"].items():
        c = r.get("ceiling")
        r["ratio"] = r["rps"] / c["rps"] if c and c["rps"] else None
        # The composed ceiling of an uncached read: a request costs the service's HTTP work (the
        # constant body's time per request) plus the database's (pgbench's), one after the other
        # on the same cores, so 1 / (1/pgbench + 1/constant): what the service would reach if its
        # way to PostgreSQL cost nothing beyond what pgbench's client pays. A cached read's whole
        # path is the HTTP one: its composed ceiling is the constant body itself.
        k = r.get("constant")
        if c and c["kind"] == "pgbench" and k and c["rps"] and k["rps"]:
            r["composed_rps"] = 1 / (1 / c["rps"] + 1 / k["rps"])
        elif c and c["kind"] == "constant":
            r["composed_rps"] = c["rps"]
        else:
            r["composed_rps"] = None
        r["composed_ratio"] = r["rps"] / r["composed_rps"] if r["composed_rps"] else None
        # The same ratio per core of the component that does the work: PostgreSQL backends for a
        # database ceiling, the server for the constant body. Near 100% means each query (or
        # response) costs the same in both runs, and the gap in req/s is CPU the other parties
        # (load generator, HTTP) took from the shared cores.
        r["per_core_ratio"] = None
        if c:
            part = "server" if c["kind"] == "constant" else "postgres"
            a_, b_ = r["cpu_cores"].get(part, 0), c["cpu_cores"].get(part, 0)
            if a_ > 0 and b_ > 0:
                r["per_core_ratio"] = (r["rps"] / a_) / (c["rps"] / b_)
    return result


# ---------------------------------------------------------------------------------------------
# The command


def parse_args(argv, description: str):
    p = argparse.ArgumentParser(prog="bench/run", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--products", action="append", metavar="N[,N...]",
                   help=f"dataset size(s), repeatable or comma-separated (default {FULL_SIZE}; smoke {SMOKE_SIZE})")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--duration", type=int, help="seconds per measurement (default 30; smoke 3)")
    p.add_argument("--warmup", type=int, help="seconds of warm-up before each measurement (default 10; smoke 1)")
    p.add_argument("--connections", type=int, default=16,
                   help="wrk connections (default 16, the pgbench ceilings' client count)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--workers", type=int, help="server workers (REVIEWS__SERVER__WORKERS; default: the server's)")
    p.add_argument("--pool-size", type=int, help="server pool size (REVIEWS__DATABASE__POOL_SIZE; default: the server's, 16)")
    p.add_argument("--pgbench-clients", type=int, help="pgbench clients (default: the pool size)")
    p.add_argument("--rate", action="append", type=int, help="fixed rate(s), req/s (default 1000)")
    p.add_argument("--rate-connections", type=int, default=32, help="oha connections for fixed-rate runs (default 32)")
    p.add_argument("--scenarios", help="comma-separated subset of: " + ", ".join(s["name"] for s in SCENARIOS))
    p.add_argument("--smoke", action="store_true", help="CI: a few seconds per scenario on 2,000 products; "
                                                         "exits non-zero on any socket error or non-2xx answer")
    p.add_argument("--port", type=int, help="server port (default: a free one)")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL"),
                   help="measure against this PostgreSQL server, without database, as it is configured "
                        "(default $BENCH_PG_URL; without either: the private cluster in bench/pg/, or with "
                        f"--smoke the machine's server at {STOCK_PG_URL})")
    p.add_argument("--private-pg", action="store_true",
                   help="use the private cluster (bench/pg/) even with --smoke")
    p.add_argument("--keep-pg", action="store_true",
                   help="leave the private cluster running at the end (it is reused either way)")
    p.add_argument("--quiet-wait", type=float, help="seconds to wait for other users' load to drop before each "
                                                    "measurement (default 30; smoke 0)")
    p.add_argument("--quiet-threshold", type=float, default=0.3, help="cores of foreign load that count as quiet (0.3)")
    p.add_argument("--retries", type=int, help="measure again when other processes took more than the quiet "
                                               "threshold during a measurement, up to this many times (default 2; smoke 0)")
    p.add_argument("--verify-up-to", type=int, default=2_000_000,
                   help="run `reviews-api verify` after the mixed run on datasets up to this size "
                        "(2000000: every size; about a minute at full size)")
    p.add_argument("--prepare-only", action="store_true",
                   help="make sure the datasets are loaded, then stop (no measurements)")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    p.add_argument("--instances", type=int, default=0, metavar="N",
                   help="instead of the single-instance suite: bring up deploy/local's topology (N instances "
                        "behind NGINX) on each dataset and measure " + ", ".join(TOPOLOGY_SCENARIOS) +
                        " through NGINX next to one instance without NGINX on the same primary, again with "
                        "--replicas R streaming replicas, then (N >= 2) the drills " + ", ".join(DRILLS) +
                        " under wrk")
    p.add_argument("--replicas", type=int, default=1, metavar="R",
                   help="with --instances: replicas of the second deployment (default 1; 0: none)")
    p.add_argument("--shards", type=int, default=0, metavar="S",
                   help="with --instances: also a Citus deployment (a coordinator and S workers, "
                        "deploy/local up --shards S), measured as the plain one is, in the same run")
    p.add_argument("--no-drills", action="store_true", help="with --instances: skip the drills")
    p.add_argument("--out", type=Path, help="results directory (default bench/results; smoke bench/results/smoke)")
    a = p.parse_args(argv)
    sizes = []
    for item in a.products or []:
        sizes += [int(x.replace("_", "")) for x in item.split(",") if x.strip()]
    a.products = sizes or [SMOKE_SIZE if a.smoke else FULL_SIZE]
    a.duration = a.duration or (3 if a.smoke else 30)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.smoke else 10)
    a.quiet_wait = a.quiet_wait if a.quiet_wait is not None else (0 if a.smoke else 30)
    a.rate = a.rate or [TARGET_FIXED_RATE]
    a.retries = a.retries if a.retries is not None else (0 if a.smoke else 2)
    a.pgbench_clients = a.pgbench_clients or a.pool_size or 16
    a.out = a.out or (BENCH / "results" / "smoke" if a.smoke else BENCH / "results")
    # Where PostgreSQL comes from: a given server as it is, else the private cluster configured for
    # the job; the smoke (CI, correctness only) uses the machine's stock server unless told.
    if a.pg_url and a.private_pg:
        p.error("--private-pg and --pg-url (or BENCH_PG_URL) name two different servers")
    a.private = not a.pg_url and (a.private_pg or not a.smoke)
    if not a.pg_url and not a.private:
        a.pg_url = STOCK_PG_URL
    if a.instances and a.smoke:
        p.error("--smoke measures one instance; run --instances without it")
    if a.instances < 0 or a.replicas < 0 or a.shards < 0:
        p.error("--instances, --replicas and --shards take a count")
    if a.shards and not a.instances:
        p.error("--shards goes with --instances N (the topology mode)")
    names = [s["name"] for s in SCENARIOS]
    a.selected = set(a.scenarios.split(",")) if a.scenarios else set(names)
    unknown = a.selected - set(names)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return a


def main(argv, description: str) -> int:
    """The whole run; `description` is the first line of bench/run's docstring, for --help."""
    a = parse_args(argv, description)
    a.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H%M")
    out = a.out / stamp
    common.open_log(out.with_suffix(".log"))
    workdir = Path(tempfile.mkdtemp(prefix="reviews-bench-"))
    command = "bench/run " + " ".join(shlex.quote(x) for x in argv)
    log(f"{command}; log in {out.with_suffix('.log')}, scratch in {workdir}")
    tools = ensure_tools(a.smoke)
    binary = release_binary() if a.no_build else build()
    csv_files(str(binary))  # the dataset's file names, from the binary: fail now, not mid-run
    # SIGTERM ends the run like Ctrl-C: the finally blocks stop the server, the private cluster
    # and release the locks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    machine_lock = MachineLock(f"{command} in {BENCH.parent}")
    machine_lock.acquire()
    cluster = None
    try:
        if a.private:
            # The server's pool and read lanes, pgbench's clients, psql: with room to spare.
            pool = a.pool_size or 16
            cluster = PrivateCluster(binary, max(100, 2 * (pool + a.pgbench_clients) + 20))
            a.pg_url = cluster.start()
        return measure_all(a, command, stamp, out, workdir, tools, binary, cluster)
    finally:
        if cluster and not a.keep_pg:
            cluster.stop()
        elif cluster:
            log(f"the private PostgreSQL keeps running (--keep-pg): {cluster.url}")
        machine_lock.release()
        shutil.rmtree(workdir, ignore_errors=True)


def measure_all(a, command, stamp, out, workdir, tools, binary, cluster) -> int:
    pg = Pg(a.pg_url)
    if run(["psql", pg.url("postgres"), "-Atqc", "SELECT 1"], check=False).returncode != 0:
        die(f"cannot reach PostgreSQL at {a.pg_url} (set --pg-url or BENCH_PG_URL)")
    report = {"date": stamp, "command": command, "args": {k: (str(v) if isinstance(v, Path) else v)
                                                          for k, v in vars(a).items() if k != "selected"},
              "machine": machine_facts(pg, tools), "postgres": postgres_facts(pg, cluster),
              "datasets": [], "errors": []}
    report["args"]["selected"] = sorted(a.selected)
    runner = Runner(a, tools, pg, workdir)
    lock = BenchLock(pg)
    lock.acquire()
    try:
        datasets = [Dataset(n, a.seed) for n in a.products]
        for ds in datasets:
            ensure_dataset(pg, binary, ds, workdir)
        if a.prepare_only:
            log("datasets ready: " + ", ".join(ds.db for ds in datasets))
            return 0
        if a.instances:
            return measure_topologies(a, report, runner, binary, datasets, out)
        for ds in datasets:
            prepare_dataset(pg, ds, workdir)
            report["datasets"].append(bench_dataset(runner, binary, ds, a.selected))
            report["errors"] = runner.errors
            write_report(report, out)  # after each size, so a long run leaves something behind
    finally:
        lock.release()
    report["errors"] = runner.errors
    write_report(report, out)
    log(f"report: {out.with_suffix('.md')} (.json, .svg)")
    print()
    for d in report["datasets"]:
        print(f"{d['products']:,} products")
        print("\n".join(results_table(d)))
        if d["fixed_rate"]:
            print()
            print("\n".join(fixed_table(d)))
        print()
    for ok, text in target_checks(report):
        print(f"{'met   ' if ok else 'MISSED'} {text}")
    if runner.errors:
        log(f"{len(runner.errors)} run(s) had errors:\n  " + "\n  ".join(runner.errors))
        return 1
    return 0



def measure_topologies(a, report, runner, binary, datasets, out) -> int:
    """--instances N: deploy/local's topology on each dataset (bench/lib/topology.py)."""
    report["topologies"] = []
    for ds in datasets:
        prepare_dataset(runner.pg, ds, runner.workdir)
        report["datasets"].append({"products": ds.products, "facts": ds.facts})
        report["topologies"].append(bench_topology(runner, binary, ds, a.selected))
        report["errors"] = runner.errors
        write_topology_report(report, out)
    log(f"report: {out.with_suffix('.md')} (.json, .svg)")
    print(out.with_suffix(".md").read_text())
    if runner.errors:
        log(f"{len(runner.errors)} run(s) had errors:\n  " + "\n  ".join(runner.errors))
        return 1
    return 0
