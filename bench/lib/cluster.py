"""The private PostgreSQL cluster that bench/run measures against by default: the machine's own
initdb and pg_ctl (/usr/lib/postgresql/*/bin), a folder under bench/ (bench/pg/, git-ignored), a
free port, trust authentication on 127.0.0.1 and a Unix socket in bench/pg/sock, and settings
sized from the machine's memory the way a DBA would set them for a read-heavy service whose data
fits in memory (SETTINGS below: every value with its reason, which the report prints).

The cluster is `reviews-api devdb` in bench/pg/ (src/devdb.rs: initdb the first time, pg_ctl, as
the `postgres` user when we are root), kept between runs with its datasets: a run starts it when
it is stopped, applies the settings with ALTER SYSTEM (postgresql.auto.conf) and a reload,
restarts it when a setting that only takes effect at start differs from the running one, and
stops it at the end unless --keep-pg."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from common import BENCH, die, log, run

CLUSTER_DIR = BENCH / "pg"
GiB = 1024 ** 3
MiB = 1024 ** 2


def mem_total_bytes() -> int:
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            return int(line.split()[1]) * 1024
    return 4 * GiB


def mb(n: float) -> str:
    return f"{int(n // MiB)}MB"


def settings_for(mem: int, max_connections: int, wal_compression: str) -> list[tuple[str, str, str]]:
    """(name, value, why) for a machine with `mem` bytes of memory: a read-heavy service whose data
    fits in memory, short OLTP statements, honest durability."""
    shared = max(128 * MiB, min(mem // 4, 16 * GiB))
    return [
        ("shared_buffers", mb(shared),
         "25% of memory (capped at 16GB): the hot tables and indexes stay in PostgreSQL's own cache, "
         "and the other 75% is left to the OS page cache, the service and the load generator"),
        ("effective_cache_size", mb(mem * 3 // 4),
         "75% of memory: shared_buffers plus the page cache the data can count on; the planner "
         "costs index scans as cached (it allocates nothing)"),
        ("random_page_cost", "1.1",
         "the data is in memory (or on SSD): a random page costs about what a sequential one does, "
         "so index scans are not priced as disk seeks"),
        ("effective_io_concurrency", "200",
         "SSD-class storage: bitmap heap scans may prefetch many pages at once"),
        ("max_connections", str(max_connections),
         "the server's pool and read lanes, pgbench's clients (never at the same time) and a few "
         "psql sessions, with headroom; each slot reserves shared memory, so not thousands"),
        ("work_mem", "16MB",
         "modest: the service's sorts are one product's reviews (count at most 1000 rows); per sort "
         "node and per connection, so large values risk memory under concurrency"),
        ("maintenance_work_mem", "1GB",
         "the load's index builds and VACUUM (ANALYZE) run faster with room to sort; one at a time"),
        ("max_wal_size", "8GB",
         "the load and the mixed scenario's writes do not force checkpoints by WAL volume"),
        ("min_wal_size", "1GB", "recycled WAL segments instead of new files after a checkpoint"),
        ("checkpoint_timeout", "30min",
         "fewer checkpoints, so fewer full-page images in the WAL; crash recovery replays more, "
         "which a benchmark (and most services) can afford"),
        ("checkpoint_completion_target", "0.9", "checkpoint writes spread over the interval (the default since 14)"),
        ("wal_compression", wal_compression,
         "full-page images compressed: less WAL to write for a little CPU (lz4 when the server has it)"),
        ("synchronous_commit", "on",
         "durability kept honest: a write is answered only once its WAL is flushed to disk, as in "
         "production; turning it off would flatter the mixed scenario's writes"),
        ("fsync", "on", "the default, stated: no benchmark of a database that may lose committed data"),
        ("full_page_writes", "on", "the default, stated: torn pages stay recoverable"),
        ("huge_pages", "try",
         "huge pages for shared_buffers when the kernel has them reserved (vm.nr_hugepages): fewer "
         "TLB misses and smaller page tables per backend; falls back to normal pages otherwise"),
        ("jit", "off",
         "the statements are short OLTP lookups: JIT compilation would cost more than it saves "
         "whenever the planner's cost estimate crosses jit_above_cost"),
    ]


def pg_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl (else the PATH's)."""
    def key(p: Path):
        return [int(x) for x in re.findall(r"\d+", p.parent.name)]
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    return next((d for d in dirs if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


class PrivateCluster:
    def __init__(self, binary: Path, max_connections: int, directory: Path = CLUSTER_DIR):
        self.binary = str(binary)
        self.bin = pg_bin_dir()
        if not self.bin:
            die("no PostgreSQL server programs (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on the "
                "PATH: apt-get install postgresql, or give a server with --pg-url / BENCH_PG_URL")
        self.dir = directory.resolve()
        self.logfile = self.dir / "log"
        configure = run([self.bin / "pg_config", "--configure"], check=False).stdout \
            if (self.bin / "pg_config").exists() else ""
        self.settings = settings_for(mem_total_bytes(), max_connections,
                                     "lz4" if "--with-lz4" in configure else "on")
        self.port: int | None = None
        self.url = ""
        self.version = ""

    # -- the cluster's life, through `reviews-api devdb`

    def devdb(self, action: str, *args, check=True):
        return run([self.binary, "devdb", action, "--dir", self.dir, *args], check=check)

    def running_port(self) -> int | None:
        r = self.devdb("status", check=False)
        m = re.search(r"^running (\d+) ", r.stdout, re.M)
        return int(m.group(1)) if r.returncode == 0 and m else None

    def start_server(self, port: int | None = None) -> int:
        r = self.devdb("start", *(["--port", port] if port else []), check=False)
        m = re.search(r"^postgres://postgres@127\.0\.0\.1:(\d+)$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            die(f"could not start PostgreSQL in {self.dir}:\n{r.stdout}\n{tail}")
        port = int(m.group(1))
        log(f"the private PostgreSQL runs on 127.0.0.1:{port} ({self.dir})")
        return port

    def start(self) -> str:
        """Initialises (first time), starts (or reuses) and configures the cluster; returns its URL
        without database, as --pg-url takes it."""
        self.port = self.start_server()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}"
        self.apply_settings()
        return self.url

    def psql(self, sql: str, *, script=False) -> str:
        base = ["psql", f"{self.url}/postgres", "-X", "-Atq", "-v", "ON_ERROR_STOP=1"]
        # ALTER SYSTEM refuses a transaction block, which one -c string of several statements is.
        return (run(base, input=sql) if script else run(base + ["-c", sql])).stdout.strip()

    def apply_settings(self) -> None:
        """ALTER SYSTEM (postgresql.auto.conf, so nothing else the folder holds is overwritten):
        every setting from scratch, then a reload; a restart when one that only takes effect at
        start (shared_buffers, max_connections, huge_pages...) differs from the running value."""
        sql = "ALTER SYSTEM RESET ALL;\n" + "".join(
            f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value, _ in self.settings)
        self.psql(sql + "SELECT pg_reload_conf();\n", script=True)
        pending = self.psql("SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")
        if pending:
            log(f"restarting the private PostgreSQL: {pending} changed and only take effect at start")
            self.devdb("stop")
            self.port = self.start_server(self.port)
            self.url = f"postgres://postgres@127.0.0.1:{self.port}"
        errors = self.psql("SELECT string_agg(name || ': ' || coalesce(error, '?'), '; ') FROM pg_file_settings "
                           "WHERE error IS NOT NULL")
        still = self.psql("SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")
        if errors or still:
            die(f"the private PostgreSQL did not take its settings: {errors or ''} {still or ''}; see {self.logfile}")
        self.version = self.psql("SHOW server_version")

    def in_effect(self) -> dict[str, str]:
        names = ", ".join(f"'{n}'" for n, _, _ in self.settings)
        rows = self.psql(f"SELECT name, current_setting(name) FROM pg_settings WHERE name IN ({names})")
        return dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)

    def stop(self) -> None:
        if self.port and self.running_port():
            self.devdb("stop")
            log(f"stopped the private PostgreSQL (port {self.port}); its data stays in {self.dir / 'data'}")

    def describe(self) -> dict:
        return {"dir": str(self.dir), "bin": str(self.bin), "port": self.port, "version": self.version,
                "memory_bytes": mem_total_bytes(),
                "nr_hugepages": Path("/proc/sys/vm/nr_hugepages").read_text().strip()
                if Path("/proc/sys/vm/nr_hugepages").exists() else "?",
                "settings": [{"name": n, "value": v, "why": w} for n, v, w in self.settings],
                "in_effect": self.in_effect()}
