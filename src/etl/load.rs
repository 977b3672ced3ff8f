//! `reviews-api load DIR`: the four dataset CSV files into the served tables (docs/dataset.md).
//!
//! The shape of a load, and why:
//!
//! 1. All four files are opened and their headers checked before the database is touched, so a
//!    missing or wrong file fails without changing anything.
//! 2. Parsing and validation run on their own threads (CPU work must stay off the async
//!    executor). Good rows are encoded as binary COPY data and sent in 1 MiB chunks through
//!    bounded channels to the async side, which streams them into PostgreSQL with COPY FREEZE.
//! 3. Every check happens in Rust, in compact maps indexed by id (a review's product, a
//!    characteristic's product, ids seen), so no bad row ever reaches PostgreSQL and no SQL pass
//!    is needed to find one. Rejected rows go to the rejects file with their line and reason.
//! 4. The derived data is computed in Rust too, while parsing: a review's `photos` JSON and every
//!    product_meta counter. Measured at full size, doing it in SQL after the COPY cost three
//!    minutes (an INSERT ... SELECT rewriting 5.8 million reviews, two aggregations over 19
//!    million values), more than the plain COPY of all four files; here it costs seconds. What
//!    PostgreSQL must still do is compute the generated documents (`doc`), about 4.6 µs per
//!    review with the plpgsql review_doc of schema.sql, about 27 s of server CPU for the 5.77
//!    million reviews of a full load (77.4 s in all, README): the reviews stream on one
//!    connection (COPY FREEZE) while everything else (the other three files, product_meta, their
//!    indexes) goes on a second one, and when the second is done the reviews COPY commits and both
//!    connections copy the rest of the reviews side by side (VACUUM then sets those pages
//!    all-visible), then build the reviews' indexes side by side: both cores stay busy to the end.
//!    To embed its photos a review must be written after reviews_photos.csv is read, and photos
//!    must be checked against the reviews: reviews.csv is read twice, first to check it, then to
//!    send it. A photo's URL is not kept in memory but read back from its file by offset (the
//!    page cache has it), which keeps the loader under 300 MB resident at full size.
//! 5. Everything lands in the schema `reviews_load`, built from sql/schema.sql itself; the SQL
//!    steps in sql/load/ build the keys and indexes, and one transaction swaps the staging tables
//!    into public. Until that commit the served data is untouched.

use crate::config::Settings;
use crate::db;
use crate::etl::csv::{self, Reader, Record};
use crate::etl::dataset::CsvFile;
use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_postgres::Client;

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Directory holding reviews.csv, reviews_photos.csv, characteristics.csv and
    /// characteristic_reviews.csv
    pub dir: PathBuf,
    /// Where to write the rejected rows, with their file, line number and reason
    /// (default: load.rejects in the configuration)
    #[arg(long)]
    pub rejects: Option<PathBuf>,
}

/// Rows loaded and rejected for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub file: &'static str,
    pub loaded: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone)]
pub struct LoadReport {
    /// In the order the files are read: characteristics, reviews, photos, characteristic values.
    pub files: Vec<FileReport>,
    pub rejects_path: PathBuf,
    /// The steps of the load in the order they started. Steps on the two connections and the
    /// parsing threads overlap, so they do not add up to the total.
    pub phases: Vec<Phase>,
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    /// When it started, from the start of the load.
    pub start: Duration,
    pub took: Duration,
}

impl LoadReport {
    /// The report of one file, by file name.
    pub fn file(&self, name: &str) -> Option<&FileReport> {
        self.files.iter().find(|f| f.file == name)
    }
}

/// The SQL steps, in the order they run (see the comments in each file).
mod sql {
    pub const STAGING: &str = include_str!("../../sql/load/staging.sql");
    pub const PREPARE: &str = include_str!("../../sql/load/prepare.sql");
    pub const COPY_CHARACTERISTICS: &str = include_str!("../../sql/load/copy_characteristics.sql");
    pub const COPY_REVIEWS: &str = include_str!("../../sql/load/copy_reviews.sql");
    pub const COPY_REVIEWS_SHARED: &str = include_str!("../../sql/load/copy_reviews_shared.sql");
    pub const COPY_PHOTOS: &str = include_str!("../../sql/load/copy_reviews_photos.sql");
    pub const COPY_VALUES: &str = include_str!("../../sql/load/copy_characteristic_reviews.sql");
    pub const COPY_META: &str = include_str!("../../sql/load/copy_product_meta.sql");
    pub const PRIMARY_KEY: &str = include_str!("../../sql/load/primary_key.sql");
    pub const SWAP: &str = include_str!("../../sql/load/swap.sql");
}

/// Session settings for the bulk work. The index builds sort tens of millions of keys: 1 GB of
/// maintenance_work_mem keeps each sort in memory. Losing the last commits of a load to a crash
/// costs nothing (the load is redone), so commits need not wait for the WAL flush.
const SESSION: &str = "SET client_min_messages = warning; SET statement_timeout = 0; \
    SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
    SET synchronous_commit = off; SET maintenance_work_mem = '1GB'";

/// Held for the whole load: two loads at once would clobber each other's staging schema.
const LOAD_LOCK: i64 = 7266;

/// How long the swap may wait for readers to let go of the served tables before it backs off,
/// and how often it tries. Waiting for the exclusive locks queues every new reader behind it.
const SWAP_LOCK_TIMEOUT: &str = "2s";
const SWAP_TRIES: u32 = 10;

/// The staging tables, each filled by one COPY in a transaction that first truncates it: a
/// table emptied in the same transaction may be copied with FREEZE, so its rows are written
/// frozen and its pages all-visible, and no later pass (hint bits, VACUUM) rewrites them.
/// (The reviews may end in two more COPYs side by side, see `stage_and_swap`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Characteristics,
    Reviews,
    Photos,
    Values,
    Meta,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Characteristics => "reviews_load.characteristics",
            Table::Reviews => "reviews_load.reviews",
            Table::Photos => "reviews_load.reviews_photos",
            Table::Values => "reviews_load.characteristic_reviews",
            Table::Meta => "reviews_load.product_meta",
        }
    }

    fn copy_sql(self) -> &'static str {
        match self {
            Table::Characteristics => sql::COPY_CHARACTERISTICS,
            Table::Reviews => sql::COPY_REVIEWS,
            Table::Photos => sql::COPY_PHOTOS,
            Table::Values => sql::COPY_VALUES,
            Table::Meta => sql::COPY_META,
        }
    }
}

pub async fn run(settings: &Settings, args: &LoadArgs) -> anyhow::Result<LoadReport> {
    run_tuned(settings, args, Tuning::default()).await
}

/// Knobs for the tests, which load datasets far too small to reach some paths of a full load.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuning {
    /// Share the reviews between both connections from the first row (a full load does once
    /// the second connection is free), so a small load goes through that path too.
    pub share_reviews_at_once: bool,
}

