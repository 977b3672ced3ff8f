//! `reviews-api load DIR`: the four dataset CSV files into the served tables (dataset.md).
//!
//! The shape of a load, and why:
//!
//! 1. All four files are opened and their headers checked before the database is touched, so a
//!    missing or wrong file fails without changing anything.
//! 2. One thread parses and validates the files (CPU work must stay off the async executor) and
//!    encodes the good rows as binary COPY data; 1 MiB chunks go through a bounded channel to the
//!    async side, which streams them into PostgreSQL with `COPY ... FROM STDIN`. Parsing and
//!    PostgreSQL's ingestion overlap on the two cores; the channel bounds the memory in between.
//! 3. Every reference check happens in Rust, in compact maps (a review's product, a
//!    characteristic's product, ids seen), so no SQL pass is needed to find bad rows and no bad
//!    row ever reaches PostgreSQL. Rejected rows go to the rejects file with line and reason.
//! 4. The data lands in the schema `reviews_load`, built from sql/schema.sql itself; the SQL steps
//!    in sql/load/ fill `photos` and product_meta, build the indexes, and one transaction swaps
//!    the staging tables into public. Until that commit the served data is untouched.

use crate::config::Settings;
use crate::db;
use crate::etl::csv::{Reader, Record};
use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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
    /// Wall time of each phase, in order: copy, transform, index, vacuum, swap.
    pub phases: Vec<(&'static str, Duration)>,
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
    pub const COPY_PHOTOS: &str = include_str!("../../sql/load/copy_reviews_photos.sql");
    pub const COPY_VALUES: &str = include_str!("../../sql/load/copy_characteristic_reviews.sql");
    pub const TRANSFORM_REVIEWS: &str = include_str!("../../sql/load/transform_reviews.sql");
    pub const TRANSFORM_META: &str = include_str!("../../sql/load/transform_meta.sql");
    pub const PRIMARY_KEYS: &str = include_str!("../../sql/load/primary_keys.sql");
    pub const SWAP: &str = include_str!("../../sql/load/swap.sql");
}

/// Session settings for the bulk work. The index builds sort tens of millions of keys: 1 GB of
/// maintenance_work_mem keeps each sort in memory. Losing the last commits of a load to a crash
/// costs nothing (the load is redone), so commits need not wait for the WAL flush.
const SESSION: &str = "SET client_min_messages = warning; SET statement_timeout = 0; \
    SET lock_timeout = 0; SET synchronous_commit = off; SET maintenance_work_mem = '1GB'; \
    SET work_mem = '256MB'";

/// Held for the whole load: two loads at once would clobber each other's staging schema.
const LOAD_LOCK: i64 = 7266;

/// How long the swap may wait for readers to let go of the served tables before it backs off,
/// and how often it tries. Waiting for the exclusive locks queues every new reader behind it.
const SWAP_LOCK_TIMEOUT: &str = "2s";
const SWAP_TRIES: u32 = 10;

/// The four files, in the order they are read: each is checked against the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Characteristics,
    Reviews,
    Photos,
    Values,
}

impl Kind {
    const ORDER: [Kind; 4] = [
        Kind::Characteristics,
        Kind::Reviews,
        Kind::Photos,
        Kind::Values,
    ];

