//! After the COPYs: each staging table's primary key, indexes and statistics, then the swap of
//! the staging tables into public in one transaction.

use super::sql;
use crate::db;
use anyhow::Context;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;
use tokio_postgres::Client;

/// How long the swap may wait for readers to let go of the served tables before it backs off,
/// and how often it tries. Waiting for the exclusive locks queues every new reader behind it.
const SWAP_LOCK_TIMEOUT: &str = "2s";
const SWAP_TRIES: u32 = 10;

/// The tables the second connection fills and indexes, characteristics first.
pub(super) const OTHER_TABLES: &[&str] = &[
    "characteristics",
    "reviews_photos",
    "characteristic_reviews",
    "product_meta",
];

/// The statements that build a staging table's primary key index (prepare.sql dropped the key;
/// a bulk build is faster) and its indexes of sql/indexes.sql, and the statement that makes the
/// index its primary key again once they are built.
pub(super) async fn table_jobs(
    client: &Client,
    table: &str,
) -> anyhow::Result<(Vec<String>, String)> {
    // No saved key: the table kept its key (Citus: sql/citus/load/prepare.sql).
    let row = client
        .query_opt(sql::PRIMARY_KEY, &[&format!("reviews_load.{table}")])
        .await
        .with_context(|| format!("cannot read the saved primary key of {table}"))?;
    let (mut jobs, attach) = match row {
        Some(row) => (vec![row.get::<_, String>(0)], row.get(1)),
        None => (Vec::new(), String::new()),
    };
    jobs.extend(
        index_statements()
            .into_iter()
            .filter(|(t, _)| t == table)
            .map(|(_, statement)| statement),
    );
    Ok((jobs, attach))
}

/// A table's keys and indexes, then its statistics, on one connection.
pub(super) async fn index_table(client: &Client, table: &str) -> anyhow::Result<()> {
    let (jobs, attach) = table_jobs(client, table).await?;
    take_jobs(client, &RefCell::new(VecDeque::from(jobs))).await?;
    finish_table(client, table, &attach).await
}

/// Runs statements from `jobs` until it is empty. sql/indexes.sql names its tables unqualified:
/// they run with search_path = reviews_load.
pub(super) async fn take_jobs(
    client: &Client,
    jobs: &RefCell<VecDeque<String>>,
) -> anyhow::Result<()> {
    loop {
        let Some(statement) = jobs.borrow_mut().pop_front() else {
            return Ok(());
        };
        // Three queries, not one string: Citus sends a DDL statement's text to the nodes.
        client
            .batch_execute("SET search_path = reviews_load")
            .await?;
        client
            .batch_execute(&statement)
            .await
            .with_context(|| format!("cannot build an index: {statement}"))?;
        client.batch_execute("RESET search_path").await?;
    }
}

/// The primary key back on its index, then statistics before the swap rather than after: the
/// tables go live with them, so the first queries get good plans. COPY FREEZE already made every
/// page all-visible; VACUUM is cheap on such pages and guarantees the visibility map.
pub(super) async fn finish_table(client: &Client, table: &str, attach: &str) -> anyhow::Result<()> {
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
pub(super) fn index_statements() -> Vec<(String, String)> {
    db::script::statements(db::sql::INDEXES)
        .into_iter()
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
pub(super) async fn swap(client: &mut Client) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        let tx = client.transaction().await?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            .await?;
        let result = match db::run_each(&tx, &[sql::SWAP]).await {
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