#[doc(hidden)]
pub async fn run_tuned(
    settings: &Settings,
    args: &LoadArgs,
    tuning: Tuning,
) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let inputs = open_inputs(&args.dir)?;
    let rejects_path = args
        .rejects
        .clone()
        .unwrap_or_else(|| PathBuf::from(&settings.load.rejects));
    refuse_to_overwrite_an_input(&inputs, &rejects_path)?;
    let rejects = Rejects::create(&rejects_path)?;

    let url = &settings.database.url;
    let connect_error = || "cannot connect to the database";
    let mut reviews_conn = db::connect(url).await.with_context(connect_error)?;
    let locked: bool = reviews_conn
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOAD_LOCK])
        .await?
        .get(0);
    anyhow::ensure!(locked, "another load is running on this database");
    db::migrate(&reviews_conn)
        .await
        .context("cannot apply the schema")?;
    let mut other_conn = db::connect(url).await.with_context(connect_error)?;
    reviews_conn.batch_execute(SESSION).await?;
    other_conn.batch_execute(SESSION).await?;

    let timeline = Timeline::new(started);
    let result = stage_and_swap(
        &mut reviews_conn,
        &mut other_conn,
        inputs,
        rejects,
        &timeline,
        tuning,
    )
    .await;
    drop(other_conn);
    if result.is_err() {
        // Leave no half-filled staging behind (gigabytes); the served tables were not touched.
        let _ = reviews_conn
            .batch_execute("ROLLBACK; DROP SCHEMA IF EXISTS reviews_load CASCADE")
            .await;
    }
    let _ = reviews_conn
        .query_one("SELECT pg_advisory_unlock($1)", &[&LOAD_LOCK])
        .await;
    let files = result?;
    let report = LoadReport {
        files,
        rejects_path,
        phases: timeline.take(),
        total: started.elapsed(),
    };
    print_summary(&report);
    Ok(report)
}

/// Phase timings, written from both connections' tasks.
struct Timeline {
    origin: Instant,
    phases: Mutex<Vec<Phase>>,
}

impl Timeline {
    fn new(origin: Instant) -> Timeline {
        Timeline {
            origin,
            phases: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, name: impl Into<String>, start: Instant, end: Instant) {
        self.phases.lock().expect("timeline lock").push(Phase {
            name: name.into(),
            start: start.saturating_duration_since(self.origin),
            took: end.saturating_duration_since(start),
        });
    }

    /// Runs `step` and records when it ran under `name`.
    async fn time<T>(
        &self,
        name: impl Into<String>,
        step: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let start = Instant::now();
        let result = step.await?;
        self.record(name, start, Instant::now());
        Ok(result)
    }

    fn take(&self) -> Vec<Phase> {
        let mut phases = std::mem::take(&mut *self.phases.lock().expect("timeline lock"));
        phases.sort_by_key(|p| p.start);
        phases
    }
}

async fn stage_and_swap(
    reviews_conn: &mut Client,
    other_conn: &mut Client,
    inputs: Inputs,
    rejects: Rejects,
    timeline: &Timeline,
    tuning: Tuning,
) -> anyhow::Result<Vec<FileReport>> {
    reviews_conn.batch_execute(sql::STAGING).await?;
    reviews_conn
        .batch_execute(&format!(
            "SET search_path = reviews_load; {} RESET search_path;",
            db::sql::SCHEMA
        ))
        .await
        .context("cannot create the staging tables")?;
    reviews_conn.batch_execute(sql::PREPARE).await?;

    let (reviews_tx, reviews_rx) = mpsc::channel(CHANNEL);
    let (other_tx, other_rx) = mpsc::channel(CHANNEL);
    let parser =
        tokio::task::spawn_blocking(move || parse_all(inputs, rejects, reviews_tx, other_tx));

    // The reviews' index builds are shared: both connections take them from this queue once the
    // reviews are in (each build takes a SHARE lock, so they run side by side; a build started
    // while the other connection still copies reviews waits for that COPY to commit).
    let (reviews_jobs, reviews_attach) = table_jobs(reviews_conn, "reviews").await?;
    let reviews_jobs = RefCell::new(VecDeque::from(reviews_jobs));
    let reviews_input: Input2 = tokio::sync::Mutex::new(reviews_rx);
    let other_input: Input2 = tokio::sync::Mutex::new(other_rx);
    let reviews_ended = Cell::new(false);
    let (free_tx, free_rx) = tokio::sync::watch::channel(tuning.share_reviews_at_once);
    let copied: RefCell<Vec<(Table, u64)>> = RefCell::new(Vec::new());

    // The reviews stream on one connection, the other tables on the other. The generated review
    // documents are the longest job: when the other connection is done with its tables it
    // signals `free`, the reviews COPY (frozen so far) commits, and both connections copy the
    // rest of the reviews side by side, then both build the reviews' indexes.
    let reviews_side = async {
        let (rows, ended) = timeline
            .time(
                "copy reviews (frozen)",
                copy_table(
                    reviews_conn,
                    Table::Reviews,
                    Mode::Freeze,
                    &reviews_input,
                    Some(&free_rx),
                    &reviews_ended,
                ),
            )
            .await?;
        copied.borrow_mut().push((Table::Reviews, rows));
        if !ended {
            copy_shared_reviews(
                reviews_conn,
                "copy reviews (shared)",
                &reviews_input,
                &reviews_ended,
                timeline,
                &copied,
            )
            .await?;
        }
        timeline
            .time("index reviews", take_jobs(reviews_conn, &reviews_jobs))
            .await
    };
    let other_side = async {
        copy_other(
            other_conn,
            "copy characteristics",
            Table::Characteristics,
            &other_input,
            timeline,
            &copied,
        )
        .await?;
        // Built while the parser still checks reviews.csv, when PostgreSQL has nothing else to do.
        timeline
            .time(
                "index, vacuum, analyze characteristics",
                index_table(other_conn, "characteristics"),
            )
            .await?;
        copy_other(
            other_conn,
            "copy reviews_photos",
            Table::Photos,
            &other_input,
            timeline,
            &copied,
        )
        .await?;
        copy_other(
            other_conn,
            "copy characteristic_reviews",
            Table::Values,
            &other_input,
            timeline,
            &copied,
        )
        .await?;
        copy_other(
            other_conn,
            "copy product_meta",
            Table::Meta,
            &other_input,
            timeline,
            &copied,
        )
        .await?;
        timeline
            .time("index, vacuum, analyze others", async {
                for table in &OTHER_TABLES[1..] {
                    index_table(other_conn, table).await?;
                }
                Ok(())
            })
            .await?;
        let _ = free_tx.send(true);
        if !reviews_ended.get() {
            copy_shared_reviews(
                other_conn,
                "copy reviews (shared, helping)",
                &reviews_input,
                &reviews_ended,
                timeline,
                &copied,
            )
            .await?;
        }
        timeline
            .time(
                "index reviews (helping)",
                take_jobs(other_conn, &reviews_jobs),
            )
            .await
    };
    let loaded = tokio::try_join!(reviews_side, other_side);
    // With the receivers gone a parser still sending stops, instead of waiting forever.
    drop((reviews_input, other_input));
    // Any receiver still open was dropped with the futures: the parser stops if it was waiting.
    let parsed = parser.await.context("the parsing thread panicked")?;
    let reports = match (parsed, loaded) {
        // The parser's own error (an unreadable file) explains a COPY cut short.
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(parsed), Ok(_)) => parsed,
    };
    for (name, start, end) in reports.phases {
        timeline.record(name, start, end);
    }
    let reports = reports.files;
    // What PostgreSQL says it copied is what was checked good.
    for (table, file) in [
        (Table::Characteristics, CsvFile::Characteristics),
        (Table::Reviews, CsvFile::Reviews),
        (Table::Photos, CsvFile::Photos),
        (Table::Values, CsvFile::CharacteristicReviews),
    ] {
        let rows: u64 = copied
            .borrow()
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, rows)| rows)
            .sum();
        let loaded = reports
            .iter()
            .find(|r| r.file == file.name())
            .map_or(0, |r| r.loaded);
        anyhow::ensure!(
            rows == loaded,
            "{}: {loaded} rows checked good but PostgreSQL copied {rows}",
            file.name()
        );
    }
    timeline
        .time(
            "reviews key, vacuum, analyze",
            finish_table(reviews_conn, "reviews", &reviews_attach),
        )
        .await?;
    // A statement of sql/indexes.sql on some other table (none today) still runs.
    let leftover: Vec<String> = index_statements()
        .into_iter()
        .filter(|(t, _)| t != "reviews" && !OTHER_TABLES.contains(&t.as_str()))
        .map(|(_, statement)| statement)
        .collect();
    take_jobs(reviews_conn, &RefCell::new(VecDeque::from(leftover))).await?;

    timeline.time("swap", swap(reviews_conn)).await?;
    Ok(reports)
}

