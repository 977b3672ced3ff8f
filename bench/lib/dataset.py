"""PostgreSQL (through psql), the one-run-at-a-time lock, and the datasets: each size generated,
loaded into its own database, checked unchanged before it is reused, and put back after the
mixed scenario's writes."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

from common import BENCH, ROOT, die, log, run

# The dataset's file names, as the binary that generates and loads them says (`reviews-api generate
# --list-files`: src/etl/dataset.rs names them once), so no copy here can drift from them.
CSV_FILE_COUNT = 4


@functools.cache
def csv_files(binary: str) -> tuple[str, ...]:
    """The file names of a dataset, in the order the binary lists them."""
    names = tuple(run([binary, "generate", "--list-files"]).stdout.split())
    if len(names) != CSV_FILE_COUNT or not all(n.endswith(".csv") for n in names):
        die(f"{binary} generate --list-files named {names}, not {CSV_FILE_COUNT} CSV files")
    return names


class Pg:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")

    def url(self, db: str) -> str:
        return f"{self.base}/{db}"

    def query(self, db: str, sql: str, check=True) -> str:
        p = run(["psql", self.url(db), "-v", "ON_ERROR_STOP=1", "-X", "-Atq", "-c", sql], check=check)
        return p.stdout.strip()

    def script(self, db: str, sql: str) -> str:
        return run(["psql", self.url(db), "-v", "ON_ERROR_STOP=1", "-X", "-Atq"], input=sql).stdout

    def db_exists(self, db: str) -> bool:
        return self.query("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{db}'") == "1"


class BenchLock:
    """One benchmark at a time against this PostgreSQL: two runs would measure each other, and
    would write to the same datasets. A session-level advisory lock in the `postgres` database,
    held by a psql session that lives as long as the run (it goes when the run goes, however it
    ends). A second run waits, saying whose run it waits for."""

    KEY = 7265001

    def __init__(self, pg: Pg):
        self.pg = pg
        env = dict(os.environ, PGAPPNAME=f"bench/run pid {os.getpid()} ({socket.gethostname()})")
        self.proc = subprocess.Popen(["psql", pg.url("postgres"), "-X", "-Atq", "-v", "ON_ERROR_STOP=1"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)

    def ask(self, sql: str) -> str:
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def acquire(self) -> None:
        if self.ask(f"SELECT pg_try_advisory_lock({self.KEY});") == "t":
            return
        holder = self.pg.query("postgres", "SELECT string_agg(a.application_name, ', ') FROM pg_locks l "
                                           "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' "
                                           f"AND l.objid = {self.KEY} AND l.granted", check=False)
        log(f"waiting for another benchmark run to finish ({holder or 'unknown'}): "
            "two at once would measure each other")
        if self.ask(f"SELECT pg_advisory_lock({self.KEY}) IS NULL;") != "f":
            die("could not take the benchmark lock")

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


class MachineLock:
    """One benchmark at a time on this machine, whichever PostgreSQL each run uses: with a private
    cluster per checkout, BenchLock (in that cluster) no longer meets another worktree's run, yet
    the two would still measure each other on the shared cores. An flock on a file in /tmp, taken
    before the private cluster is started or reconfigured; the file names the holder."""

    PATH = Path("/tmp/reviews-api-bench.lock")

    def __init__(self, what: str):
        self.what = what
        self.fh = None

    def acquire(self) -> None:
        import fcntl
        self.fh = open(self.PATH, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            log(f"waiting for another benchmark run on this machine to finish "
                f"({self.fh.read().strip() or 'unknown'}): two at once would measure each other")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"{self.what} (pid {os.getpid()})\n")
        self.fh.flush()

    def release(self) -> None:
        if self.fh:
            self.fh.close()  # closing the file releases the flock
            self.fh = None


class Dataset:
    """One generated dataset in its own database, and the id ranges the scenarios draw from."""

    def __init__(self, products: int, seed: int):
        self.products = products
        self.seed = seed
        self.db = f"reviews_bench_{products}" + ("" if seed == 1 else f"_s{seed}")
        self.data_dir = BENCH / "data" / f"products-{products}-seed-{seed}"
        n = products
        self.ranges = {
            # The peers' convention: the last 10% of product ids.
            "last10": (n - n // 10 + 1, n),
            # The original load test: 1..100000 (all of them on a smaller dataset).
            "original": (1, min(100_000, n)),
            # The original cached test: a range of 10 ids.
            "hot": (max(1, n - 9), n),
        }
        self.facts: dict = {}


# What the reviews look like right after the load, recorded in bench.dataset and compared at the
# start of every run: a write that was not undone (a POST, a helpful vote, a report, by anyone)
# changes one of these, and the dataset is then loaded again.
FINGERPRINT = ("SELECT count(*) || ' ' || max(id) || ' ' || sum(helpfulness) || ' ' "
               "|| count(*) FILTER (WHERE reported) FROM reviews")


def schema_digest() -> str:
    """What a load builds depends on these files: a dataset loaded under other versions of them
    (say, before a table was added) is loaded again rather than measured."""
    h = hashlib.sha256()
    for f in [ROOT / "sql" / "schema.sql", ROOT / "sql" / "indexes.sql",
              *sorted((ROOT / "sql" / "load").glob("*.sql"))]:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def dataset_ready(pg: Pg, ds: Dataset) -> bool:
    if not pg.db_exists(ds.db):
        return False
    marker = pg.query(ds.db, "SELECT CASE WHEN to_regclass('bench.dataset') IS NULL THEN '' ELSE "
                             "(SELECT products || ' ' || seed || ' ' || schema FROM bench.dataset LIMIT 1) END",
                      check=False)
    if marker != f"{ds.products} {ds.seed} {schema_digest()}":
        if marker:
            log(f"{ds.db} was loaded by another version of sql/ (or of this runner): loading it again")
        return False
    top = pg.query(ds.db, "SELECT max(product_id) FROM characteristics", check=False)
    return top == str(ds.products)


def recorded_fingerprint(pg: Pg, db: str) -> str | None:
    """The fingerprint recorded at load time (None for a marker made before fingerprints)."""
    p = run(["psql", pg.url(db), "-X", "-Atq", "-c", "SELECT fingerprint FROM bench.dataset"], check=False)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


def dataset_intact(pg: Pg, ds: Dataset) -> bool:
    recorded = recorded_fingerprint(pg, ds.db)
    now = pg.query(ds.db, FINGERPRINT, check=False)
    if recorded != now:
        log(f"{ds.db} is not the dataset as loaded (reviews count, max id, helpfulness, reported: "
            f"{now!r}, loaded {recorded!r}): loading it again")
        return False
    return True


# The mixed scenario and its ceiling write (POST, helpful, report). So that every run measures
# the dataset exactly as generated, the runner snapshots what those writes can change before the
# mixed warm-up and puts it back afterwards: the reviews' helpfulness and reported flags in the
# range the writes draw from, and the product_meta counters of the products they can touch;
# reviews created by the run (id above the highest id before it) are deleted with their values.
# bench.dataset.dirty says a snapshot is waiting to be restored (a run that died half-way).


def snapshot_writes(pg: Pg, ds: Dataset) -> None:
    lo, hi = ds.ranges["last10"]
    rlo, rhi = ds.review_range
    pg.script(ds.db, f"""
        BEGIN;
        DROP TABLE IF EXISTS bench.reviews_before, bench.meta_before, bench.max_before;
        CREATE TABLE bench.max_before AS SELECT max(id) AS review_id FROM reviews;
        CREATE TABLE bench.reviews_before AS
            SELECT id, helpfulness, reported FROM reviews WHERE id BETWEEN {rlo} AND {rhi};
        CREATE TABLE bench.meta_before AS
            SELECT product_id, ratings, recommended, char_sums, char_counts FROM product_meta
             WHERE product_id BETWEEN {lo} AND {hi};
        UPDATE bench.dataset SET dirty = true, restore_lo = {lo}, restore_hi = {hi};
        COMMIT;""")


def restore_writes(pg: Pg, ds_db: str) -> dict:
    """Undoes the mixed scenario's writes (the server is stopped). Returns the counts undone."""
    out = pg.script(ds_db, """
        BEGIN;
        WITH d AS (DELETE FROM characteristic_reviews
                    WHERE review_id > (SELECT review_id FROM bench.max_before) RETURNING 1)
        SELECT 'characteristic_reviews_deleted=' || count(*) FROM d;
        WITH d AS (DELETE FROM reviews_photos
                    WHERE review_id > (SELECT review_id FROM bench.max_before) RETURNING 1)
        SELECT 'photos_deleted=' || count(*) FROM d;
        WITH d AS (DELETE FROM reviews WHERE id > (SELECT review_id FROM bench.max_before) RETURNING 1)
        SELECT 'reviews_deleted=' || count(*) FROM d;
        WITH u AS (UPDATE reviews r SET helpfulness = b.helpfulness, reported = b.reported
                     FROM bench.reviews_before b
                    WHERE r.id = b.id AND (r.helpfulness <> b.helpfulness OR r.reported <> b.reported)
                   RETURNING 1)
        SELECT 'reviews_restored=' || count(*) FROM u;
        WITH u AS (UPDATE product_meta m SET ratings = b.ratings, recommended = b.recommended,
                          char_sums = b.char_sums, char_counts = b.char_counts
                     FROM bench.meta_before b
                    WHERE m.product_id = b.product_id
                      AND (m.ratings, m.recommended, m.char_sums, m.char_counts)
                          IS DISTINCT FROM (b.ratings, b.recommended, b.char_sums, b.char_counts)
                   RETURNING 1)
        SELECT 'meta_restored=' || count(*) FROM u;
        WITH d AS (DELETE FROM product_meta m
                    USING bench.dataset s
                    WHERE m.product_id BETWEEN s.restore_lo AND s.restore_hi
                      AND NOT EXISTS (SELECT 1 FROM bench.meta_before b WHERE b.product_id = m.product_id)
                   RETURNING 1)
        SELECT 'meta_deleted=' || count(*) FROM d;
        UPDATE bench.dataset SET dirty = false;
        DROP TABLE bench.reviews_before, bench.meta_before, bench.max_before;
        COMMIT;""")
    counts = dict(line.split("=") for line in out.split() if "=" in line)
    # first_pages too: the writes and their undoing rewrote the rows of every product they touched
    # (the trigger of sql/indexes.sql), and a page read that walks past dead row versions costs
    # the next run more than the loaded dataset did.
    pg.query(ds_db, "VACUUM (ANALYZE) reviews, characteristic_reviews, reviews_photos, product_meta, first_pages")
    recorded = recorded_fingerprint(pg, ds_db)
    if recorded is not None and recorded != pg.query(ds_db, FINGERPRINT):
        die(f"{ds_db}: undoing the mixed scenario's writes did not give back the loaded dataset")
    log(f"undid the mixed scenario's writes: {counts}")
    return {k: int(v) for k, v in counts.items()}


