"""Measuring: who used the cores (CpuSampler), waiting for a quiet machine, the server under
test, and the Runner that runs wrk, pgbench and oha and turns their output into figures."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from common import SCENARIO_DIR, die, log, log_output, ms, run
from dataset import Dataset, Pg

# ---------------------------------------------------------------------------------------------
# CPU accounting: who used the two cores during a measurement


class CpuSampler(threading.Thread):
    """Samples /proc every 0.25 s and attributes CPU time to: the load generator, the server,
    PostgreSQL backends of the benchmark database, other PostgreSQL processes, and everything
    else (other users of the machine). Short-lived processes are seen from their first sample."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, db: str, server_pid: int | None, parts: dict | None = None):
        super().__init__(daemon=True)
        self.db, self.server_pid = db, server_pid
        # The parts of a deployed topology (bench/lib/topology.py): {"pids": {pid: group},
        # "parents": {pid: group}}: a process is counted in its own PID's group, else in its
        # parent's (the NGINX master's workers, a PostgreSQL postmaster's backends).
        self.parts = parts or {"pids": {}, "parents": {}}
        self.loadgen: set[int] = set()
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.klass: dict[int, str] = {}
        self.stop_event = threading.Event()

    @staticmethod
    def disk_reads():
        """(reads, sectors read) of the machine's whole disks: reads that missed the page cache."""
        reads = sectors = 0
        with open("/proc/diskstats") as f:
            for line in f:
                x = line.split()
                if re.fullmatch(r"(vd|sd|xvd)[a-z]+|nvme\d+n\d+", x[2]):
                    reads += int(x[3])
                    sectors += int(x[5])
        return reads, sectors

    @staticmethod
    def total():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v[:8]) - idle, sum(v[:8]), v[7]  # busy, all, steal

    def classify(self, pid: int, ppid: int = 0) -> str:
        if pid in self.loadgen:
            return "loadgen"
        if pid == self.server_pid:
            return "server"
        if pid in self.parts["pids"]:
            return self.parts["pids"][pid]
        if ppid in self.parts["parents"]:
            return self.parts["parents"][ppid]
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return "other"
        if cmd.startswith("postgres"):
            return "postgres" if f" {self.db} " in cmd else "postgres-other"
        return "other"

    def sample(self):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            pid = int(d)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            f = stat[stat.rindex(")") + 2:].split()
            ticks = int(f[11]) + int(f[12])
            if pid not in self.first:
                self.first[pid] = ticks
                self.klass[pid] = self.classify(pid, int(f[1]))
            self.last[pid] = ticks

    def run(self):
        while not self.stop_event.wait(0.25):
            self.sample()

    def __enter__(self):
        self.t0 = time.monotonic()
        self.busy0, self.all0, self.steal0 = self.total()
        self.disk0 = self.disk_reads()
        self.sample()
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join()
        self.sample()
        secs = time.monotonic() - self.t0
        busy1, all1, steal1 = self.total()
        groups = {"loadgen": 0, "server": 0, "postgres": 0, "postgres-other": 0, "other": 0}
        for g in set(self.parts["pids"].values()) | set(self.parts["parents"].values()):
            groups[g] = 0
        for pid, t in self.last.items():
            groups[self.klass[pid]] += t - self.first[pid]
        cores = {k: round(v / self.TICK / secs, 2) for k, v in groups.items()}
        self.seconds = {k: v / self.TICK for k, v in groups.items()}
        ncpu = os.cpu_count() or 1
        cores["machine_busy"] = round((busy1 - self.busy0) / max(1, all1 - self.all0) * ncpu, 2)
        cores["steal"] = round((steal1 - self.steal0) / max(1, all1 - self.all0) * ncpu, 2)
        reads, sectors = self.disk_reads()
        cores["disk_reads_per_s"] = round((reads - self.disk0[0]) / secs)
        cores["disk_read_mb"] = round((sectors - self.disk0[1]) * 512 / 1e6, 1)
        self.result = cores
        return False