/// The tables the second connection fills and indexes, characteristics first.
const OTHER_TABLES: &[&str] = &[
    "characteristics",
    "reviews_photos",
    "characteristic_reviews",
    "product_meta",
];

/// The statements that build a staging table's primary key index (prepare.sql dropped the key;
/// a bulk build is faster) and its indexes of sql/indexes.sql, and the statement that makes the
/// index its primary key again once they are built.
async fn table_jobs(client: &Client, table: &str) -> anyhow::Result<(Vec<String>, String)> {
    let row = client
        .query_one(sql::PRIMARY_KEY, &[&format!("reviews_load.{table}")])
        .await
        .with_context(|| format!("no saved primary key for {table}"))?;
    let mut jobs = vec![row.get::<_, String>(0)];
    jobs.extend(
        index_statements()
            .into_iter()
            .filter(|(t, _)| t == table)
            .map(|(_, statement)| statement),
    );
    Ok((jobs, row.get(1)))
}

/// A table's keys and indexes, then its statistics, on one connection.
async fn index_table(client: &Client, table: &str) -> anyhow::Result<()> {
    let (jobs, attach) = table_jobs(client, table).await?;
    take_jobs(client, &RefCell::new(VecDeque::from(jobs))).await?;
    finish_table(client, table, &attach).await
}

/// Runs statements from `jobs` until it is empty. sql/indexes.sql names its tables unqualified:
/// they run with search_path = reviews_load.
async fn take_jobs(client: &Client, jobs: &RefCell<VecDeque<String>>) -> anyhow::Result<()> {
    loop {
        let Some(statement) = jobs.borrow_mut().pop_front() else {
            return Ok(());
        };
        client
            .batch_execute(&format!(
                "SET search_path = reviews_load; {statement}; RESET search_path;"
            ))
            .await
            .with_context(|| format!("cannot build an index: {statement}"))?;
    }
}

/// The primary key back on its index, then statistics before the swap rather than after: the
/// tables go live with them, so the first queries get good plans. COPY FREEZE already made every
/// page all-visible; VACUUM is cheap on such pages and guarantees the visibility map.
async fn finish_table(client: &Client, table: &str, attach: &str) -> anyhow::Result<()> {
    client
        .batch_execute(attach)
        .await
        .with_context(|| format!("cannot restore the primary key of {table}"))?;
    client
        .batch_execute(&format!("VACUUM (ANALYZE) reviews_load.{table}"))
        .await
        .with_context(|| format!("cannot vacuum {table}"))
}

/// The statements of sql/indexes.sql with the table each is on. The file is shared with migrate,
/// so it is split here rather than copied, and the two connections each build their tables'.
fn index_statements() -> Vec<(String, String)> {
    let code: String = db::sql::INDEXES
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let table = s
                .split_once(" ON ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("")
                .to_string();
            (table, s.to_string())
        })
        .collect()
}

/// The swap in one transaction. A lock that cannot be had within SWAP_LOCK_TIMEOUT (readers in
/// long transactions) rolls everything back; the swap then waits a little and tries again.
async fn swap(client: &mut Client) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        let tx = client.transaction().await?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            .await?;
        let result = match tx.batch_execute(sql::SWAP).await {
            Ok(()) => tx.commit().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e)
                if tries < SWAP_TRIES
                    && e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
            {
                log::warn!("swap: the served tables are busy, trying again ({e})");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(tries))).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("cannot swap the loaded tables in")),
        }
    }
}

fn print_summary(report: &LoadReport) {
    println!("{:<28} {:>12} {:>10}", "file", "loaded", "rejected");
    for f in &report.files {
        println!("{:<28} {:>12} {:>10}", f.file, f.loaded, f.rejected);
    }
    println!("time (started at, took; the two connections and the parsing overlap):");
    for p in &report.phases {
        println!(
            "  {:>7.1}s {:>7.1}s  {}",
            p.start.as_secs_f64(),
            p.took.as_secs_f64(),
            p.name
        );
    }
    println!("  total {:.1}s", report.total.as_secs_f64());
    println!("rejected rows: {}", report.rejects_path.display());
}

// ---------------------------------------------------------------------------------------------
// Input files

struct Input {
    kind: CsvFile,
    size: u64,
    /// A second handle on the same open file: reviews.csv is read again from the start, and
    /// photo URLs are read back by offset. Never reopened by name, so a file swapped in the
    /// directory meanwhile cannot mix into one load.
    file: File,
    reader: Reader<File>,
}

type Inputs = Vec<Input>;

/// Opens the four files and reads their headers; any problem is an error before any change.
fn open_inputs(dir: &Path) -> anyhow::Result<Inputs> {
    CsvFile::ALL
        .iter()
        .map(|&kind| {
            let path = dir.join(kind.name());
            let file =
                File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let again = file
                .try_clone()
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut reader = Reader::new(file);
            let header = reader
                .next_record()
                .with_context(|| format!("cannot read {}", path.display()))?;
            let expected = kind.columns();
            let ok = match &header {
                Some(h) => {
                    h.error().is_none()
                        && h.len() == expected.len()
                        && (0..h.len()).all(|i| h.field(i) == expected[i].as_bytes())
                }
                None => false,
            };
            if !ok {
                let found = header
                    .map(|h| String::from_utf8_lossy(h.raw()).into_owned())
                    .unwrap_or_else(|| "an empty file".to_string());
                anyhow::bail!(
                    "{}: wrong header: expected `{}`, found `{found}`",
                    path.display(),
                    kind.header()
                );
            }
            Ok(Input {
                kind,
                size,
                file: again,
                reader,
            })
        })
        .collect()
}

