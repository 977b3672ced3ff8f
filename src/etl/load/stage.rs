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
use crate::db;
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

pub(super) async fn stage_and_swap(
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
