"""--instances N: the scaled-out topology of deploy/local (a primary, R streaming replicas, N
instances, NGINX in front) on the benchmark's own dataset, measured next to one instance without
NGINX on the same primary, and the two drills of the issue "Past one machine on standard parts"
under wrk: a rolling restart and an instance killed with SIGKILL, during a closed-loop run of
mixed.lua through NGINX.

Two deployments are brought up one after the other with `deploy/local up --data` (the CSVs of the
dataset, generated again when the load deleted them): A without replicas, B with R. On A: each
scenario against one `reviews-api serve` started by the runner itself on A's primary (the suite's
usual server settings), then the same scenario through NGINX. On B: each scenario through NGINX,
then the drills. With --shards S, a third, C: a Citus coordinator and S workers instead of the
primary (`deploy/local up --shards S`), measured as A is (one instance direct on the coordinator,
then N through NGINX), in the same run as A, so that what the coordinator's extra hop costs per
read is the difference of the two. Caching is switched between the uncached and the cached scenarios by a rolling
restart of the instances (`deploy/local restart`, with REVIEWS__CACHE__ENABLED in its
environment, which the instances inherit)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from catalog import SCENARIOS
from common import ROOT, SCENARIO_DIR, die, log, log_output, ms, run
from dataset import Dataset, Pg, csv_files
from measure import Runner, Server, free_port, per_request, watched

DEPLOY = ROOT / "deploy" / "local"
TOPOLOGY_SCENARIOS = ["list-random", "meta-random", "list-hot", "meta-hot", "mixed"]
# The drills: wrk's duration, and when (seconds after wrk started) each deploy/local command runs.
DRILLS = {
    "rolling-restart": {"seconds": 40, "steps": [(5, ["restart"])]},
    "kill-one": {"seconds": 30, "steps": [(5, ["kill", "1"]), (15, ["start", "1"])]},
}


class Deployment:
    """One `deploy/local up` in the run's scratch directory, and what it started."""

    def __init__(self, name: str, binary: Path, csv_dir: Path, instances: int, replicas: int,
                 workdir: Path, shards: int = 0):
        self.name, self.binary, self.csv_dir = name, binary, csv_dir
        self.instances, self.replicas, self.shards = instances, replicas, shards
        self.dir = workdir / f"deploy-{name}"
        # PostgreSQL runs as the postgres user when we are root: the scratch folder (mkdtemp,
        # 0700) must let it reach DIR/primary.
        os.chmod(workdir, 0o755)
        self.cache = False
        self.url = ""

    def env(self) -> dict:
        # The instances inherit deploy/local's environment: cache on or off, quiet logs; the rest
        # (workers, pool size) are deploy/local's own defaults, the recipe as documented.
        return dict(os.environ, REVIEWS__CACHE__ENABLED="true" if self.cache else "false", RUST_LOG="warn")

    def cmd(self, *args, check=True) -> subprocess.CompletedProcess:
        return run([DEPLOY, *args, "--dir", self.dir], env=self.env(), check=check)

    def up(self) -> None:
        log(f"deploy/local up: {self.instances} instances, {self.replicas} replicas, "
            f"{self.shards} Citus workers, NGINX ({self.name})")
        p = self.cmd("up", "--instances", self.instances, "--replicas", self.replicas,
                     *(["--shards", self.shards] if self.shards else []),
                     # The benchmark writes far faster than a shopper: no write limit at NGINX.
                     "--write-limit", 0,
                     # What the instances do is measured through NGINX: no microcache in between
                     # (microcache_comparison turns it on where it is the point).
                     "--microcache", "off",
                     "--data", self.csv_dir, "--bin", self.binary)
        self.url = p.stdout.strip().splitlines()[-1]
        if not self.url.startswith("http://"):
            die(f"deploy/local up printed no URL:\n{p.stdout[-2000:]}")

    def down(self) -> None:
        if self.dir.exists():
            self.cmd("down", "--purge", check=False)

    def set_cache(self, on: bool) -> None:
        if self.cache != on:
            self.cache = on
            log(f"{self.name}: rolling restart of the instances with the cache {'on' if on else 'off'}")
            self.cmd("restart")

    def state(self) -> list[dict]:
        rows = []
        for line in (self.dir / "state").read_text().splitlines():
            kind, name, port, pid, folder = line.split()
            rows.append(dict(kind=kind, name=name, port=int(port),
                             pid=int(pid) if pid.isdigit() else None, folder=folder))
        return rows

    def part(self, name: str) -> dict:
        return next(r for r in self.state() if r["name"] == name)

    def primary_url(self) -> str:
        """The database the instances write to: the primary, or the Citus coordinator."""
        main = next(r for r in self.state() if r["kind"] in ("primary", "coordinator"))
        return f"postgres://postgres@127.0.0.1:{main['port']}/reviews"

    def cpu_parts(self, direct_pid: int | None = None) -> dict:
        """CpuSampler's groups: NGINX (master and workers), the instances ("server"; "idle
        instances" while one direct instance is measured), the primary's and the replicas'
        processes (postmaster, backends, WAL sender and receiver...)."""
        pids, parents = {}, {}
        for r in self.state():
            if not r["pid"]:
                continue
            if r["kind"] == "instance":
                pids[r["pid"]] = "idle instances" if direct_pid else "server"
            elif r["kind"] == "nginx":
                pids[r["pid"]] = parents[r["pid"]] = "nginx"
            elif r["kind"] == "primary":
                pids[r["pid"]] = parents[r["pid"]] = "pg primary"
            elif r["kind"] == "replica":
                pids[r["pid"]] = parents[r["pid"]] = "pg replicas"
            elif r["kind"] == "coordinator":
                pids[r["pid"]] = parents[r["pid"]] = "pg coordinator"
            elif r["kind"] == "worker":
                pids[r["pid"]] = parents[r["pid"]] = "pg workers"
        if direct_pid:
            pids[direct_pid] = "server"
        return {"pids": pids, "parents": parents}

    def counts(self) -> dict:
        out = run(["psql", self.primary_url(), "-X", "-Atq", "-c",
                   "SELECT count(*), coalesce(sum(helpfulness), 0), count(*) FILTER (WHERE reported) "
                   "FROM reviews"]).stdout.strip()
        reviews, helpful, reported = (int(x) for x in out.split("|"))
        return {"reviews": reviews, "helpfulness": helpful, "reported": reported}

    def verify(self) -> dict:
        env = dict(os.environ, DATABASE_URL=self.primary_url(), RUST_LOG="warn")
        v = run([self.binary, "verify"], env=env, cwd=self.dir, check=False)
        return {"ok": v.returncode == 0, "output": v.stdout.strip()[-2000:]}