/// `--rejects` pointed at one of the dataset's files would truncate it while it is being read.
fn refuse_to_overwrite_an_input(inputs: &Inputs, rejects: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(rejects) else {
        return Ok(());
    };
    for input in inputs {
        let meta = input.file.metadata()?;
        anyhow::ensure!(
            !(meta.dev() == target.dev() && meta.ino() == target.ino()),
            "the rejects file {} is {}, an input of the load",
            rejects.display(),
            input.kind.name()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parsing threads -> COPY

enum Chunk {
    Data(Bytes),
    /// The table is done: its COPY can finish.
    End,
}

/// Chunks in flight between a parsing thread and PostgreSQL: enough to smooth out bursts, few
/// enough to bound memory (CHUNK bytes each).
const CHANNEL: usize = 8;
const CHUNK: usize = 1 << 20;

/// A COPY of one of the other tables, frozen, timed and counted.
async fn copy_other(
    client: &mut Client,
    name: &'static str,
    table: Table,
    input: &Input2,
    timeline: &Timeline,
    copied: &RefCell<Vec<(Table, u64)>>,
) -> anyhow::Result<()> {
    let ended = Cell::new(false);
    let (rows, _) = timeline
        .time(
            name,
            copy_table(client, table, Mode::Freeze, input, None, &ended),
        )
        .await?;
    copied.borrow_mut().push((table, rows));
    Ok(())
}

/// The rest of the reviews, copied side by side with the other connection (see `stage_and_swap`).
async fn copy_shared_reviews(
    client: &mut Client,
    name: &'static str,
    input: &Input2,
    ended: &Cell<bool>,
    timeline: &Timeline,
    copied: &RefCell<Vec<(Table, u64)>>,
) -> anyhow::Result<()> {
    let (rows, _) = timeline
        .time(
            name,
            copy_table(client, Table::Reviews, Mode::Shared, input, None, ended),
        )
        .await?;
    copied.borrow_mut().push((Table::Reviews, rows));
    Ok(())
}

/// One connection's input: chunks from a parsing thread. Behind a lock because the reviews'
/// chunks may end up shared between both connections.
type Input2 = tokio::sync::Mutex<mpsc::Receiver<Chunk>>;

/// How a COPY of the reviews runs (see `stage_and_swap`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In a transaction that first empties the table, so FREEZE is allowed: the rows are written
    /// frozen and their pages all-visible, and no later pass rewrites them.
    Freeze,
    /// Beside another COPY into the same table; its pages are set all-visible by VACUUM later.
    Shared,
}

/// One COPY into `table` from `input`, until the input's End, or until `stop` turns true
/// (checked between chunks). Returns the rows copied and whether the input ended. A closed
/// input is an error unless `ended` says another COPY already took the End.
async fn copy_table(
    client: &mut Client,
    table: Table,
    mode: Mode,
    input: &Input2,
    stop: Option<&tokio::sync::watch::Receiver<bool>>,
    ended: &std::cell::Cell<bool>,
) -> anyhow::Result<(u64, bool)> {
    let tx = client.transaction().await?;
    let statement = match mode {
        Mode::Freeze => {
            tx.batch_execute(&format!("TRUNCATE {}", table.name()))
                .await?;
            table.copy_sql()
        }
        Mode::Shared => sql::COPY_REVIEWS_SHARED,
    };
    let sink = tx.copy_in::<_, Bytes>(statement).await?;
    let mut sink = std::pin::pin!(sink);
    let failed = || format!("COPY into {} failed", table.name());
    sink.send(Bytes::from_static(COPY_HEADER))
        .await
        .with_context(failed)?;
    let mut at_end = false;
    while !stop.is_some_and(|s| *s.borrow()) {
        let chunk = input.lock().await.recv().await;
        match chunk {
            Some(Chunk::Data(bytes)) => sink.send(bytes).await.with_context(failed)?,
            Some(Chunk::End) => {
                ended.set(true);
                at_end = true;
                break;
            }
            None if ended.get() => {
                at_end = true;
                break;
            }
            None => anyhow::bail!("the input of {} stopped", table.name()),
        }
    }
    sink.send(Bytes::from_static(COPY_TRAILER))
        .await
        .with_context(failed)?;
    let rows = sink.as_mut().finish().await.with_context(failed)?;
    tx.commit().await?;
    Ok((rows, at_end))
}

/// Sends chunks to one connection's COPYs; an error means that side of the load stopped.
struct Sender {
    tx: mpsc::Sender<Chunk>,
}

impl Sender {
    fn send(&self, chunk: Chunk) -> anyhow::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| anyhow::anyhow!("the database side of the load stopped"))
    }

    /// Sends what `out` holds once it is a full chunk.
    fn flush(&self, out: &mut CopyEncoder) -> anyhow::Result<()> {
        if out.len() >= CHUNK {
            self.send(Chunk::Data(out.take()))?;
        }
        Ok(())
    }

    fn finish(&self, out: CopyEncoder) -> anyhow::Result<()> {
        self.send(Chunk::Data(out.finish()))?;
        self.send(Chunk::End)
    }
}

struct Progress {
    bars: MultiProgress,
    style: ProgressStyle,
}

impl Progress {
    fn new() -> Progress {
        // Hidden by itself when stderr is not a terminal.
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>30} [{bar:30}] {bytes:>9}/{total_bytes:<9} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        Progress { bars, style }
    }

    fn bar(&self, name: String, size: u64) -> Bar {
        let bar = self.bars.add(ProgressBar::new(size));
        bar.set_style(self.style.clone());
        bar.set_prefix(name);
        Bar {
            bar,
            started: Instant::now(),
        }
    }
}

struct Bar {
    bar: ProgressBar,
    started: Instant,
}

impl Bar {
    /// Cheap enough to call per row: draws every 65536 rows.
    fn tick(&self, reader: &Reader<File>, rows: u64, rejected: u64, force: bool) {
        if !rows.is_multiple_of(65536) && !force {
            return;
        }
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_position(reader.bytes_consumed());
        self.bar.set_message(format!(
            "{rows} rows, {rate:.0} rows/s, {rejected} rejected"
        ));
        if force {
            self.bar.finish();
        }
    }
}

