//! Coherence across instances: each write NOTIFYs `reviews_changed` with its product id (in the
//! write's own transaction, so it is delivered at commit); every instance LISTENs on one
//! dedicated connection and retires that product's bodies.
//!
//! NOTIFY is never replayed: while the connection is down this instance misses writes, so it
//! stops caching, and once it listens again it retires every body before caching resumes.

use super::BodyCache;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};

pub const CHANNEL: &str = "reviews_changed";
/// How the listening connection shows in pg_stat_activity (operators and tests find it by this).
pub const APPLICATION_NAME: &str = "reviews-api-listener";
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Listens for as long as the process runs, reconnecting by itself.
pub fn spawn_listener(cache: Arc<BodyCache>, url: String, timeout: Duration) {
    if !cache.enabled() {
        return;
    }
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let e = listen(&cache, &url, timeout).await;
            if cache.is_listening() {
                // It was up: a fresh failure, so retry quickly again.
                backoff = Duration::from_millis(100);
            }
            log::warn!("cache listener: {e:#}; retrying in {backoff:?}");
            cache.set_listening(false);
            cache.invalidate_all();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// One connection's life: returns why it ended.
async fn listen(cache: &BodyCache, url: &str, timeout: Duration) -> anyhow::Error {
    match listen_once(cache, url, timeout).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn listen_once(
    cache: &BodyCache,
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
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Anything written before LISTEN took effect was not heard: start from nothing.
    cache.invalidate_all();
    cache.set_listening(true);
    log::info!("cache listener: listening on {CHANNEL}");
    // A silent connection looks like a quiet channel: ask the server something every second,
    // so a frozen server or a black-holed path is noticed within `timeout` + 1 s rather than
    // after the kernel's keepalive gives up minutes later.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let failure: anyhow::Error = loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(payload) => match payload.parse::<i32>() {
                    Ok(product_id) => cache.invalidate_product(product_id),
                    Err(_) => cache.invalidate_all(),
                },
                None => break anyhow::anyhow!("connection closed"),
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