def foreign_load_wait(max_wait: float, threshold: float) -> float:
    """Waits (up to max_wait s) until the machine is nearly idle before a measurement: the cores
    are shared with other users. Returns the busy cores seen last."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, a0, _ = CpuSampler.total()
        time.sleep(1.0)
        b1, a1, _ = CpuSampler.total()
        busy = (b1 - b0) / max(1, a1 - a0) * (os.cpu_count() or 1)
        if busy <= threshold or time.monotonic() >= deadline:
            if busy > threshold:
                log(f"note: {busy:.2f} cores busy with other work before this measurement")
            return round(busy, 2)
        time.sleep(2.0)


class Watched(NamedTuple):
    returncode: int
    out: str
    err: str | None          # None when stderr went to out
    cpu: dict                # CpuSampler.result
    cpu_seconds: dict        # CpuSampler.seconds: CPU-seconds by group over the measurement
    server_responses: dict   # the server's own count of responses by status class during the run


def watched(ds: Dataset, server: Server | None, cmd: list[str], *, env=None,
            merge_stderr: bool = True) -> Watched:
    """Runs one measurement's load generator (wrk, pgbench or oha) to its end while CpuSampler
    attributes the cores (the generator's process as the load generator) and, given the server,
    reads the server's /metrics counts by status class before and after."""
    before = server.responses_by_class() if server else {}
    cpu = CpuSampler(ds.db, server.proc.pid if server else None,
                     server.cpu_parts() if hasattr(server, "cpu_parts") else None)
    with cpu:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env,
                             stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
        cpu.loadgen.add(p.pid)
        out, err = p.communicate()
    after = server.responses_by_class() if server else {}
    return Watched(p.returncode, out, err, cpu.result, cpu.seconds,
                   {k: after.get(k, 0) - before.get(k, 0) for k in after})


def per_request(cpu_seconds: dict, requests: int) -> dict:
    """CPU µs per completed request (or pgbench transaction) of each group: CPU-seconds over the
    measurement / completed requests × 1e6."""
    return {k: round(v / requests * 1e6, 1) if requests else None for k, v in cpu_seconds.items()}


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, binary: Path, url: str, port: int, cache: bool, args, workdir: Path):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": url,
            "PORT": str(port),
            "REVIEWS__SERVER__HOST": "127.0.0.1",
            "REVIEWS__SERVER__BENCH_ROUTES": "true",
            "REVIEWS__CACHE__ENABLED": "true" if cache else "false",
            "RUST_LOG": "warn",
        })
        if args.workers is not None:
            env["REVIEWS__SERVER__WORKERS"] = str(args.workers)
        if args.pool_size is not None:
            env["REVIEWS__DATABASE__POOL_SIZE"] = str(args.pool_size)
        self.env = {k: v for k, v in env.items() if k.startswith("REVIEWS__") or k in ("PORT", "DATABASE_URL")}
        log(f"starting the server, cache {'on' if cache else 'off'}: "
            + " ".join(f"{k}={v}" for k, v in sorted(self.env.items())))
        # The working directory is the run's scratch directory, so that no config/local.toml of
        # the developer's checkout changes what is measured: compiled defaults + environment.
        self.logfile = open(workdir / f"server-{port}-{'cache' if cache else 'nocache'}.log", "a")
        self.proc = subprocess.Popen([str(binary), "serve"], env=env, cwd=workdir,
                                     stdout=self.logfile, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die(f"the server exited ({self.proc.returncode}); see {self.logfile.name}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        die("the server did not answer /health within 60 s")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def responses_by_class(self) -> dict[str, int]:
        _, body = self.get("/metrics")
        out = {}
        for m in re.finditer(r'reviews_http_responses_total\{class="(\w+)"\} (\d+)', body.decode()):
            out[m.group(1)] = int(m.group(2))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Load generators


class Runner:
    def __init__(self, args, tools, pg: Pg, workdir: Path):
        self.args, self.tools, self.pg, self.workdir = args, tools, pg, workdir
        self.errors: list[str] = []

    def settle(self) -> float:
        return foreign_load_wait(self.args.quiet_wait, self.args.quiet_threshold)

    def clean(self, label: str, measure):
        """Runs a measurement (warm-up included) and, when other users of the machine (processes,
        or other virtual machines through steal time) took more than --quiet-threshold cores
        during it, runs it again, up to --retries times; keeps the
        least disturbed attempt. Errors of every attempt are kept (see check_errors)."""
        best = None
        for attempt in range(1, self.args.retries + 2):
            r = measure()
            if r is None:
                return None
            c = r["cpu_cores"]
            # Steal is CPU the hypervisor gave other guests: as foreign as another process.
            r["foreign_cores_during"] = round(c.get("other", 0) + c.get("postgres-other", 0)
                                              + c.get("steal", 0), 2)
            r["attempt"] = attempt
            if best is None or r["foreign_cores_during"] < best["foreign_cores_during"]:
                best = r
            if r["foreign_cores_during"] <= self.args.quiet_threshold:
                break
            if attempt <= self.args.retries:
                log(f"{label}: other processes or guests (steal) took {r['foreign_cores_during']:.2f} "
                    f"cores during the measurement; measuring again")
        best["attempts"] = attempt
        return best

    def wrk(self, ds: Dataset, server: Server, script: str, params: dict, seconds: float,
            label: str) -> dict:
        a = self.args
        cmd = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{seconds}s", "--timeout", "5s",
               "-s", str(SCENARIO_DIR / script), server.base, "--"] + [f"{k}={v}" for k, v in params.items()]
        log("$ " + " ".join(shlex.quote(c) for c in cmd), echo=False)
        w = watched(ds, server, cmd)
        out = w.out
        log_output(out)
        m = re.search(r"^BENCH_JSON (.*)$", out, re.M)
        if w.returncode != 0 or not m:
            die(f"wrk failed for {label}:\n{out[-2000:]}")
        r = json.loads(m.group(1))
        secs = r["duration_us"] / 1e6
        r["rps"] = r["requests"] / secs if secs else 0.0
        r["socket_error_count"] = sum(r["socket_errors"].values())
        r["mean_body_bytes"] = r["body_bytes"] / r["responses"] if r["responses"] else 0
        r["server_responses_by_class"] = w.server_responses
        r["cpu_cores"] = w.cpu
        r["cpu_us_per_req"] = per_request(w.cpu_seconds, r["requests"])
        r["command"] = " ".join(shlex.quote(c) for c in cmd)
        self.check_errors(label, r["socket_error_count"], r["non2xx"], r["statuses"])
        # The server's own count: any non-2xx it answered in the window, even one wrk missed
        # (a 304 is an answer when revalidating).
        fine = {"2xx", "3xx"} if params.get("revalidate") else {"2xx"}
        server_bad = sum(v for k, v in r["server_responses_by_class"].items() if k not in fine)
        if server_bad and not r["non2xx"]:
            self.errors.append(f"{label}: the server counted {server_bad} non-2xx responses")
        return r

    def check_errors(self, label, socket_errors, non2xx, statuses):
        if socket_errors or non2xx:
            msg = f"{label}: {socket_errors} socket errors, {non2xx} non-2xx responses {statuses}"
            self.errors.append(msg)
            log("ERROR " + msg)

    def scenario(self, ds: Dataset, server: Server, sc: dict, extra: dict | None = None) -> dict:
        lo, hi = ds.ranges[sc["ids"]]
        params = {"lo": lo, "hi": hi}
        if sc.get("count"):
            params["count"] = sc["count"]
        if sc.get("gzip"):
            params["gzip"] = 1
        if sc.get("revalidate"):
            params["revalidate"] = 1
        if sc["name"] == "mixed":
            params.update(pool=ds.pool_file, rlo=ds.review_range[0], rhi=ds.review_range[1])
        params.update(extra or {})
        label = f"{ds.products}/{sc['name']}"
        warm = self.wrk(ds, server, sc["script"], dict(params, seed=2), self.args.warmup, label + " (warm-up)")
        busy = self.settle()
        r = self.wrk(ds, server, sc["script"], dict(params, seed=1), self.args.duration, label)
        r["foreign_busy_cores_before"] = busy
        r["warmup"] = {k: warm[k] for k in ("requests", "rps", "socket_error_count", "non2xx", "statuses")}
        r["params"] = {k: str(v) for k, v in params.items()}
        log(f"{label}: {r['rps']:,.0f} req/s, p50 {ms(r['latency_us']['p50'])} p99 "
            f"{ms(r['latency_us']['p99'])} ms, {r['socket_error_count']} socket errors, "
            f"{r['non2xx']} non-2xx, mean body {r['mean_body_bytes']:.0f} B, cpu {r['cpu_cores']}")
        return r

    def constant(self, ds: Dataset, server: Server, nbytes: int, label: str) -> dict:
        params = {"bytes": nbytes}
        self.wrk(ds, server, "constant.lua", dict(params, seed=2), self.args.warmup, label + " (warm-up)")
        busy = self.settle()
        r = self.wrk(ds, server, "constant.lua", dict(params, seed=1), self.args.duration, label)
        r["foreign_busy_cores_before"] = busy
        r["kind"] = "constant"
        r["bytes"] = nbytes
        log(f"{label}: {r['rps']:,.0f} req/s, p99 {ms(r['latency_us']['p99'])} ms, cpu {r['cpu_cores']}")
        return r

    def pgbench(self, ds: Dataset, scripts: list[tuple[Path, int]], defines: dict, label: str,
                pgoptions: str | None = None) -> dict:
        a = self.args
        env = dict(os.environ, PGOPTIONS=pgoptions) if pgoptions else None
        clients = a.pgbench_clients
        base = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(2, clients))]
        for k, v in defines.items():
            base += ["-D", f"{k}={v}"]
        for path, weight in scripts:
            base += ["-f", f"{path}@{weight}"]
        # Warm-up: same statements, another seed.
        run(base + ["-T", str(max(1, int(a.warmup))), "--random-seed", "2", self.pg.url(ds.db)], env=env)
        busy = self.settle()
        logdir = Path(tempfile.mkdtemp(prefix="pgbench-", dir=self.workdir))
        cmd = base + ["-T", str(int(a.duration)), "--random-seed", "1", "-l",
                      "--log-prefix", str(logdir / "tx"), self.pg.url(ds.db)]
        log(("PGOPTIONS=" + shlex.quote(pgoptions) + " " if pgoptions else "$ ")
            + " ".join(shlex.quote(c) for c in cmd), echo=False)
        w = watched(ds, None, cmd, env=env)
        out = w.out
        log_output(out)
        if w.returncode != 0:
            die(f"pgbench failed for {label}:\n{out[-3000:]}")
        tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
        processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
        failed_m = re.search(r"number of failed transactions: (\d+)", out)
        failed = int(failed_m.group(1)) if failed_m else 0
        lat = []
        for f in logdir.iterdir():
            with open(f) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2].isdigit():
                        lat.append(int(parts[2]))
        shutil.rmtree(logdir, ignore_errors=True)
        lat.sort()
        r = {
            "kind": "pgbench", "tps": tps, "rps": tps, "transactions": processed, "failed": failed,
            "latency_us": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                           "max": lat[-1] if lat else 0, "mean": sum(lat) / len(lat) if lat else 0},
            "clients": clients, "cpu_cores": w.cpu, "foreign_busy_cores_before": busy,
            # No service runs during a database ceiling: "–", not a measured 0.
            "cpu_us_per_req": dict(per_request(w.cpu_seconds, processed), server=None),
            "command": ("PGOPTIONS=" + shlex.quote(pgoptions) + " " if pgoptions else "")
                       + " ".join(shlex.quote(c) for c in cmd),
            "scripts": {p.name: p.read_text() for p, _ in scripts},
        }
        if failed:
            self.errors.append(f"{label}: pgbench reported {failed} failed transactions")
        log(f"{label}: {tps:,.0f} tps, p50 {ms(r['latency_us']['p50'])} p99 "
            f"{ms(r['latency_us']['p99'])} ms, cpu {r['cpu_cores']}")
        return r

    def fixed_rate(self, ds: Dataset, server: Server, fr: dict, rate: int) -> dict | None:
        oha = self.tools["oha"]
        label = f"{ds.products}/{fr['name']} @ {rate}/s"
        if not oha:
            return None
        lo, hi = ds.ranges[fr["ids"]]
        urls = self.workdir / f"urls-{ds.products}-{fr['name']}.txt"
        with open(urls, "w") as f:
            for i in range(lo, hi + 1):
                f.write(server.base + fr["path"].format(id=i) + "\n")
        busy = self.settle()
        cmd = [oha, "--urls-from-file", str(urls), "-z", f"{int(self.args.duration)}s", "-q", str(rate),
               "--latency-correction", "-c", str(self.args.rate_connections), "-w", "--no-tui",
               "--output-format", "json"]
        log("$ " + " ".join(shlex.quote(c) for c in cmd), echo=False)
        w = watched(ds, server, cmd, merge_stderr=False)
        if w.returncode != 0:
            die(f"oha failed for {label}:\n{w.err[-2000:]}")
        j = json.loads(w.out)
        statuses = {str(k): v for k, v in j.get("statusCodeDistribution", {}).items()}
        non2xx = sum(v for k, v in statuses.items() if not k.startswith("2"))
        errors = sum(j.get("errorDistribution", {}).values())
        lp = j["latencyPercentiles"]
        r = {
            "rate": rate, "rps": j["summary"]["requestsPerSec"],
            "requests": sum(statuses.values()) + errors,
            "latency_us": {k: round((lp.get(p) or 0) * 1e6) for k, p in
                           (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"))},
            "socket_error_count": errors, "error_distribution": j.get("errorDistribution", {}),
            "non2xx": non2xx, "statuses": statuses, "cpu_cores": w.cpu,
            "server_responses_by_class": w.server_responses,
            "foreign_busy_cores_before": busy, "command": " ".join(shlex.quote(str(c)) for c in cmd),
        }
        r["cpu_us_per_req"] = per_request(w.cpu_seconds, r["requests"])
        r["latency_us"]["max"] = round(j["summary"]["slowest"] * 1e6) if j["summary"].get("slowest") else 0
        self.check_errors(label, errors, non2xx, statuses)
        log(f"{label}: {r['rps']:,.0f} req/s, p50 {ms(r['latency_us']['p50'])} p99 "
            f"{ms(r['latency_us']['p99'])} max {ms(r['latency_us']['max'])} ms")
        return r


def pct(sorted_values: list[int], p: float) -> int:
    if not sorted_values:
        return 0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]