    fn file(self) -> &'static str {
        match self {
            Kind::Characteristics => "characteristics.csv",
            Kind::Reviews => "reviews.csv",
            Kind::Photos => "reviews_photos.csv",
            Kind::Values => "characteristic_reviews.csv",
        }
    }

    fn header(self) -> &'static [&'static str] {
        match self {
            Kind::Characteristics => &["id", "product_id", "name"],
            Kind::Reviews => &[
                "id",
                "product_id",
                "rating",
                "date",
                "summary",
                "body",
                "recommend",
                "reported",
                "reviewer_name",
                "reviewer_email",
                "response",
                "helpfulness",
            ],
            Kind::Photos => &["id", "review_id", "url"],
            Kind::Values => &["id", "characteristic_id", "review_id", "value"],
        }
    }

    fn copy_sql(self) -> &'static str {
        match self {
            Kind::Characteristics => sql::COPY_CHARACTERISTICS,
            Kind::Reviews => sql::COPY_REVIEWS,
            Kind::Photos => sql::COPY_PHOTOS,
            Kind::Values => sql::COPY_VALUES,
        }
    }

    /// The table the COPY fills, truncated in the COPY's transaction so FREEZE is allowed.
    fn table(self) -> &'static str {
        match self {
            Kind::Characteristics => "reviews_load.characteristics",
            Kind::Reviews => "reviews_load.reviews_csv",
            Kind::Photos => "reviews_load.reviews_photos",
            Kind::Values => "reviews_load.characteristic_reviews",
        }
    }
}

pub async fn run(settings: &Settings, args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let inputs = open_inputs(&args.dir)?;
    let rejects_path = args
        .rejects
        .clone()
        .unwrap_or_else(|| PathBuf::from(&settings.load.rejects));
    let rejects = Rejects::create(&rejects_path)?;

    let mut client = db::connect(&settings.database.url)
        .await
        .context("cannot connect to the database")?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOAD_LOCK])
        .await?
        .get(0);
    anyhow::ensure!(locked, "another load is running on this database");
    db::migrate(&client)
        .await
        .context("cannot apply the schema")?;
    client.batch_execute(SESSION).await?;

    let result = stage_and_swap(&mut client, inputs, rejects).await;
    if result.is_err() {
        // Leave no half-filled staging behind (gigabytes); the served tables were not touched.
        let _ = client
            .batch_execute("ROLLBACK; DROP SCHEMA IF EXISTS reviews_load CASCADE")
            .await;
    }
    let _ = client
        .query_one("SELECT pg_advisory_unlock($1)", &[&LOAD_LOCK])
        .await;
    let (files, phases) = result?;
    let report = LoadReport {
        files,
        rejects_path,
        phases,
    };
    print_summary(&report, started.elapsed());
    Ok(report)
}