/// The parsing thread: checks the files in order and streams the other tables to `other`; once
/// the photos are known it starts the thread that streams the reviews to `reviews`.
fn parse_all(
    inputs: Inputs,
    mut rejects: Rejects,
    reviews: mpsc::Sender<Chunk>,
    other: mpsc::Sender<Chunk>,
) -> anyhow::Result<Parsed> {
    let progress = Progress::new();
    let other = Sender { tx: other };
    let [chars, reviews_in, photos, values]: [Input; 4] = inputs
        .try_into()
        .map_err(|_| anyhow::anyhow!("four input files expected"))?;
    let mut state = State::default();
    let mut phases = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, phases: &mut Vec<(String, Instant, Instant)>| {
        let now = Instant::now();
        phases.push((format!("parse: {name}"), clock, now));
        clock = now;
    };

    let (chars_report, _) = check_file(chars, &mut state, &mut rejects, &progress, &other)?;
    lap(
        &format!("check {}", CsvFile::Characteristics.name()),
        &mut phases,
    );
    // First reading of reviews.csv: checks only, nothing is sent.
    let reviews_size = reviews_in.size;
    let mut reviews_again = reviews_in.file.try_clone()?;
    let (reviews_report, accepted) =
        check_file(reviews_in, &mut state, &mut rejects, &progress, &other)?;
    lap(&format!("check {}", CsvFile::Reviews.name()), &mut phases);
    let photos_file = photos.file.try_clone()?;
    let (photos_report, _) = check_file(photos, &mut state, &mut rejects, &progress, &other)?;
    let mut photos_by_review = std::mem::take(&mut state.photos_by_review);
    photos_by_review.sort_unstable_by_key(|p| (p.review, p.id));
    lap(&format!("check {}", CsvFile::Photos.name()), &mut phases);

    // Second reading, on its own thread and connection, while this thread checks the values.
    let bar = progress.bar(format!("{} (copy)", CsvFile::Reviews.name()), reviews_size);
    let sender = std::thread::Builder::new()
        .name("load-reviews".into())
        .spawn(move || -> anyhow::Result<(u64, Instant, Instant)> {
            let started = Instant::now();
            // The handle shares the file position of the first reading, which is at the end.
            reviews_again.rewind()?;
            let mut reader = Reader::new(reviews_again);
            reader.next_record()?; // the header, checked already
            let sent = send_reviews(
                reader,
                &accepted,
                &photos_by_review,
                &mut Window::new(photos_file),
                &Sender { tx: reviews },
                &bar,
            )?;
            Ok((sent, started, Instant::now()))
        })?;

    let (values_report, _) = check_file(values, &mut state, &mut rejects, &progress, &other)?;
    rejects.finish()?;
    lap(
        &format!("check {}", CsvFile::CharacteristicReviews.name()),
        &mut phases,
    );
    send_meta(&state, &other)?;
    lap("send product_meta", &mut phases);
    let (sent, start, end) = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the reviews thread panicked"))??;
    phases.push((
        format!("parse: send {} (2nd reading)", CsvFile::Reviews.name()),
        start,
        end,
    ));
    anyhow::ensure!(
        sent == reviews_report.loaded,
        "{}: {} rows checked but {sent} sent",
        CsvFile::Reviews.name(),
        reviews_report.loaded
    );
    if !progress.bars.is_hidden() {
        // The bars leave the cursor on their last line; the summary starts below them.
        eprintln!();
    }
    Ok(Parsed {
        files: vec![chars_report, reviews_report, photos_report, values_report],
        phases,
    })
}

/// What the parsing threads report: per file counts, and how long each of their steps took
/// (each ends when PostgreSQL has taken its last chunk, as the channels are bounded).
struct Parsed {
    files: Vec<FileReport>,
    phases: Vec<(String, Instant, Instant)>,
}

/// Checks every row of one file. Good rows of characteristics, photos and values are sent to
/// `other`; of reviews.csv only the record numbers of the good rows are kept (returned), for the
/// second reading.
fn check_file(
    input: Input,
    state: &mut State,
    rejects: &mut Rejects,
    progress: &Progress,
    other: &Sender,
) -> anyhow::Result<(FileReport, Bits)> {
    let Input {
        kind,
        size,
        mut reader,
        ..
    } = input;
    let sends = kind != CsvFile::Reviews;
    let label = if sends {
        kind.name().to_string()
    } else {
        format!("{} (check)", kind.name())
    };
    let bar = progress.bar(label, size);
    let mut out = CopyEncoder::new();
    let mut accepted = Bits::default();
    let mut report = FileReport {
        file: kind.name(),
        loaded: 0,
        rejected: 0,
    };
    let expected = kind.columns().len();
    let mut ordinal = 0usize;
    loop {
        let record = reader
            .next_record()
            .with_context(|| format!("cannot read {}", kind.name()))?;
        let Some(record) = record else { break };
        match check_shape(&record, expected)
            .and_then(|()| check_row(kind, &record, state, &mut out))
        {
            Ok(()) => {
                report.loaded += 1;
                if !sends {
                    accepted.set(ordinal);
                }
            }
            Err(reason) => {
                report.rejected += 1;
                rejects.write(kind.name(), record.line(), &reason, record.raw())?;
            }
        }
        ordinal += 1;
        if sends {
            other.flush(&mut out)?;
        }
        bar.tick(
            &reader,
            report.loaded + report.rejected,
            report.rejected,
            false,
        );
    }
    if sends {
        other.finish(out)?;
    }
    bar.tick(
        &reader,
        report.loaded + report.rejected,
        report.rejected,
        true,
    );
    Ok((report, accepted))
}

/// The second reading of reviews.csv: the rows the first reading accepted, each with its photos.
/// Returns the number of rows sent.
fn send_reviews(
    mut reader: Reader<File>,
    accepted: &Bits,
    photos: &[PhotoRef],
    photos_file: &mut Window,
    to: &Sender,
    bar: &Bar,
) -> anyhow::Result<u64> {
    let mut out = CopyEncoder::new();
    let mut json = Vec::with_capacity(1024);
    let mut url = Vec::with_capacity(256);
    let mut ordinal = 0usize;
    let mut sent = 0u64;
    while let Some(r) = reader
        .next_record()
        .with_context(|| format!("cannot read {}", CsvFile::Reviews.name()))?
    {
        let take = accepted.get(ordinal);
        ordinal += 1;
        if !take {
            continue;
        }
        let review = parse_review(&r).map_err(|reason| {
            anyhow::anyhow!(
                "{} changed while loading: line {} now fails: {reason}",
                CsvFile::Reviews.name(),
                r.line()
            )
        })?;
        photos_json(review.id, photos, photos_file, &mut json, &mut url)?;
        out.tuple(13);
        out.int4(review.id);
        out.int4(review.product_id);
        out.int2(review.rating);
        out.int8(review.date_ms);
        out.text(r.field(4));
        out.text(r.field(5));
        out.bool(review.recommend);
        out.bool(review.reported);
        out.text(r.field(8));
        out.text(r.field(9));
        // The bare token null is an absent response; the quoted "null" is text.
        if !r.quoted(10) && r.field(10) == b"null" {
            out.null();
        } else {
            out.text(r.field(10));
        }
        out.int4(review.helpfulness);
        out.text(&json);
        sent += 1;
        to.flush(&mut out)?;
        bar.tick(&reader, sent, 0, false);
    }
    to.finish(out)?;
    bar.tick(&reader, sent, 0, true);
    Ok(sent)
}