class Front:
    """NGINX as the runner's server under test: its URL, the deployment's CPU groups, and the
    instances' own /metrics counts summed (an instance that does not answer counts nothing)."""

    def __init__(self, dep: Deployment):
        self.dep, self.base = dep, dep.url
        self.proc = SimpleNamespace(pid=None)

    def cpu_parts(self) -> dict:
        return self.dep.cpu_parts()

    def responses_by_class(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for r in self.dep.state():
            if r["kind"] != "instance":
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{r['port']}/metrics", timeout=2) as resp:
                    body = resp.read().decode()
            except OSError:
                continue
            import re
            for m in re.finditer(r'reviews_http_responses_total\{class="(\w+)"\} (\d+)', body):
                total[m.group(1)] = total.get(m.group(1), 0) + int(m.group(2))
        return total


def scenario_def(name: str) -> dict:
    return next(sc for sc in SCENARIOS if sc["name"] == name)


def measure_set(runner: Runner, ds: Dataset, target, names: list[str], label: str) -> dict:
    out = {}
    for name in names:
        sc = scenario_def(name)
        r = runner.clean(f"{name} ({label})", lambda: runner.scenario(ds, target, sc))
        r["configuration"] = label
        out[name] = r
    return out


def microcache_comparison(runner: Runner, ds: Dataset, dep: Deployment, names: list[str]) -> dict:
    """Each hot scenario through NGINX with its 1 s microcache on, then off (`deploy/local
    microcache`, a reload), back to back: requests/s, and how many reached the instances (their
    own /metrics counts over the same seconds). The instances' own cache is on in both."""
    out = {}
    for name in names:
        sc = scenario_def(name)
        pair = {}
        for state in ("on", "off"):
            dep.cmd("microcache", state)
            r = runner.clean(f"{name} (NGINX microcache {state})", lambda: runner.scenario(ds, Front(dep), sc))
            r["configuration"] = f"microcache {state}"
            r["reached_instances"] = sum(r["server_responses_by_class"].values())
            pair[state] = r
        out[name] = pair
    return out


def direct_server(runner: Runner, binary: Path, dep: Deployment, cache: bool) -> Server:
    s = Server(binary, dep.primary_url(), runner.args.port or free_port(), cache, runner.args, runner.workdir)
    s.cpu_parts = lambda: dep.cpu_parts(direct_pid=s.proc.pid)
    return s


# ---------------------------------------------------------------------------------------------
# The drills


def drill(runner: Runner, ds: Dataset, dep: Deployment, name: str) -> dict:
    """wrk with mixed.lua (track=1: one connection per thread) through NGINX for a fixed time while
    the deploy/local commands of DRILLS[name] run at their moments; then what the answers say
    against what the database holds, and `reviews-api verify`."""
    spec = DRILLS[name]
    a = runner.args
    front = Front(dep)
    lo, hi = ds.ranges["last10"]
    params = {"lo": lo, "hi": hi, "pool": ds.pool_file, "rlo": ds.review_range[0],
              "rhi": ds.review_range[1], "seed": 3 if name == "rolling-restart" else 4, "track": 1}
    c = a.connections
    cmd = ["wrk", f"-t{c}", f"-c{c}", f"-d{spec['seconds']}s", "--timeout", "5s",
           "-s", str(SCENARIO_DIR / "mixed.lua"), front.base, "--"] + [f"{k}={v}" for k, v in params.items()]
    before = dep.counts()
    steps_done: list[dict] = []

    def steps():
        t0 = time.monotonic()
        for at, args in spec["steps"]:
            time.sleep(max(0.0, at - (time.monotonic() - t0)))
            s0 = time.monotonic() - t0
            p = dep.cmd(*args, check=False)
            steps_done.append({"command": "deploy/local " + " ".join(args), "started_s": round(s0, 1),
                               "ended_s": round(time.monotonic() - t0, 1), "exit": p.returncode,
                               "output": p.stdout.strip()[-1500:]})

    log(f"drill {name}: wrk -t{c} -c{c} mixed.lua through NGINX for {spec['seconds']} s; "
        + ", ".join(f"at {at} s deploy/local {' '.join(x)}" for at, x in spec["steps"]))
    th = threading.Thread(target=steps, daemon=True)
    th.start()
    w = watched(ds, front, cmd)
    th.join(timeout=120)
    log_output(w.out)
    import json
    import re
    m = re.search(r"^BENCH_JSON (.*)$", w.out, re.M)
    if w.returncode != 0 or not m:
        die(f"wrk failed for the drill {name}:\n{w.out[-2000:]}")
    r = json.loads(m.group(1))
    time.sleep(1)  # answers to requests cut off at wrk's end are committed by now
    after = dep.counts()
    k = r.pop("by_kind")
    secs = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / secs if secs else 0.0
    r["socket_error_count"] = sum(r["socket_errors"].values())
    r["by_kind"] = k

    def kind_total(kind, pred):
        return sum(v for key, v in k.items() if key.startswith(kind + " ") and pred(key.split(" ", 1)[1]))

    def failed(kind, ok_status):
        return kind_total(kind, lambda s: s == "socket-error" or (s.isdigit() and s != ok_status))

    r["failed"] = {"GET": failed("GET", "200"), "POST": failed("POST", "201"),
                   "helpful": failed("helpful", "204"), "report": failed("report", "204")}
    r["failed_socket"] = {kind: k.get(f"{kind} socket-error", 0) for kind in ("GET", "POST", "helpful", "report")}
    # track=1's socket-error counts are inferred (request() called again before an answer); with
    # no socket error in wrk's own count, they are not failures of the client's requests.
    if r["socket_error_count"] == 0 and any(r["failed_socket"].values()):
        r["socket_inference_discarded"] = dict(r["failed_socket"])
        for kind, n in r["failed_socket"].items():
            r["failed"][kind] -= n
    posts_acked, votes_acked = k.get("POST 201", 0), k.get("helpful 204", 0)
    added = after["reviews"] - before["reviews"]
    votes = after["helpfulness"] - before["helpfulness"]
    r["writes"] = {
        "posts_acknowledged": posts_acked, "reviews_added": added,
        # A write acknowledged and absent is lost; one present and not acknowledged was cut off
        # at the end or failed after its commit (the client was told nothing, or an error).
        "posts_lost": max(0, posts_acked - added),
        "helpful_acknowledged": votes_acked, "helpfulness_added": votes,
        "helpful_lost": max(0, votes_acked - votes),
        # More votes than acknowledged + failed + cut off at the end would be a vote counted twice.
        "helpful_unexplained_extra": max(0, votes - votes_acked - r["failed"]["helpful"] - c),
    }
    r["steps"] = steps_done
    r["steps_finished_before_wrk"] = all(s["ended_s"] <= spec["seconds"] for s in steps_done) and \
        len(steps_done) == len(spec["steps"])
    r["cpu_cores"] = w.cpu
    r["cpu_us_per_req"] = per_request(w.cpu_seconds, r["requests"])
    r["command"] = " ".join(cmd)
    r["verify"] = dep.verify()
    lost = r["writes"]["posts_lost"] + r["writes"]["helpful_lost"]
    if name == "rolling-restart":
        ok = r["socket_error_count"] == 0 and r["non2xx"] == 0
        r["acceptance"] = "0 socket errors, 0 non-2xx, no acknowledged write lost, verify clean"
    else:
        ok = r["failed"]["GET"] == 0
        r["acceptance"] = "0 failed GETs, no acknowledged write lost, verify clean"
    ok = ok and lost == 0 and r["writes"]["helpful_unexplained_extra"] == 0 and r["verify"]["ok"] \
        and all(s["exit"] == 0 for s in steps_done)
    r["ok"] = ok
    log(f"drill {name}: {r['requests']:,} requests, {r['socket_error_count']} socket errors "
        f"{r['socket_errors']}, {r['non2xx']} non-2xx {r['statuses']}, failed {r['failed']}, "
        f"writes {r['writes']}, verify {'clean' if r['verify']['ok'] else 'FAILED'}; "
        f"{'passed' if ok else 'FAILED'}")
    if not ok:
        runner.errors.append(f"drill {name} failed its acceptance ({r['acceptance']}): "
                             f"{r['socket_error_count']} socket errors, {r['non2xx']} non-2xx, "
                             f"failed {r['failed']}, writes {r['writes']}, verify "
                             f"{'clean' if r['verify']['ok'] else 'FAILED'}, steps "
                             f"{[(s['command'], s['exit']) for s in steps_done]}")
    return r


# ---------------------------------------------------------------------------------------------
# The whole instances mode for one dataset


def bench_topology(runner: Runner, binary: Path, ds: Dataset, selected: set[str]) -> dict:
    a = runner.args
    names = [n for n in TOPOLOGY_SCENARIOS if n in selected]
    uncached = [n for n in names if not scenario_def(n)["cache"]]
    cached = [n for n in names if scenario_def(n)["cache"]]
    csv_dir = ds.data_dir
    generated = False
    if not all((csv_dir / f).exists() for f in csv_files(str(binary))):
        log(f"generating the {ds.products:,}-product CSVs again for deploy/local up --data")
        run([binary, "generate", "--products", ds.products, "--seed", ds.seed, "--out", csv_dir])
        generated = True
    result = {"products": ds.products, "instances": a.instances, "replicas": a.replicas, "shards": a.shards,
              "scenarios": names, "configurations": {}, "drills": {}}
    deps = []
    try:
        # A: no replica. One instance direct, then N instances through NGINX, scenario by scenario.
        dep = Deployment("a", binary, csv_dir, a.instances, 0, runner.workdir)
        deps.append(dep)
        dep.up()
        direct, front = {}, {}
        for cache, group in ((False, uncached), (True, cached)):
            if not group:
                continue
            dep.set_cache(cache)
            server = direct_server(runner, binary, dep, cache)
            try:
                direct.update(measure_set(runner, ds, server, group, "1 instance direct"))
            finally:
                server.stop()
            front.update(measure_set(runner, ds, Front(dep), group, f"{a.instances} instances via NGINX"))
        result["configurations"]["direct"] = direct
        result["configurations"]["nginx"] = front
        hot = [n for n in cached if n in ("list-hot", "meta-hot")]
        if hot:
            result["microcache"] = microcache_comparison(runner, ds, dep, hot)
        dep.down()
        deps.remove(dep)
        # C: the same on Citus, a coordinator and S workers.
        if a.shards:
            dep = Deployment("c", binary, csv_dir, a.instances, 0, runner.workdir, shards=a.shards)
            deps.append(dep)
            dep.up()
            direct, front = {}, {}
            for cache, group in ((False, uncached), (True, cached)):
                if not group:
                    continue
                dep.set_cache(cache)
                server = direct_server(runner, binary, dep, cache)
                try:
                    direct.update(measure_set(runner, ds, server, group,
                                              f"1 instance direct, Citus 1 + {a.shards}"))
                finally:
                    server.stop()
                front.update(measure_set(runner, ds, Front(dep), group,
                                         f"{a.instances} instances via NGINX, Citus 1 + {a.shards}"))
            result["configurations"]["citus direct"] = direct
            result["configurations"]["citus nginx"] = front
            result["citus_verify"] = dep.verify()
            if not result["citus_verify"]["ok"]:
                runner.errors.append(f"verify on Citus after the scenarios: {result['citus_verify']['output']}")
            dep.down()
            deps.remove(dep)
        # B: R replicas, through NGINX; then the drills.
        if a.replicas:
            dep = Deployment("b", binary, csv_dir, a.instances, a.replicas, runner.workdir)
            deps.append(dep)
            dep.up()
            rep = {}
            for cache, group in ((False, uncached), (True, cached)):
                if group:
                    dep.set_cache(cache)
                    rep.update(measure_set(runner, ds, Front(dep), group,
                                           f"{a.instances} instances via NGINX, {a.replicas} replica(s)"))
            result["configurations"]["replicas"] = rep
        else:
            dep = Deployment("b", binary, csv_dir, a.instances, 0, runner.workdir)
            deps.append(dep)
            dep.up()
        if a.instances >= 2 and not a.no_drills:
            dep.set_cache(True)
            for name in DRILLS:
                runner.settle()
                result["drills"][name] = drill(runner, ds, dep, name)
        result["server_env"] = {k: v for k, v in dep.env().items() if k.startswith("REVIEWS__")}
        result["nginx_conf"] = (ROOT / "deploy" / "nginx.conf.template").read_text()
    finally:
        for d in deps:
            d.down()
        if generated:
            for f in csv_files(str(binary)):
                (csv_dir / f).unlink(missing_ok=True)
    return result


# ---------------------------------------------------------------------------------------------
# The report of the instances mode


CPU_PARTS = [("nginx", "NGINX"), ("server", "instances"), ("pg primary", "PG primary"),
             ("pg replicas", "PG replicas"), ("pg coordinator", "Citus coordinator"),
             ("pg workers", "Citus workers"), ("loadgen", "wrk")]


def comparison_table(t: dict) -> list[str]:
    confs = [(k, v) for k, v in t["configurations"].items() if v]
    lines = ["| scenario | configuration | req/s | p50 ms | p99 ms | " +
             " | ".join(f"CPU µs/req {label}" for _, label in CPU_PARTS) + " | CPU µs/req total | errors "
             "| others' cores during (attempt kept) |",
             "|---|---|--:|--:|--:|" + "--:|" * len(CPU_PARTS) + "--:|--:|--:|"]
    for name in t["scenarios"]:
        for key, conf in confs:
            r = conf.get(name)
            if not r:
                continue
            per = r.get("cpu_us_per_req") or {}
            cells = []
            for g, _ in CPU_PARTS:
                v = per.get(g)
                cells.append("–" if v is None or (g in ("nginx", "pg replicas", "pg coordinator", "pg workers")
                                                  and not v) else f"{v:,.0f}")
            total = sum(per.get(g) or 0 for g, _ in CPU_PARTS if g != "loadgen")
            lines.append(f"| {name} | {r['configuration']} | {r['rps']:,.0f} | {ms(r['latency_us']['p50'])} | "
                         f"{ms(r['latency_us']['p99'])} | " + " | ".join(cells) +
                         f" | {total:,.0f} | {r['socket_error_count'] + r['non2xx']} | "
                         f"{r.get('foreign_cores_during', 0):.2f} ({r.get('attempt', 1)} of {r.get('attempts', 1)}) |")
    return lines


def drills_table(t: dict) -> list[str]:
    lines = ["| drill | requests | req/s | socket errors | non-2xx | failed GETs | failed POST / helpful / report "
             "| POSTs acknowledged / reviews added | helpful acknowledged / votes added | acknowledged writes lost "
             "| verify | result |", "|---|--:|--:|--:|--:|--:|---|---|---|--:|---|---|"]
    for name, r in t["drills"].items():
        w, f = r["writes"], r["failed"]
        lines.append(f"| {name} | {r['requests']:,} | {r['rps']:,.0f} | {r['socket_error_count']} | {r['non2xx']} | "
                     f"{f['GET']} | {f['POST']} / {f['helpful']} / {f['report']} | {w['posts_acknowledged']:,} / "
                     f"{w['reviews_added']:,} | {w['helpful_acknowledged']:,} / {w['helpfulness_added']:,} | "
                     f"{w['posts_lost'] + w['helpful_lost']} | {'clean' if r['verify']['ok'] else 'FAILED'} | "
                     f"{'passed' if r['ok'] else '**failed**'} |")
    return lines


def overhead_lines(t: dict) -> list[str]:
    """What NGINX and the replica cost per request, from the table's figures."""
    out = []
    direct, nginx, rep = (t["configurations"].get(k) or {} for k in ("direct", "nginx", "replicas"))

    def total(r):
        per = r.get("cpu_us_per_req") or {}
        return sum(per.get(g) or 0 for g, _ in CPU_PARTS if g != "loadgen")

    for name in t["scenarios"]:
        d, n, p = direct.get(name), nginx.get(name), rep.get(name)
        if d and n:
            s = (f"- {name}: through NGINX {n['rps'] / d['rps']:.0%} of the direct req/s, "
                 f"p99 {ms(d['latency_us']['p99'])} → {ms(n['latency_us']['p99'])} ms; NGINX "
                 f"{(n['cpu_us_per_req'] or {}).get('nginx') or 0:,.0f} µs CPU per request, server side in all "
                 f"{total(d):,.0f} → {total(n):,.0f} µs")
            if p:
                s += (f"; with the replica {p['rps'] / n['rps']:.0%} of NGINX's req/s, p99 "
                      f"{ms(p['latency_us']['p99'])} ms, replica processes "
                      f"{(p['cpu_us_per_req'] or {}).get('pg replicas') or 0:,.0f} µs/req, primary "
                      f"{(n['cpu_us_per_req'] or {}).get('pg primary') or 0:,.0f} → "
                      f"{(p['cpu_us_per_req'] or {}).get('pg primary') or 0:,.0f} µs/req")
            out.append(s)
    # Citus against plain PostgreSQL, both one instance direct in the same run: the coordinator's
    # hop (plan, route, forward, relay) is what the database side costs more per read.
    cdirect = t["configurations"].get("citus direct") or {}
    for name in t["scenarios"]:
        d, c = direct.get(name), cdirect.get(name)
        if d and c:
            per_d, per_c = d.get("cpu_us_per_req") or {}, c.get("cpu_us_per_req") or {}
            db_d = per_d.get("pg primary") or 0
            db_c = (per_c.get("pg coordinator") or 0) + (per_c.get("pg workers") or 0)
            out.append(f"- {name} on Citus 1 + {t.get('shards')}: {c['rps'] / d['rps']:.0%} of plain PostgreSQL's req/s "
                       f"(one instance direct), p99 {ms(d['latency_us']['p99'])} → {ms(c['latency_us']['p99'])} ms; "
                       f"database CPU per request {db_d:,.0f} → {db_c:,.0f} µs (coordinator "
                       f"{per_c.get('pg coordinator') or 0:,.0f}, workers {per_c.get('pg workers') or 0:,.0f}), "
                       f"service {per_d.get('server') or 0:,.0f} → {per_c.get('server') or 0:,.0f} µs; "
                       f"the hop costs {db_c - db_d:+,.0f} µs of database CPU per read")
    return out


def microcache_table(t: dict) -> list[str]:
    lines = ["| scenario | microcache | req/s | p99 ms | requests that reached the instances (per s) "
             "| CPU µs/req NGINX | CPU µs/req instances | CPU µs/req total | errors |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, pair in t["microcache"].items():
        for state, r in pair.items():
            per = r.get("cpu_us_per_req") or {}
            total = sum(per.get(g) or 0 for g, _ in CPU_PARTS if g != "loadgen")
            secs = r["duration_us"] / 1e6
            lines.append(f"| {name} | {state} | {r['rps']:,.0f} | {ms(r['latency_us']['p99'])} | "
                         f"{r['reached_instances']:,} ({r['reached_instances'] / secs:,.0f}) | "
                         f"{per.get('nginx') or 0:,.0f} | {per.get('server') or 0:,.0f} | {total:,.0f} | "
                         f"{r['socket_error_count'] + r['non2xx']} |")
    return lines


def svg_topology(t: dict) -> str:
    confs = [(k, v) for k, v in t["configurations"].items() if v]
    colours = {"direct": "#2b5d9b", "nginx": "#7fa3d1", "replicas": "#c9d7ea",
               "citus direct": "#9b5d2b", "citus nginx": "#d1a37f"}
    top = max((r["rps"] for _, c in confs for r in c.values()), default=1) or 1
    row_h, label_w, bar_w = 16, 110, 420
    parts, y = [], 10
    x = label_w
    for key, conf in confs:
        label = next(iter(conf.values()))["configuration"]
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="10" fill="{colours[key]}"/>'
                     f'<text x="{x + 16}" y="{y + 9}" font-size="11">{label}</text>')
        x += 16 + 7 * len(label) + 20
    y += 24
    for name in t["scenarios"]:
        parts.append(f'<text x="10" y="{y + row_h * len(confs) / 2 + 4}" font-size="12">{name}</text>')
        for key, conf in confs:
            r = conf.get(name)
            if r:
                w = bar_w * r["rps"] / top
                parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{row_h - 3}" fill="{colours[key]}"/>'
                             f'<text x="{label_w + w + 5:.1f}" y="{y + 11}" font-size="11">{r["rps"]:,.0f} req/s, '
                             f'p99 {ms(r["latency_us"]["p99"])} ms</text>')
            y += row_h
        y += 10
    h = y + 10
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 200}" height="{h}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>' + "".join(parts) + "</svg>")


