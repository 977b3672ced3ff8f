//! Staging: the staging schema filled by the two connections' COPYs, side by side (the plan
//! is in the comment of `load`), checked against what the parsing threads counted, then indexed
//! and swapped in (swap.rs).

use super::copy::{Chunk, CHANNEL, COPY_HEADER, COPY_TRAILER};
use super::input::Inputs;
use super::parse::parse_all;
use super::rejects::Rejects;
use super::swap::{
    finish_table, index_statements, index_table, swap, table_jobs, take_jobs, OTHER_TABLES,
};
use super::{sql, FileReport, Timeline, Tuning};
use crate::db::{self, Topology};
use crate::etl::dataset::CsvFile;
use anyhow::Context;
use bytes::Bytes;
use futures_util::SinkExt;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use tokio::sync::mpsc;
use tokio_postgres::Client;

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

    fn copy_sql(self, topology: Topology) -> &'static str {
        match (self, topology) {
            (Table::Characteristics, _) => sql::COPY_CHARACTERISTICS,
            (Table::Reviews, _) => sql::COPY_REVIEWS,
            (Table::Photos, Topology::Plain) => sql::COPY_PHOTOS,
            (Table::Photos, Topology::Citus) => sql::CITUS_COPY_PHOTOS,
            (Table::Values, Topology::Plain) => sql::COPY_VALUES,
            (Table::Values, Topology::Citus) => sql::CITUS_COPY_VALUES,
            (Table::Meta, _) => sql::COPY_META,
        }
    }
}

pub(super) async fn stage_and_swap(
    reviews_conn: &mut Client,
    other_conn: &mut Client,
    inputs: Inputs,
    rejects: Rejects,
    timeline: &Timeline,
    tuning: Tuning,
    topology: Topology,
) -> anyhow::Result<Vec<FileReport>> {
    reviews_conn.batch_execute(sql::STAGING).await?;
    reviews_conn
        .batch_execute("SET search_path = reviews_load")
        .await?;
    db::run_each(reviews_conn, &[db::sql::SCHEMA, topology.distribute()])
        .await
        .context("cannot create the staging tables")?;
    reviews_conn.batch_execute("RESET search_path").await?;
    reviews_conn
        .batch_execute(match topology {
            Topology::Plain => sql::PREPARE,
            Topology::Citus => sql::CITUS_PREPARE,
        })
        .await?;

    let (reviews_tx, reviews_rx) = mpsc::channel(CHANNEL);
    let (other_tx, other_rx) = mpsc::channel(CHANNEL);
    let with_product_ids = topology == Topology::Citus;
    let parser = tokio::task::spawn_blocking(move || {
        parse_all(inputs, rejects, reviews_tx, other_tx, with_product_ids)
    });

    let (reviews_jobs, reviews_attach) = table_jobs(reviews_conn, "reviews").await?;
    let shared = Shared {
        timeline,
        topology,
        reviews: tokio::sync::Mutex::new(reviews_rx),
        reviews_ended: Cell::new(false),
        reviews_jobs: RefCell::new(VecDeque::from(reviews_jobs)),
        copied: RefCell::new(Vec::new()),
    };
    let other_input: ChunkInput = tokio::sync::Mutex::new(other_rx);
    let (free_tx, free_rx) = tokio::sync::watch::channel(tuning.share_reviews_at_once);

    // The reviews stream on one connection, the other tables on the other. The generated review
    // documents are the longest job: when the other connection is done with its tables it
    // signals `free`, the reviews COPY (frozen so far) commits, and both connections copy the
    // rest of the reviews side by side, then both build the reviews' indexes.
    let loaded = tokio::try_join!(
        reviews_connection(reviews_conn, &shared, &free_rx),
        other_connection(other_conn, &shared, &other_input, free_tx),
    );
    let Shared {
        reviews: reviews_input,
        copied,
        ..
    } = shared;
    // With the receivers gone a parser still sending stops, instead of waiting forever.
    drop((reviews_input, other_input));
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
    check_copied(&copied.into_inner(), &reports)?;
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
    // The stored first pages read the reviews through their sort indexes, so they come last: one
    // statement per sort, spread over both connections.
    let sorts = RefCell::new(VecDeque::from(["r", "n", "h"]));
    timeline
        .time("first pages", async {
            tokio::try_join!(
                first_pages(reviews_conn, &sorts),
                first_pages(other_conn, &sorts)
            )
        })
        .await?;
    timeline
        .time(
            "first_pages key, vacuum, analyze",
            index_table(reviews_conn, "first_pages"),
        )
        .await?;
    if topology == Topology::Citus {
        timeline
            .time("review_products", async {
                reviews_conn
                    .batch_execute(sql::CITUS_REVIEW_PRODUCTS)
                    .await?;
                index_table(reviews_conn, "review_products").await
            })
            .await?;
    }

    timeline.time("swap", swap(reviews_conn)).await?;
    Ok(reports)
}

/// Runs sql/load/first_pages.sql for sorts taken from `sorts` until it is empty.
async fn first_pages(client: &Client, sorts: &RefCell<VecDeque<&str>>) -> anyhow::Result<()> {
    loop {
        let Some(sort) = sorts.borrow_mut().pop_front() else {
            return Ok(());
        };
        client
            .execute(sql::FIRST_PAGES, &[&sort])
            .await
            .with_context(|| format!("cannot build the first pages of sort {sort}"))?;
    }
}

