//! Hearing other instances' writes: each write NOTIFYs `reviews_changed` with its product id (in
//! the write's own transaction, so it is delivered at commit); every instance LISTENs on one
//! dedicated connection and hands each product to [`Coherence`].
//!
//! NOTIFY is never replayed: while the connection is down this instance may miss writes, so
//! coherence is told (`deaf`: nothing cached, every read from the primary), and once it listens
//! again everything from before is retired.

use super::Coherence;
use crate::db;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};

pub const CHANNEL: &str = "reviews_changed";
/// How the listening connection shows in pg_stat_activity (operators and tests find it by this).
pub const APPLICATION_NAME: &str = "reviews-api-listener";
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Listens for as long as the process runs, reconnecting by itself; not at all when nothing
/// needs to hear other instances' writes (no cache, no replicas).
pub fn spawn_listener(coherence: Arc<Coherence>, url: String, timeout: Duration) {
    if !coherence.needs_listener() {
        return;
    }
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let e = match listen(&coherence, &url, timeout).await {
                Ok(never) => match never {},
                Err(e) => e,
            };
            if coherence.is_listening() {
                // It was up: a fresh failure, so retry quickly again.
                backoff = Duration::from_millis(100);
            }
            log::warn!("cache listener: {e:#}; retrying in {backoff:?}");
            coherence.deaf();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// One connection's life: returns why it ended.
async fn listen(
    coherence: &Coherence,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<std::convert::Infallible> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(timeout);
    config.application_name(APPLICATION_NAME);
    // Keepalives notice a silently dead peer, which would otherwise look like a quiet channel.
    config.keepalives_idle(Duration::from_secs(5));
    config.keepalives_interval(Duration::from_secs(1));
    config.keepalives_retries(3);
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    log::warn!("cache listener connection lost: {e}");
                    break;
                }
            }
        }
    });
    let needs_position = coherence.needs_wal_position();
    let position = || async {
        match needs_position {
            true => wal_position(&client, timeout).await,
            false => Ok(0),
        }
    };
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Anything written before LISTEN took effect was not heard: start from nothing.
    coherence.listening_from(position().await?);
    log::info!("cache listener: listening on {CHANNEL}");
    // A silent connection looks like a quiet channel: ask the server something every second,
    // so a frozen server or a black-holed path is noticed within `timeout` + 1 s rather than
    // after the kernel's keepalive gives up minutes later.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let failure: anyhow::Error = loop {
        tokio::select! {
            payload = rx.recv() => {
                let Some(payload) = payload else {
                    break anyhow::anyhow!("connection closed");
                };
                // Every notification already here committed before the position read next.
                let mut payloads = vec![payload];
                while let Ok(more) = rx.try_recv() {
                    payloads.push(more);
                }
                let lsn = match position().await {
                    Ok(lsn) => lsn,
                    Err(e) => break e,
                };
                for payload in payloads {
                    match payload.parse::<i32>() {
                        Ok(product_id) => coherence.heard(product_id, lsn),
                        // A load (sql/load/swap.sql): every product changed.
                        Err(_) => coherence.everything_changed(lsn),
                    }
                }
            },
            _ = heartbeat.tick() => {
                match tokio::time::timeout(timeout, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => break e.into(),
                    Err(_) => break anyhow::anyhow!("server silent for {timeout:?}"),
                }
            }
        }
    };
    driver.abort();
    Err(failure)
}

/// The primary's WAL position, at or past every commit whose notification has arrived.
async fn wal_position(client: &tokio_postgres::Client, timeout: Duration) -> anyhow::Result<u64> {
    let row = tokio::time::timeout(timeout, client.query_one(db::sql::WAL_POSITION.sql, &[]))
        .await
        .map_err(|_| anyhow::anyhow!("server silent for {timeout:?}"))??;
    let text: String = row.try_get(0)?;
    db::parse_lsn(&text).ok_or_else(|| anyhow::anyhow!("unreadable WAL position {text:?}"))
}