type Staged = (Vec<FileReport>, Vec<(&'static str, Duration)>);

async fn stage_and_swap(
    client: &mut tokio_postgres::Client,
    inputs: Vec<Input>,
    rejects: Rejects,
) -> anyhow::Result<Staged> {
    let mut phases = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, phases: &mut Vec<(&'static str, Duration)>| {
        phases.push((name, clock.elapsed()));
        clock = Instant::now();
    };

    client.batch_execute(sql::STAGING).await?;
    client
        .batch_execute(&format!(
            "SET search_path = reviews_load; {} RESET search_path;",
            db::sql::SCHEMA
        ))
        .await
        .context("cannot create the staging tables")?;
    client.batch_execute(sql::PREPARE).await?;

    let files = copy_all(client, inputs, rejects).await?;
    lap("copy", &mut phases);

    client
        .batch_execute(sql::TRANSFORM_REVIEWS)
        .await
        .context("cannot fill the staging reviews")?;
    client
        .batch_execute(sql::TRANSFORM_META)
        .await
        .context("cannot fill the staging product_meta")?;
    // Its work is done; dropping it now frees its disk before the index builds.
    client
        .batch_execute("DROP TABLE reviews_load.reviews_csv")
        .await?;
    lap("transform", &mut phases);

    client
        .batch_execute(sql::PRIMARY_KEYS)
        .await
        .context("cannot build the primary keys")?;
    client
        .batch_execute(&format!(
            "SET search_path = reviews_load; {} RESET search_path;",
            db::sql::INDEXES
        ))
        .await
        .context("cannot build the indexes")?;
    lap("index", &mut phases);

    // Before the swap rather than after: the tables go live with their statistics and a
    // visibility map already in place, so the first queries get good plans and index-only scans.
    client
        .batch_execute(
            "VACUUM (ANALYZE) reviews_load.reviews, reviews_load.reviews_photos, \
             reviews_load.characteristics, reviews_load.characteristic_reviews, \
             reviews_load.product_meta",
        )
        .await
        .context("cannot vacuum the staging tables")?;
    lap("vacuum", &mut phases);

    swap(client).await?;
    lap("swap", &mut phases);
    Ok((files, phases))
}

/// The swap in one transaction. A lock that cannot be had within SWAP_LOCK_TIMEOUT (readers in
/// long transactions) rolls everything back; the swap then waits a little and tries again.
async fn swap(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
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

fn print_summary(report: &LoadReport, total: Duration) {
    println!("{:<28} {:>12} {:>10}", "file", "loaded", "rejected");
    for f in &report.files {
        println!("{:<28} {:>12} {:>10}", f.file, f.loaded, f.rejected);
    }
    let phases: Vec<String> = report
        .phases
        .iter()
        .map(|(name, d)| format!("{name} {:.1}s", d.as_secs_f64()))
        .collect();
    println!(
        "time: {} (total {:.1}s)",
        phases.join(", "),
        total.as_secs_f64()
    );
    println!("rejected rows: {}", report.rejects_path.display());
}

// ---------------------------------------------------------------------------------------------
// Input files

struct Input {
    kind: Kind,
    size: u64,
    reader: Reader<File>,
}

/// Opens the four files and reads their headers; any problem is an error before any change.
fn open_inputs(dir: &Path) -> anyhow::Result<Vec<Input>> {
    Kind::ORDER
        .iter()
        .map(|&kind| {
            let path = dir.join(kind.file());
            let file =
                File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut reader = Reader::new(file);
            let header = reader
                .next_record()
                .with_context(|| format!("cannot read {}", path.display()))?;
            let expected = kind.header();
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
                    expected.join(",")
                );
            }
            Ok(Input { kind, size, reader })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing thread -> COPY

enum Chunk {
    Data(Bytes),
    /// The file is done: the COPY can finish.
    End,
}

/// Chunks in flight between the parsing thread and PostgreSQL: enough to smooth out bursts,
/// few enough to bound memory (CHUNK bytes each).
const CHANNEL: usize = 8;
const CHUNK: usize = 1 << 20;

async fn copy_all(
    client: &mut tokio_postgres::Client,
    inputs: Vec<Input>,
    rejects: Rejects,
) -> anyhow::Result<Vec<FileReport>> {
    let (tx, mut rx) = mpsc::channel(CHANNEL);
    let parser = tokio::task::spawn_blocking(move || parse_all(inputs, rejects, tx));
    let mut copied = Vec::new();
    let mut failure = None;
    for kind in Kind::ORDER {
        match copy_file(client, kind, &mut rx).await {
            Ok(rows) => copied.push(rows),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // Closing the channel stops the parser if the database failed first.
    drop(rx);
    let parsed = parser.await.context("the parsing thread panicked")?;
    let reports = match (parsed, failure) {
        // The parser's own error (an unreadable file) explains a COPY cut short.
        (Err(e), _) => return Err(e),
        (Ok(_), Some(e)) => return Err(e),
        (Ok(reports), None) => reports,
    };
    for (report, rows) in reports.iter().zip(&copied) {
        anyhow::ensure!(
            report.loaded == *rows,
            "{}: {} rows validated but PostgreSQL copied {rows}",
            report.file,
            report.loaded
        );
    }
    Ok(reports)
}

/// One file's COPY, in a transaction that first empties the table so FREEZE is allowed.
async fn copy_file(
    client: &mut tokio_postgres::Client,
    kind: Kind,
    rx: &mut mpsc::Receiver<Chunk>,
) -> anyhow::Result<u64> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("TRUNCATE {}", kind.table()))
        .await?;
    let sink = tx.copy_in::<_, Bytes>(kind.copy_sql()).await?;
    let mut sink = std::pin::pin!(sink);
    loop {
        match rx.recv().await {
            Some(Chunk::Data(bytes)) => sink
                .send(bytes)
                .await
                .with_context(|| format!("COPY of {} failed", kind.file()))?,
            Some(Chunk::End) => break,
            None => anyhow::bail!("reading {} stopped", kind.file()),
        }
    }
    let rows = sink
        .as_mut()
        .finish()
        .await
        .with_context(|| format!("COPY of {} failed", kind.file()))?;
    tx.commit().await?;
    Ok(rows)
}

fn parse_all(
    inputs: Vec<Input>,
    mut rejects: Rejects,
    tx: mpsc::Sender<Chunk>,
) -> anyhow::Result<Vec<FileReport>> {
    let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix:>27} [{bar:30}] {bytes:>9}/{total_bytes:<9} {msg}")
            .expect("valid template")
            .progress_chars("=> ");
    let bars: Vec<ProgressBar> = inputs
        .iter()
        .map(|input| {
            let bar = progress.add(ProgressBar::new(input.size));
            bar.set_style(style.clone());
            bar.set_prefix(input.kind.file());
            bar
        })
        .collect();
    let mut refs = Refs::default();
    let mut reports = Vec::new();
    for (input, bar) in inputs.into_iter().zip(bars) {
        reports.push(parse_file(input, &mut refs, &mut rejects, &tx, &bar)?);
    }
    rejects.finish()?;
    Ok(reports)
}

fn parse_file(
    input: Input,
    refs: &mut Refs,
    rejects: &mut Rejects,
    tx: &mpsc::Sender<Chunk>,
    bar: &ProgressBar,
) -> anyhow::Result<FileReport> {
    let Input {
        kind, mut reader, ..
    } = input;
    let send = |chunk: Chunk| {
        tx.blocking_send(chunk)
            .map_err(|_| anyhow::anyhow!("the database side of the load stopped"))
    };
    let started = Instant::now();
    let mut out = CopyEncoder::new();
    let mut report = FileReport {
        file: kind.file(),
        loaded: 0,
        rejected: 0,
    };
    let expected = kind.header().len();
    loop {
        let record = reader
            .next_record()
            .with_context(|| format!("cannot read {}", kind.file()))?;
        let Some(record) = record else { break };
        match check_shape(&record, expected).and_then(|()| row(kind, &record, refs, &mut out)) {
            Ok(()) => report.loaded += 1,
            Err(reason) => {
                report.rejected += 1;
                rejects.write(kind.file(), record.line(), &reason, record.raw())?;
            }
        }
        if out.len() >= CHUNK {
            send(Chunk::Data(out.take()))?;
        }
        if (report.loaded + report.rejected) % 65536 == 0 {
            show(bar, &reader, &report, started);
        }
    }
    send(Chunk::Data(out.finish()))?;
    send(Chunk::End)?;
    show(bar, &reader, &report, started);
    bar.finish();
    Ok(report)
}

fn show(bar: &ProgressBar, reader: &Reader<File>, report: &FileReport, started: Instant) {
    let rows = report.loaded + report.rejected;
    let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
    bar.set_position(reader.bytes_consumed());
    bar.set_message(format!(
        "{rows} rows, {rate:.0} rows/s, {} rejected",
        report.rejected
    ));
}

// ---------------------------------------------------------------------------------------------
// Validation

/// What the later files are checked against. Ids are dense in real exports (max id = row count),
/// so the maps are arrays indexed by id: 4 bytes per review or characteristic, 1 bit per photo or
/// value, about 40 MB at full size.
#[derive(Default)]
struct Refs {
    /// characteristic id -> product id
    characteristics: IdMap,
    /// review id -> product id
    reviews: IdMap,
    photos: IdSet,
    values: IdSet,
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

/// Checks one row of `kind` and, when it is good, records it in `refs` and encodes it in `out`.
fn row(kind: Kind, r: &Record<'_>, refs: &mut Refs, out: &mut CopyEncoder) -> Result<(), String> {
    match kind {
        Kind::Characteristics => {
            let id = id_field(r, 0, "id")?;
            let product_id = id_field(r, 1, "product_id")?;
            if refs.characteristics.get(id).is_some() {
                return Err(duplicate(id));
            }
            refs.characteristics.insert(id, product_id);
            out.tuple(3);
            out.int4(id);
            out.int4(product_id);
            out.text(r.field(2));
        }
        Kind::Reviews => {
            let id = id_field(r, 0, "id")?;
            let product_id = id_field(r, 1, "product_id")?;
            let rating = score_field(r, 2, "rating")?;
            let date = date_field(r, 3)?;
            let recommend = bool_field(r, 6, "recommend")?;
            let reported = bool_field(r, 7, "reported")?;
            let helpfulness = parse_int(r.field(11))
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| bad(r, 11, "helpfulness", "not a 32-bit integer"))?;
            if refs.reviews.get(id).is_some() {
                return Err(duplicate(id));
            }
            refs.reviews.insert(id, product_id);
            out.tuple(12);
            out.int4(id);
            out.int4(product_id);
            out.int2(rating);
            out.int8(date);
            out.text(r.field(4));
            out.text(r.field(5));
            out.bool(recommend);
            out.bool(reported);
            out.text(r.field(8));
            out.text(r.field(9));
            // The bare token null is an absent response; the quoted "null" is text.
            if !r.quoted(10) && r.field(10) == b"null" {
                out.null();
            } else {
                out.text(r.field(10));
            }
            out.int4(helpfulness);
        }
        Kind::Photos => {
            let id = id_field(r, 0, "id")?;
            let review_id = id_field(r, 1, "review_id")?;
            if refs.photos.contains(id) {
                return Err(duplicate(id));
            }
            if refs.reviews.get(review_id).is_none() {
                return Err(missing_review(review_id));
            }
            refs.photos.insert(id);
            out.tuple(3);
            out.int4(id);
            out.int4(review_id);
            out.text(r.field(2));
        }
        Kind::Values => {
            let id = id_field(r, 0, "id")?;
            let characteristic_id = id_field(r, 1, "characteristic_id")?;
            let review_id = id_field(r, 2, "review_id")?;
            let value = score_field(r, 3, "value")?;
            if refs.values.contains(id) {
                return Err(duplicate(id));
            }
            let Some(char_product) = refs.characteristics.get(characteristic_id) else {
                return Err(format!(
                    "characteristic {characteristic_id} does not exist \
                     (not in characteristics.csv, or rejected there)"
                ));
            };
            let Some(review_product) = refs.reviews.get(review_id) else {
                return Err(missing_review(review_id));
            };
            if char_product != review_product {
                return Err(format!(
                    "characteristic {characteristic_id} is of product {char_product} \
                     but review {review_id} is of product {review_product}"
                ));
            }
            refs.values.insert(id);
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
    format!("review {review_id} does not exist (not in reviews.csv, or rejected there)")
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

// ---------------------------------------------------------------------------------------------
// Output: binary COPY data and the rejects file

/// Rows in PostgreSQL's binary COPY format: no escaping to do here and no text to parse in the
/// server; each field is its length and its bytes (integers in network order).
struct CopyEncoder {
    buf: BytesMut,
}

impl CopyEncoder {
    fn new() -> CopyEncoder {
        let mut buf = BytesMut::with_capacity(CHUNK + (64 << 10));
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        CopyEncoder { buf }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self) -> Bytes {
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK + (64 << 10));
        chunk
    }

    fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
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
}

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
    fn quoting_in_the_rejects_file() {
        let mut out = Vec::new();
        write_quoted(&mut out, b"a \"b\"\nc").unwrap();
        assert_eq!(out, b"\"a \"\"b\"\"\nc\"");
    }
}