/// The review's photos as its document embeds them: `[{"id":1,"url":"..."},...]` by photo id,
/// no spaces, the URL escaped exactly as PostgreSQL's to_json escapes text; `[]` without photos.
/// The URLs are read back from reviews_photos.csv by offset.
fn photos_json(
    review_id: i32,
    photos: &[PhotoRef],
    photos_file: &mut Window,
    json: &mut Vec<u8>,
    url: &mut Vec<u8>,
) -> anyhow::Result<()> {
    json.clear();
    json.push(b'[');
    let review = review_id as u32;
    let first = photos.partition_point(|p| p.review < review);
    for (n, photo) in photos[first..]
        .iter()
        .take_while(|p| p.review == review)
        .enumerate()
    {
        let raw = photos_file
            .read(photo.offset, photo.len as usize)
            .with_context(|| format!("cannot read {} again", CsvFile::Photos.name()))?;
        let value: &[u8] = if photo.doubled {
            url.clear();
            csv::unescape(raw, url);
            url
        } else {
            raw
        };
        if n > 0 {
            json.push(b',');
        }
        json.extend_from_slice(b"{\"id\":");
        write!(json, "{}", photo.id)?;
        json.extend_from_slice(b",\"url\":");
        json_string(value, json);
        json.push(b'}');
    }
    json.push(b']');
    Ok(())
}

/// Reads pieces of a file by offset through one large buffer: photos are read in the order of
/// their reviews, which in real exports is close to their order in the file, so most reads are
/// served from the buffer and a few hundred reads replace millions of small ones.
struct Window {
    file: File,
    buf: Vec<u8>,
    /// The file offset of buf[0].
    start: u64,
}

const WINDOW: usize = 1 << 20;

impl Window {
    fn new(file: File) -> Window {
        Window {
            file,
            buf: Vec::new(),
            start: 0,
        }
    }

    fn read(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        let inside =
            offset >= self.start && offset + len as u64 <= self.start + self.buf.len() as u64;
        if !inside {
            self.buf.resize(WINDOW.max(len), 0);
            let mut filled = 0;
            while filled < len {
                let n = self
                    .file
                    .read_at(&mut self.buf[filled..], offset + filled as u64)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                filled += n;
            }
            self.buf.truncate(filled);
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}

/// `text` as a JSON string, byte for byte as PostgreSQL's escape_json writes it (to_json(text)):
/// the two-character escapes for " \ and \b \f \n \r \t, \u00xx for other control characters,
/// everything else (including non-ASCII UTF-8) as it is.
fn json_string(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in text {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            b => out.push(b),
        }
    }
    out.push(b'"');
}

/// product_meta, one row per product that has characteristics or reviews, in product id order,
/// from the counters kept while checking: reported reviews count nowhere.
fn send_meta(state: &State, to: &Sender) -> anyhow::Result<()> {
    let mut chars: Vec<u32> = (0..state.chars.len() as u32).collect();
    chars.sort_unstable_by_key(|&c| {
        let c = &state.chars[c as usize];
        (c.product, c.id)
    });
    let mut products: Vec<u32> = (0..state.products.len() as u32).collect();
    products.sort_unstable_by_key(|&p| state.products[p as usize].id);
    let mut out = CopyEncoder::new();
    let mut next_char = 0;
    for p in products {
        let product = &state.products[p as usize];
        let end = next_char
            + chars[next_char..]
                .iter()
                .take_while(|&&c| state.chars[c as usize].product == product.id)
                .count();
        let own: Vec<&Char> = chars[next_char..end]
            .iter()
            .map(|&c| &state.chars[c as usize])
            .collect();
        next_char = end;
        out.tuple(7);
        out.int4(product.id as i32);
        out.int4_array(product.ratings.iter().map(|&n| n as i32));
        out.int4_array(product.recommended.iter().map(|&n| n as i32));
        out.int4_array(own.iter().map(|c| c.id as i32));
        out.text_array(own.iter().map(|c| state.names.get(c.name)));
        out.int8_array(own.iter().map(|c| c.sum as i64));
        out.int4_array(own.iter().map(|c| c.count as i32));
        to.flush(&mut out)?;
    }
    anyhow::ensure!(
        next_char == chars.len(),
        "every characteristic's product has a meta row"
    );
    to.finish(out)
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Everything later files and product_meta need from earlier files. Ids are dense in real
/// exports (max id = row count), so the maps are arrays indexed by id (see [`IdMap`]): at full
/// size about 4 bytes per review, 28 per characteristic, 32 per product, 24 per photo.
#[derive(Default)]
struct State {
    /// characteristic id -> its index in `chars` + 1
    char_slots: IdMap,
    chars: Vec<Char>,
    names: Names,
    /// review id -> product id
    reviews: IdMap,
    reported: IdSet,
    /// product id -> its index in `products` + 1
    product_slots: IdMap,
    products: Vec<ProductCounts>,
    photos: IdSet,
    values: IdSet,
    /// Where each good photo's URL is in reviews_photos.csv, for the reviews' photos JSON.
    photos_by_review: Vec<PhotoRef>,
}

/// A characteristic and the sum and count of the values of visible reviews for it.
struct Char {
    id: u32,
    product: u32,
    name: u32,
    count: u32,
    sum: u64,
}

/// A product's visible reviews per rating 1..5 and per recommend {false, true}.
struct ProductCounts {
    id: u32,
    ratings: [u32; 5],
    recommended: [u32; 2],
}

struct PhotoRef {
    review: u32,
    id: u32,
    offset: u64,
    len: u32,
    /// The URL holds doubled quotes in the file.
    doubled: bool,
}

impl State {
    fn product(&mut self, product_id: i32) -> &mut ProductCounts {
        let slot = match self.product_slots.get(product_id) {
            Some(slot) => slot as usize - 1,
            None => {
                self.products.push(ProductCounts {
                    id: product_id as u32,
                    ratings: [0; 5],
                    recommended: [0; 2],
                });
                self.product_slots
                    .insert(product_id, self.products.len() as i32);
                self.products.len() - 1
            }
        };
        &mut self.products[slot]
    }
}

/// Characteristic names, stored once each (the real data has six).
#[derive(Default)]
struct Names {
    index: HashMap<Box<[u8]>, u32>,
    names: Vec<Box<[u8]>>,
}

impl Names {
    fn intern(&mut self, name: &[u8]) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), i);
        i
    }

    fn get(&self, i: u32) -> &[u8] {
        &self.names[i as usize]
    }
}

/// Rejects a record that is not a row of `expected` fields of clean UTF-8 text.
fn check_shape(record: &Record<'_>, expected: usize) -> Result<(), String> {
    if let Some(e) = record.error() {
        return Err(e.reason().to_string());
    }
    if record.len() != expected {
        return Err(format!(
            "wrong number of fields: {} instead of {expected}",
            record.len()
        ));
    }
    let raw = record.raw();
    // PostgreSQL text can hold neither; one bad row must not abort the whole COPY.
    if raw.contains(&0) {
        return Err("contains a NUL byte, which PostgreSQL text cannot hold".to_string());
    }
    if std::str::from_utf8(raw).is_err() {
        return Err("not valid UTF-8".to_string());
    }
    Ok(())
}