def write_topology_report(report: dict, out: Path) -> None:
    import json
    a, m = report["args"], report["machine"]
    L = [f"# reviews-api across instances and replicas, {report['date']}", "",
         f"`{report['command']}`: {a['duration']} s per measurement after a {a['warmup']} s warm-up, "
         f"wrk -t{a['threads']} -c{a['connections']}; commit {m['commit']}. {m['nproc']} cores "
         f"({m['cpu']}), {m['memory']} memory, PostgreSQL {m['postgres']}; load generator, NGINX, the "
         "instances and every PostgreSQL cluster share the cores.", ""]
    for t in report["topologies"]:
        L += [f"## {t['products']:,} products: one instance direct vs {t['instances']} instances through NGINX"
              + (f" vs with {t['replicas']} replica(s)" if t["replicas"] else ""), "",
              "Each deployment is `deploy/local up --instances N --replicas R --data CSV_DIR` on the dataset's "
              "CSVs (a fresh primary, `pg_basebackup -R` replicas, the instances with deploy/local's defaults of "
              "2 workers and a pool of 8 each, the cache off for list-random and meta-random and on for the "
              "others, NGINX from deploy/nginx.conf.template). "
              "`1 instance direct` is `reviews-api serve` with the suite's usual settings (compiled defaults: "
              "as many workers as cores, a pool of 16) on the same primary, wrk straight to it.", ""]
        L += comparison_table(t)
        L += ["", "CPU µs/req: CPU-seconds of each part's processes during the measurement / completed "
              "requests × 1e6 (NGINX: master and workers; instances: every `reviews-api serve` of the "
              "configuration; PG primary / replicas: every process of that cluster, WAL sender and receiver "
              "included). Total: every part but wrk.", ""]
        L += ["What NGINX, the replica and Citus cost or bring here:", ""] + overhead_lines(t) + [""]
        if t.get("microcache"):
            L += ["### NGINX's microcache", "",
                  "The hot scenarios through NGINX on deployment A (instances' cache on), with NGINX's 1 s "
                  "microcache on and then off (`deploy/local microcache on|off`, a reload), back to back. "
                  "Requests that reached the instances: their own /metrics response counts over the same "
                  "seconds.", ""] + microcache_table(t) + [""]
        if t["drills"]:
            L += ["### Drills under wrk", "",
                  f"wrk -t{a['connections']} -c{a['connections']} (one connection per thread, so mixed.lua's "
                  "`track=1` can tell which request failed) runs mixed.lua (45% GET list, 45% GET meta, "
                  "5% POST, 4% PUT helpful, 1% PUT report, cache on) through NGINX for a fixed time while "
                  "deploy/local acts: `restart` (every instance in turn: its successor started on the same port, "
                  "then the old one SIGTERMed: it drains and exits; NGINX is not reloaded), or `kill 1` (SIGKILL) then `start 1`. POSTs answered "
                  "201 are compared with the reviews added on the primary, helpful votes answered 204 with "
                  "the sum of helpfulness added; then `reviews-api verify`.", ""]
            L += drills_table(t)
            L += [""]
            for name, r in t["drills"].items():
                L += [f"- {name}: " + "; ".join(f"`{s['command']}` at {s['started_s']}-{s['ended_s']} s "
                                                  f"(exit {s['exit']})" for s in r["steps"])
                      + f"; statuses {r['statuses']}; socket errors {r['socket_errors']}; per kind of request "
                      f"(mixed.lua track=1) {dict(sorted(r['by_kind'].items()))}; acceptance: {r['acceptance']}."]
            L += [""]
    if report["errors"]:
        L += ["## Errors", ""] + [f"- {e}" for e in report["errors"]] + [""]
    L += ["## Notes", "", "<!-- Analysis goes here. -->", ""]
    out.with_suffix(".md").write_text("\n".join(L))
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    out.with_suffix(".svg").write_text(svg_topology(report["topologies"][-1]) if report["topologies"] else "<svg/>")
