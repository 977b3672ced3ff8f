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
//!    product_meta counter: done in SQL after the COPY (an INSERT ... SELECT rewriting every
//!    review, two aggregations over every value) it cost more than the plain COPY of all four
//!    files; here it costs seconds (README, "Loading the real dataset", has the figures). What
//!    PostgreSQL must still do is compute the generated documents (`doc`, the plpgsql
//!    review_doc of schema.sql), the longest part of a load: the reviews stream on one
//!    connection (COPY FREEZE) while everything else (the other three files, product_meta, their
//!    indexes) goes on a second one, and when the second is done the reviews COPY commits and both
//!    connections copy the rest of the reviews side by side (VACUUM then sets those pages
//!    all-visible), then build the reviews' indexes side by side: both cores stay busy to the end.
//!    To embed its photos a review must be written after reviews_photos.csv is read, and photos
//!    must be checked against the reviews: reviews.csv is read twice, first to check it, then to
//!    send it. A photo's URL is not kept in memory but read back from its file by offset (the
//!    page cache has it), which keeps the loader's memory small at full size (README).
//! 5. Everything lands in the schema `reviews_load`, built from sql/schema.sql itself; the SQL
//!    steps in sql/load/ build the keys and indexes (and sql/indexes.sql's triggers on reviews,
//!    after its COPY, so the COPY fires none), then the stored first pages (first_pages.sql, one
//!    statement per sort over both connections, reading the staging reviews' sort indexes), and
//!    one transaction swaps the staging tables into public. Until that commit the served data is
//!    untouched.
//!
//! Where each part lives: `input` opens the files and reads them back by offset; `parse` runs
//! the parsing threads (points 2 and 4); `check` holds the rules and maps of point 3; `copy` is
//! the binary COPY encoder; `rejects` writes the rejects file; `stage` runs the two connections'
//! COPYs (point 4); `swap` builds keys and indexes and swaps the tables in (point 5).
//!
//! On Citus (`db::Topology::Citus`) the same steps run through the coordinator: the staging tables
//! are distributed by product and co-located before the COPY (sql/citus/distribute.sql, run in
//! the staging schema), keep their keys during it (sql/citus/load/prepare.sql), the photos and
//! values carry their review's product id, and review_products is filled before the same
//! one-transaction swap.

mod check;
mod copy;
mod input;
mod parse;
mod rejects;
mod stage;
mod swap;

use crate::config::Settings;
use crate::db;
use anyhow::Context;
use input::{open_inputs, refuse_to_overwrite_an_input};
use rejects::Rejects;
use stage::stage_and_swap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    pub const STAGING: &str = include_str!("../../../sql/load/staging.sql");
    pub const PREPARE: &str = include_str!("../../../sql/load/prepare.sql");
    pub const COPY_CHARACTERISTICS: &str =
        include_str!("../../../sql/load/copy_characteristics.sql");
    pub const COPY_REVIEWS: &str = include_str!("../../../sql/load/copy_reviews.sql");
    pub const COPY_REVIEWS_SHARED: &str = include_str!("../../../sql/load/copy_reviews_shared.sql");
    pub const COPY_PHOTOS: &str = include_str!("../../../sql/load/copy_reviews_photos.sql");
    pub const COPY_VALUES: &str = include_str!("../../../sql/load/copy_characteristic_reviews.sql");
    pub const COPY_META: &str = include_str!("../../../sql/load/copy_product_meta.sql");
    pub const PRIMARY_KEY: &str = include_str!("../../../sql/load/primary_key.sql");
    pub const FIRST_PAGES: &str = include_str!("../../../sql/load/first_pages.sql");
    pub const SWAP: &str = include_str!("../../../sql/load/swap.sql");
    pub const CITUS_PREPARE: &str = include_str!("../../../sql/citus/load/prepare.sql");
    pub const CITUS_COPY_PHOTOS: &str =
        include_str!("../../../sql/citus/load/copy_reviews_photos.sql");
    pub const CITUS_COPY_VALUES: &str =
        include_str!("../../../sql/citus/load/copy_characteristic_reviews.sql");
    pub const CITUS_REVIEW_PRODUCTS: &str =
        include_str!("../../../sql/citus/load/review_products.sql");
}

/// Session settings for the bulk work. The index builds sort tens of millions of keys: 1 GB of
/// maintenance_work_mem keeps each sort in memory. Losing the last commits of a load to a crash
/// costs nothing (the load is redone), so commits need not wait for the WAL flush.
const SESSION: &str = "SET client_min_messages = warning; SET statement_timeout = 0; \
    SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
    SET synchronous_commit = off; SET maintenance_work_mem = '1GB'";

/// Held for the whole load: two loads at once would clobber each other's staging schema.
const LOAD_LOCK: i64 = 7266;

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
    let topology = db::migrate(&reviews_conn)
        .await
        .context("cannot apply the schema")?;
    let mut other_conn = db::connect(url).await.with_context(connect_error)?;
    for conn in [&reviews_conn, &other_conn] {
        conn.batch_execute(SESSION).await?;
        if topology == db::Topology::Citus {
            // The staging reviews get sql/indexes.sql's triggers too (see db::migrate).
            conn.batch_execute("SET citus.enable_unsafe_triggers = on")
                .await?;
        }
    }

    let timeline = Timeline::new(started);
    let result = stage_and_swap(
        &mut reviews_conn,
        &mut other_conn,
        inputs,
        rejects,
        &timeline,
        tuning,
        topology,
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