def ensure_dataset(pg: Pg, binary: Path, ds: Dataset, workdir: Path) -> None:
    if dataset_ready(pg, ds):
        if pg.query(ds.db, "SELECT dirty FROM bench.dataset", check=False) == "t":
            log(f"{ds.db}: an earlier run stopped before undoing its writes; undoing them now")
            restore_writes(pg, ds.db)
        if dataset_intact(pg, ds):
            log(f"database {ds.db} already holds the {ds.products:,}-product dataset (seed {ds.seed})")
            return
    if not all((ds.data_dir / f).exists() for f in csv_files(str(binary))):
        log(f"generating {ds.products:,} products into {ds.data_dir.relative_to(ROOT)}")
        run([binary, "generate", "--products", ds.products, "--seed", ds.seed, "--out", ds.data_dir])
    log(f"loading {ds.data_dir.relative_to(ROOT)} into database {ds.db} (reviews-api load)")
    pg.query("postgres", f"DROP DATABASE IF EXISTS {ds.db} WITH (FORCE)")
    pg.query("postgres", f"CREATE DATABASE {ds.db}")
    started = time.monotonic()
    env = dict(os.environ, DATABASE_URL=pg.url(ds.db), RUST_LOG="warn")
    out = run([binary, "load", ds.data_dir, "--rejects", ds.data_dir / "rejects.csv"],
              env=env, cwd=workdir).stdout
    load_secs = time.monotonic() - started
    print(out.strip())
    log("VACUUM (ANALYZE): visibility map, hint bits and statistics, so that no benchmark "
        "read pays for them")
    pg.query(ds.db, "VACUUM (ANALYZE)")
    pg.script(ds.db, f"""
        CREATE SCHEMA IF NOT EXISTS bench;
        DROP TABLE IF EXISTS bench.dataset;
        CREATE TABLE bench.dataset (products integer NOT NULL, seed bigint NOT NULL,
            loaded_at timestamptz NOT NULL DEFAULT now(), load_seconds double precision,
            load_output text, dirty boolean NOT NULL DEFAULT false, restore_lo integer,
            restore_hi integer, fingerprint text, schema text);
        INSERT INTO bench.dataset (products, seed, load_seconds, load_output, fingerprint, schema)
        VALUES ({ds.products}, {ds.seed}, {load_secs:.1f}, {sql_literal(out.strip())}, ({FINGERPRINT}),
                '{schema_digest()}');
    """)
    if not dataset_ready(pg, ds):
        die(f"{ds.db} does not hold {ds.products} products after the load; see the log")
    # Generating takes seconds even at full size; kept, the files would only crowd the page
    # cache that the database's own files need (the load's output, with its reject counts, is
    # kept in bench.dataset).
    for f in csv_files(str(binary)):
        (ds.data_dir / f).unlink(missing_ok=True)