/// The typed fields of a review row.
struct ParsedReview {
    id: i32,
    product_id: i32,
    rating: i16,
    date_ms: i64,
    recommend: bool,
    reported: bool,
    helpfulness: i32,
}

fn parse_review(r: &Record<'_>) -> Result<ParsedReview, String> {
    Ok(ParsedReview {
        id: id_field(r, 0, "id")?,
        product_id: id_field(r, 1, "product_id")?,
        rating: score_field(r, 2, "rating")?,
        date_ms: date_field(r, 3)?,
        recommend: bool_field(r, 6, "recommend")?,
        reported: bool_field(r, 7, "reported")?,
        helpfulness: parse_int(r.field(11))
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| bad(r, 11, "helpfulness", "not a 32-bit integer"))?,
    })
}

/// Checks one row of `kind` against the files before it and, when it is good, records it in
/// `state` and (but for reviews, sent later) encodes it in `out`.
fn check_row(
    kind: CsvFile,
    r: &Record<'_>,
    state: &mut State,
    out: &mut CopyEncoder,
) -> Result<(), String> {
    match kind {
        CsvFile::Characteristics => {
            let id = id_field(r, 0, "id")?;
            let product_id = id_field(r, 1, "product_id")?;
            if state.char_slots.get(id).is_some() {
                return Err(duplicate(id));
            }
            let name = state.names.intern(r.field(2));
            state.chars.push(Char {
                id: id as u32,
                product: product_id as u32,
                name,
                count: 0,
                sum: 0,
            });
            state.char_slots.insert(id, state.chars.len() as i32);
            // A product with characteristics has a meta row even without reviews.
            state.product(product_id);
            out.tuple(3);
            out.int4(id);
            out.int4(product_id);
            out.text(r.field(2));
        }
        CsvFile::Reviews => {
            let review = parse_review(r)?;
            if state.reviews.get(review.id).is_some() {
                return Err(duplicate(review.id));
            }
            state.reviews.insert(review.id, review.product_id);
            let product = state.product(review.product_id);
            if review.reported {
                state.reported.insert(review.id);
            } else {
                product.ratings[review.rating as usize - 1] += 1;
                product.recommended[usize::from(review.recommend)] += 1;
            }
        }
        CsvFile::Photos => {
            let id = id_field(r, 0, "id")?;
            let review_id = id_field(r, 1, "review_id")?;
            if state.photos.contains(id) {
                return Err(duplicate(id));
            }
            if state.reviews.get(review_id).is_none() {
                return Err(missing_review(review_id));
            }
            state.photos.insert(id);
            let (offset, len, doubled) = r.span(2);
            state.photos_by_review.push(PhotoRef {
                review: review_id as u32,
                id: id as u32,
                offset,
                len,
                doubled,
            });
            out.tuple(3);
            out.int4(id);
            out.int4(review_id);
            out.text(r.field(2));
        }
        CsvFile::CharacteristicReviews => {
            let id = id_field(r, 0, "id")?;
            let characteristic_id = id_field(r, 1, "characteristic_id")?;
            let review_id = id_field(r, 2, "review_id")?;
            let value = score_field(r, 3, "value")?;
            if state.values.contains(id) {
                return Err(duplicate(id));
            }
            let Some(slot) = state.char_slots.get(characteristic_id) else {
                return Err(format!(
                    "characteristic {characteristic_id} does not exist \
                     (not in {}, or rejected there)",
                    CsvFile::Characteristics.name()
                ));
            };
            let Some(review_product) = state.reviews.get(review_id) else {
                return Err(missing_review(review_id));
            };
            let characteristic = &mut state.chars[slot as usize - 1];
            if characteristic.product != review_product as u32 {
                return Err(format!(
                    "characteristic {characteristic_id} is of product {} \
                     but review {review_id} is of product {review_product}",
                    characteristic.product
                ));
            }
            if !state.reported.contains(review_id) {
                characteristic.sum += value as u64;
                characteristic.count += 1;
            }
            state.values.insert(id);
            out.tuple(4);
            out.int4(id);
            out.int4(characteristic_id);
            out.int4(review_id);
            out.int2(value);
        }
    }
    Ok(())
}

fn duplicate(id: i32) -> String {
    format!("duplicate id {id}: an earlier row with this id was loaded")
}

fn missing_review(review_id: i32) -> String {
    format!(
        "review {review_id} does not exist (not in {}, or rejected there)",
        CsvFile::Reviews.name()
    )
}

/// A reason naming the field and quoting (a bounded prefix of) its value.
fn bad(r: &Record<'_>, i: usize, name: &str, why: &str) -> String {
    let value = String::from_utf8_lossy(r.field(i));
    let shown: String = value.chars().take(40).collect();
    format!("{name}: {why}: \"{shown}\"")
}

/// Ids are positive integers that fit in PostgreSQL's integer (and the API's 32-bit ids).
fn id_field(r: &Record<'_>, i: usize, name: &str) -> Result<i32, String> {
    match parse_int(r.field(i)) {
        Some(v) if (1..=i64::from(i32::MAX)).contains(&v) => Ok(v as i32),
        _ => Err(bad(r, i, name, "not a positive 32-bit integer")),
    }
}

fn score_field(r: &Record<'_>, i: usize, name: &str) -> Result<i16, String> {
    match parse_int(r.field(i)) {
        Some(v) if (1..=5).contains(&v) => Ok(v as i16),
        _ => Err(bad(r, i, name, "not an integer from 1 to 5")),
    }
}

/// The first millisecond of 10000-01-01: dates must fall in the years 1970 to 9999.
const DATE_LIMIT_MS: i64 = 253_402_300_800_000;

fn date_field(r: &Record<'_>, i: usize) -> Result<i64, String> {
    match parse_int(r.field(i)) {
        Some(v) if (0..DATE_LIMIT_MS).contains(&v) => Ok(v),
        _ => Err(bad(
            r,
            i,
            "date",
            "not epoch milliseconds in the years 1970 to 9999",
        )),
    }
}

fn bool_field(r: &Record<'_>, i: usize, name: &str) -> Result<bool, String> {
    match r.field(i) {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(bad(r, i, name, "not true or false")),
    }
}

/// An optionally negative decimal integer, digits only (no spaces, no plus sign, no fraction).
/// `None` also when it does not fit in an i64.
fn parse_int(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v })
}

/// Ids are kept in a dense array while they stay within a few times the number of entries (the
/// real data: max id = row count); an id far beyond that goes to a hash map instead, so a single
/// absurd id (2,000,000,000) costs one map entry rather than gigabytes.
fn dense_ok(id: usize, len: usize, count: usize) -> bool {
    id < len || id <= 2 * count + (1 << 20)
}

/// id -> a positive value (0 in the dense array means absent).
#[derive(Default)]
struct IdMap {
    dense: Vec<u32>,
    sparse: HashMap<u32, u32>,
    count: usize,
}

impl IdMap {
    fn get(&self, id: i32) -> Option<i32> {
        let id = id as usize;
        match self.dense.get(id) {
            Some(&v) if v != 0 => Some(v as i32),
            _ => self.sparse.get(&(id as u32)).map(|&v| v as i32),
        }
    }

