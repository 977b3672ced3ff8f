//! Reads from streaming replicas that never go back in time.
//!
//! A replica replays the primary's WAL some time after the primary wrote it (`recovery_min_apply_delay`
//! makes that seconds on purpose). A read may go to a replica only when the replica has replayed
//! the position that `crate::coherence` requires of the product (every write to it this instance
//! knows of); the caller passes that position in.
//!
//! Each replica's replayed position is polled every [`POLL`]. A read goes to a replica that is up
//! and has replayed the required position, else to the primary. A replica that fails a read is
//! marked down until its poller reaches it again, and that read is retried on the primary, so a
//! replica that stops costs reads nothing but their first failure's time.

use super::{fetch_text, sql, Connections, DbError, Statement};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

/// How often each replica's replayed position is read.
pub const POLL: Duration = Duration::from_millis(50);

/// `X/Y` (pg_lsn's text form) as one number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// One replica as every worker sees it: where its replay stands, and whether it answers.
pub struct Replica {
    /// Host, port and database, without the user or password, for logs.
    pub name: String,
    replayed: AtomicU64,
    up: AtomicBool,
}

impl Replica {
    pub fn new(url: &str) -> Replica {
        Replica {
            name: super::url::describe(url),
            replayed: AtomicU64::new(0),
            up: AtomicBool::new(false),
        }
    }

    fn serves(&self, required: u64) -> bool {
        self.up.load(Ordering::Acquire) && self.replayed.load(Ordering::Acquire) >= required
    }

    fn mark_down(&self, why: &DbError) {
        if self.up.swap(false, Ordering::AcqRel) {
            log::warn!(
                "replica {} skipped until it answers again: {why}",
                self.name
            );
        }
    }

    /// Reads the replica's replayed position every [`POLL`] for as long as the process runs,
    /// reconnecting by itself.
    pub fn spawn_poller(self: &Arc<Self>, url: String, timeout: Duration) {
        let replica = self.clone();
        tokio::spawn(async move {
            loop {
                let e = replica.poll(&url, timeout).await;
                if replica.up.swap(false, Ordering::AcqRel) {
                    log::warn!("replica {} down: {e:#}", replica.name);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    async fn poll(&self, url: &str, timeout: Duration) -> anyhow::Error {
        let connect = async {
            let mut config: tokio_postgres::Config = url.parse()?;
            config.connect_timeout(timeout);
            config.application_name("reviews-api-replica-poller");
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            anyhow::Ok(client)
        };
        let client = match connect.await {
            Ok(client) => client,
            Err(e) => return e,
        };
        let mut every = tokio::time::interval(POLL);
        loop {
            every.tick().await;
            let answer =
                tokio::time::timeout(timeout, client.query_one(sql::WAL_POSITION.sql, &[])).await;
            let lsn = match answer {
                Ok(Ok(row)) => row
                    .try_get::<_, Option<String>>(0)
                    .ok()
                    .flatten()
                    .as_deref()
                    .and_then(parse_lsn),
                Ok(Err(e)) => return e.into(),
                Err(_) => return anyhow::anyhow!("no answer within {timeout:?}"),
            };
            if let Some(lsn) = lsn {
                self.replayed.fetch_max(lsn, Ordering::AcqRel);
                if !self.up.swap(true, Ordering::AcqRel) {
                    log::info!("replica {} serving reads", self.name);
                }
            }
        }
    }
}

/// Where one worker's reads go: the primary's read lanes, and each replica's.
pub struct Reads {
    pub primary: Connections,
    replicas: Vec<(Arc<Replica>, Connections)>,
    next: AtomicUsize,
}

impl Reads {
    pub fn new(primary: Connections, replicas: Vec<(Arc<Replica>, Connections)>) -> Reads {
        Reads {
            primary,
            replicas,
            next: AtomicUsize::new(0),
        }
    }

    /// The same reads for worker `worker` (see [`Connections::for_worker`]).
    pub fn for_worker(&self, worker: usize, per_worker: usize) -> Reads {
        Reads::new(
            self.primary.for_worker(worker, per_worker),
            self.replicas
                .iter()
                .map(|(r, c)| (r.clone(), c.for_worker(worker, per_worker)))
                .collect(),
        )
    }

    /// A read document: from a replica that has replayed primary WAL position `required`, else
    /// (no replica has, or None: only the primary may answer) from the primary.
    pub async fn fetch_text(
        &self,
        required: Option<u64>,
        timeout: Duration,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<String, DbError> {
        if !self.replicas.is_empty() {
            if let Some(required) = required {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let n = self.replicas.len();
                for i in 0..n {
                    let (replica, connections) = &self.replicas[(start + i) % n];
                    if !replica.serves(required) {
                        continue;
                    }
                    match fetch_text(connections, timeout, statement, params).await {
                        Err(e) if e.is_unavailable() => replica.mark_down(&e),
                        answer => return answer,
                    }
                }
            }
        }
        fetch_text(&self.primary, timeout, statement, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_order_as_the_wal_does() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    #[test]
    fn a_replica_serves_only_what_it_has_replayed() {
        let r = Replica::new("postgres://u:secret@127.0.0.1:5999/db");
        assert!(!r.name.contains("secret"));
        assert!(!r.serves(0), "down until its poller reached it");
        r.up.store(true, Ordering::Release);
        r.replayed.store(300, Ordering::Release);
        assert!(r.serves(300));
        assert!(!r.serves(301));
        r.mark_down(&DbError::Timeout);
        assert!(!r.serves(0));
    }
}