def sql_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def prepare_dataset(pg: Pg, ds: Dataset, workdir: Path) -> None:
    """Facts for the report, the mixed scenario's inputs, and a warm page cache."""
    lo, hi = ds.ranges["last10"]
    rlo, rhi = pg.query(ds.db, f"SELECT min(id), max(id) FROM reviews "
                               f"WHERE product_id BETWEEN {lo} AND {hi}").split("|")
    ds.review_range = (int(rlo), int(rhi))
    ds.pool_file = workdir / f"pool-{ds.products}.txt"
    with open(ds.pool_file, "w") as f:
        f.write(pg.query(ds.db, f"SELECT product_id || ' ' || string_agg(id::text, ',' ORDER BY id) "
                                f"FROM characteristics WHERE product_id BETWEEN {lo} AND {hi} "
                                f"GROUP BY product_id ORDER BY product_id") + "\n")
    row = pg.query(ds.db, """
        SELECT (SELECT count(*) FROM reviews), (SELECT count(*) FROM reviews WHERE reported),
               (SELECT count(*) FROM characteristics), (SELECT count(*) FROM reviews_photos),
               pg_size_pretty(pg_database_size(current_database())),
               (SELECT loaded_at FROM bench.dataset), (SELECT load_seconds FROM bench.dataset)""")
    keys = ["reviews", "reported", "characteristics", "photos", "database_size", "loaded_at", "load_seconds"]
    ds.facts = dict(zip(keys, row.split("|")))
    log(f"{ds.db}: {ds.facts['reviews']} reviews ({ds.facts['reported']} reported), "
        f"{ds.facts['database_size']}; mixed review ids {rlo}..{rhi}")
    log("warming the database's files into the page cache (pg_prewarm, mode read)")
    pg.query(ds.db, "CREATE EXTENSION IF NOT EXISTS pg_prewarm", check=False)
    pg.query(ds.db, """SELECT sum(pg_prewarm(c.oid::regclass, 'read')) FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't')
                         AND c.relpersistence = 'p'""", check=False)
    # When the whole database fits in shared_buffers (the private cluster's 25% of memory holds
    # the full dataset on a machine with room for it), into PostgreSQL's own cache too: the first
    # reads of a measurement then find every page there, as they do in a warmed-up service.
    fits = pg.query(ds.db, "SELECT pg_database_size(current_database()) < 0.8 * "
                           "(SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')",
                    check=False)
    if fits == "t":
        log("the database fits in shared_buffers: warming it there too (pg_prewarm, mode buffer)")
        pg.query(ds.db, """SELECT sum(pg_prewarm(c.oid::regclass, 'buffer')) FROM pg_class c
                            JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't')
                             AND c.relpersistence = 'p'""", check=False)