    /// `id` must be absent and `value` positive.
    fn insert(&mut self, id: i32, value: i32) {
        let id = id as usize;
        if dense_ok(id, self.dense.len(), self.count) {
            if id >= self.dense.len() {
                self.dense.resize(id + 1, 0);
            }
            self.dense[id] = value as u32;
        } else {
            self.sparse.insert(id as u32, value as u32);
        }
        self.count += 1;
    }
}

#[derive(Default)]
struct IdSet {
    bits: Vec<u64>,
    sparse: HashSet<u32>,
    count: usize,
}

impl IdSet {
    fn contains(&self, id: i32) -> bool {
        let id = id as usize;
        match self.bits.get(id / 64) {
            Some(w) if w & (1 << (id % 64)) != 0 => true,
            _ => self.sparse.contains(&(id as u32)),
        }
    }

    fn insert(&mut self, id: i32) {
        let id = id as usize;
        if dense_ok(id, self.bits.len() * 64, self.count) {
            if id / 64 >= self.bits.len() {
                self.bits.resize(id / 64 + 1, 0);
            }
            self.bits[id / 64] |= 1 << (id % 64);
        } else {
            self.sparse.insert(id as u32);
        }
        self.count += 1;
    }
}

/// One bit per record number.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn set(&mut self, i: usize) {
        if i / 64 >= self.0.len() {
            self.0.resize(i / 64 + 1, 0);
        }
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Output: binary COPY data and the rejects file

/// Rows in PostgreSQL's binary COPY format: no escaping to do here and no text to parse in the
/// server; each field is its length and its bytes (integers in network order).
struct CopyEncoder {
    buf: BytesMut,
}

impl CopyEncoder {
    /// Rows only: each COPY adds the header and the trailer itself, so the rows of one stream can
    /// be spread over several COPYs (see `copy_table`).
    fn new() -> CopyEncoder {
        CopyEncoder {
            buf: BytesMut::with_capacity(CHUNK + (64 << 10)),
        }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self) -> Bytes {
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK + (64 << 10));
        chunk
    }

    fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    fn tuple(&mut self, fields: i16) {
        self.buf.put_i16(fields);
    }

    fn int2(&mut self, v: i16) {
        self.buf.put_i32(2);
        self.buf.put_i16(v);
    }

    fn int4(&mut self, v: i32) {
        self.buf.put_i32(4);
        self.buf.put_i32(v);
    }

    fn int8(&mut self, v: i64) {
        self.buf.put_i32(8);
        self.buf.put_i64(v);
    }

    fn bool(&mut self, v: bool) {
        self.buf.put_i32(1);
        self.buf.put_u8(u8::from(v));
    }

    fn text(&mut self, v: &[u8]) {
        self.buf.put_i32(v.len() as i32);
        self.buf.put_slice(v);
    }

    fn null(&mut self) {
        self.buf.put_i32(-1);
    }

    fn int4_array(&mut self, values: impl ExactSizeIterator<Item = i32>) {
        let at = self.array_start(INT4_OID, values.len());
        for v in values {
            self.int4(v);
        }
        self.field_end(at);
    }

    fn int8_array(&mut self, values: impl ExactSizeIterator<Item = i64>) {
        let at = self.array_start(INT8_OID, values.len());
        for v in values {
            self.int8(v);
        }
        self.field_end(at);
    }

    fn text_array<'a>(&mut self, values: impl ExactSizeIterator<Item = &'a [u8]>) {
        let at = self.array_start(TEXT_OID, values.len());
        for v in values {
            self.text(v);
        }
        self.field_end(at);
    }

    /// An array field's length (patched by `field_end`) and header: one dimension, no nulls,
    /// lower bound 1; an empty array has no dimension at all.
    fn array_start(&mut self, element_oid: u32, n: usize) -> usize {
        let at = self.buf.len();
        self.buf.put_i32(0);
        self.buf.put_i32(i32::from(n > 0));
        self.buf.put_i32(0);
        self.buf.put_u32(element_oid);
        if n > 0 {
            self.buf.put_i32(n as i32);
            self.buf.put_i32(1);
        }
        at
    }

    fn field_end(&mut self, at: usize) {
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// The binary COPY signature, flags and header extension length; the trailer is a field count
/// of -1.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const COPY_TRAILER: &[u8] = b"\xff\xff";

const INT4_OID: u32 = 23;
const INT8_OID: u32 = 20;
const TEXT_OID: u32 = 25;

/// The rejects file: CSV `file,line,reason,row`, where row is the record exactly as it stood in
/// its file (quoted as one field), so a user can find, read and fix it.
struct Rejects {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Rejects {
    fn create(path: &Path) -> anyhow::Result<Rejects> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the rejects file {}", path.display()))?;
        let mut rejects = Rejects {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
        };
        rejects.out.write_all(b"file,line,reason,row\n")?;
        Ok(rejects)
    }

    fn write(&mut self, file: &str, line: u64, reason: &str, raw: &[u8]) -> anyhow::Result<()> {
        let write = |out: &mut BufWriter<File>| -> std::io::Result<()> {
            write!(out, "{file},{line},")?;
            write_quoted(out, reason.as_bytes())?;
            out.write_all(b",")?;
            write_quoted(out, raw)?;
            out.write_all(b"\n")
        };
        write(&mut self.out)
            .with_context(|| format!("cannot write the rejects file {}", self.path.display()))
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write the rejects file {}", self.path.display()))
    }
}

fn write_quoted(out: &mut impl Write, text: &[u8]) -> std::io::Result<()> {
    out.write_all(b"\"")?;
    for part in text.split_inclusive(|&b| b == b'"') {
        out.write_all(part)?;
        if part.last() == Some(&b'"') {
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_int(b"1596080481467"), Some(1_596_080_481_467));
        assert_eq!(parse_int(b"-3"), Some(-3));
        for bad in [
            &b""[..],
            b"-",
            b"1.5",
            b" 1",
            b"+1",
            b"1e3",
            b"9999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_huge_id_does_not_grow_the_dense_array() {
        let mut map = IdMap::default();
        map.insert(2_000_000_000, 7);
        map.insert(3, 9);
        assert!(map.dense.len() < 1 << 21);
        assert_eq!(map.get(2_000_000_000), Some(7));
        assert_eq!(map.get(3), Some(9));
        assert_eq!(map.get(4), None);
        let mut set = IdSet::default();
        set.insert(i32::MAX);
        set.insert(64);
        assert!(set.bits.len() < 1 << 16);
        assert!(set.contains(i32::MAX) && set.contains(64) && !set.contains(63));
    }

    #[test]
    fn json_strings_escape_like_postgresql() {
        let mut out = Vec::new();
        json_string(
            "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}/é😀".as_bytes(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/é😀\""
        );
    }

    #[test]
    fn quoting_in_the_rejects_file() {
        let mut out = Vec::new();
        write_quoted(&mut out, b"a \"b\"\nc").unwrap();
        assert_eq!(out, b"\"a \"\"b\"\"\nc\"");
    }
}