/// What the two connections share while they copy.
struct Shared<'a> {
    timeline: &'a Timeline,
    topology: Topology,
    /// The reviews' chunks: one connection's alone until the other is free, then both take them.
    reviews: ChunkInput,
    /// Set by the COPY that took the reviews' End, so the other one knows the input is done.
    reviews_ended: Cell<bool>,
    /// The reviews' index builds, shared: both connections take them from this queue once the
    /// reviews are in (each build takes a SHARE lock, so they run side by side; a build started
    /// while the other connection still copies reviews waits for that COPY to commit).
    reviews_jobs: RefCell<VecDeque<String>>,
    /// The rows PostgreSQL reports for each COPY.
    copied: RefCell<Vec<(Table, u64)>>,
}

/// The reviews' connection: the reviews COPY, frozen until `free` turns true, then the rest of
/// the reviews beside the other connection, then the reviews' indexes.
async fn reviews_connection(
    conn: &mut Client,
    shared: &Shared<'_>,
    free: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (rows, ended) = shared
        .timeline
        .time(
            "copy reviews (frozen)",
            copy_table(
                conn,
                shared.topology,
                Table::Reviews,
                Mode::Freeze,
                &shared.reviews,
                Some(free),
                &shared.reviews_ended,
            ),
        )
        .await?;
    shared.copied.borrow_mut().push((Table::Reviews, rows));
    if !ended {
        copy_shared_reviews(conn, "copy reviews (shared)", shared).await?;
    }
    shared
        .timeline
        .time("index reviews", take_jobs(conn, &shared.reviews_jobs))
        .await
}

/// The other connection: the other four tables and their indexes, then, signalling `free`, it
/// helps with the rest of the reviews and their indexes.
async fn other_connection(
    conn: &mut Client,
    shared: &Shared<'_>,
    input: &ChunkInput,
    free: tokio::sync::watch::Sender<bool>,
) -> anyhow::Result<()> {
    let timeline = shared.timeline;
    copy_other(
        conn,
        "copy characteristics",
        Table::Characteristics,
        input,
        shared,
    )
    .await?;
    // Built while the parser still checks reviews.csv, when PostgreSQL has nothing else to do.
    timeline
        .time(
            "index, vacuum, analyze characteristics",
            index_table(conn, "characteristics"),
        )
        .await?;
    copy_other(conn, "copy reviews_photos", Table::Photos, input, shared).await?;
    copy_other(
        conn,
        "copy characteristic_reviews",
        Table::Values,
        input,
        shared,
    )
    .await?;
    copy_other(conn, "copy product_meta", Table::Meta, input, shared).await?;
    timeline
        .time("index, vacuum, analyze others", async {
            for table in &OTHER_TABLES[1..] {
                index_table(conn, table).await?;
            }
            Ok(())
        })
        .await?;
    let _ = free.send(true);
    if !shared.reviews_ended.get() {
        copy_shared_reviews(conn, "copy reviews (shared, helping)", shared).await?;
    }
    timeline
        .time(
            "index reviews (helping)",
            take_jobs(conn, &shared.reviews_jobs),
        )
        .await
}

/// What PostgreSQL says it copied is what was checked good.
fn check_copied(copied: &[(Table, u64)], reports: &[FileReport]) -> anyhow::Result<()> {
    for (table, file) in [
        (Table::Characteristics, CsvFile::Characteristics),
        (Table::Reviews, CsvFile::Reviews),
        (Table::Photos, CsvFile::Photos),
        (Table::Values, CsvFile::CharacteristicReviews),
    ] {
        let rows: u64 = copied
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
    Ok(())
}

/// A COPY of one of the other tables, frozen, timed and counted.
async fn copy_other(
    client: &mut Client,
    name: &'static str,
    table: Table,
    input: &ChunkInput,
    shared: &Shared<'_>,
) -> anyhow::Result<()> {
    let ended = Cell::new(false);
    let (rows, _) = shared
        .timeline
        .time(
            name,
            copy_table(
                client,
                shared.topology,
                table,
                Mode::Freeze,
                input,
                None,
                &ended,
            ),
        )
        .await?;
    shared.copied.borrow_mut().push((table, rows));
    Ok(())
}

/// The rest of the reviews, copied side by side with the other connection (see `stage_and_swap`).
async fn copy_shared_reviews(
    client: &mut Client,
    name: &'static str,
    shared: &Shared<'_>,
) -> anyhow::Result<()> {
    let (rows, _) = shared
        .timeline
        .time(
            name,
            copy_table(
                client,
                shared.topology,
                Table::Reviews,
                Mode::Shared,
                &shared.reviews,
                None,
                &shared.reviews_ended,
            ),
        )
        .await?;
    shared.copied.borrow_mut().push((Table::Reviews, rows));
    Ok(())
}

/// One connection's input: chunks from a parsing thread. Behind a lock because the reviews'
/// chunks may end up shared between both connections.
type ChunkInput = tokio::sync::Mutex<mpsc::Receiver<Chunk>>;

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
    topology: Topology,
    table: Table,
    mode: Mode,
    input: &ChunkInput,
    stop: Option<&tokio::sync::watch::Receiver<bool>>,
    ended: &std::cell::Cell<bool>,
) -> anyhow::Result<(u64, bool)> {
    let tx = client.transaction().await?;
    let statement = match mode {
        Mode::Freeze => {
            tx.batch_execute(&format!("TRUNCATE {}", table.name()))
                .await?;
            table.copy_sql(topology)
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
