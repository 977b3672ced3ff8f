//! What the handlers share: the pool, each worker's read lanes, the cache, the counters.

use super::bench;
use crate::cache::{BodyCache, Doc};
use crate::config::Settings;
use crate::db;
use crate::error::ApiError;
use crate::metrics::Metrics;
use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::HttpResponse;
use bytes::Bytes;
use deadpool_postgres::Pool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// What the handlers of one HTTP worker use: everything but `reads` is shared by all workers,
/// built once in `startup`; see [`AppState::for_worker`].
pub struct AppState {
    pub pool: Pool,
    /// This worker's read lanes, on the primary and on each replica.
    pub reads: db::Reads,
    /// No lanes: each write borrows a connection of its own.
    pub writes: db::Connections,
    read_lanes: usize,
    /// How many workers took their state (see `for_worker`).
    workers_started: AtomicUsize,
    pub timeout: Duration,
    pub cache: Arc<BodyCache>,
    /// None without replicas: then every read is from the primary and a write need not know
    /// where the WAL stands.
    pub freshness: Option<Arc<db::Freshness>>,
    pub metrics: Arc<Metrics>,
    /// The constant body of GET /bench/constant (None unless server.bench_routes).
    pub bench_body: Option<Bytes>,
}

impl AppState {
    /// The state the workers' states are made from. `read_lanes`: per worker, see
    /// [`crate::config::DatabaseSettings::read_lanes_per_worker`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: Pool,
        replicas: Vec<(Arc<db::Replica>, Pool)>,
        freshness: Option<Arc<db::Freshness>>,
        cache: Arc<BodyCache>,
        metrics: Arc<Metrics>,
        settings: &Settings,
        workers: usize,
        read_lanes: usize,
    ) -> AppState {
        let lanes = |pool: &Pool| {
            db::Connections::new(pool.clone(), workers, read_lanes, metrics.db.clone())
        };
        AppState {
            reads: db::Reads::new(
                lanes(&pool),
                replicas
                    .iter()
                    .map(|(r, p)| (r.clone(), lanes(p)))
                    .collect(),
                freshness.clone().unwrap_or_default(),
            ),
            writes: db::Connections::new(pool.clone(), 0, 0, metrics.db.clone()),
            read_lanes,
            workers_started: AtomicUsize::new(0),
            pool,
            timeout: settings.database.timeout(),
            cache,
            freshness,
            metrics,
            bench_body: settings
                .server
                .bench_routes
                .then(|| Bytes::from(vec![b' '; bench::MAX_BYTES])),
        }
    }

    /// The state of one more worker: the same pool, cache and counters, and read lanes of its
    /// own, whose connections are opened by (and so run on the thread of) that worker.
    pub fn for_worker(&self) -> AppState {
        let worker = self.workers_started.fetch_add(1, Ordering::Relaxed);
        AppState {
            pool: self.pool.clone(),
            reads: self.reads.for_worker(worker, self.read_lanes),
            writes: db::Connections::new(self.pool.clone(), 0, 0, self.metrics.db.clone()),
            read_lanes: self.read_lanes,
            workers_started: AtomicUsize::new(0),
            timeout: self.timeout,
            cache: self.cache.clone(),
            freshness: self.freshness.clone(),
            metrics: self.metrics.clone(),
            bench_body: self.bench_body.clone(),
        }
    }

    /// Called once a write to `product_id` has committed, before it is acknowledged: from now on
    /// no read of this instance answers from before it (a replica must have replayed it, and no
    /// body cached before it is served).
    pub(super) async fn wrote(&self, product_id: i32) {
        if let Some(freshness) = &self.freshness {
            let lsn = db::query_opt(&self.writes, self.timeout, &db::sql::WAL_POSITION, &[])
                .await
                .ok()
                .flatten()
                .and_then(|row| row.try_get::<_, String>(0).ok())
                .as_deref()
                .and_then(db::parse_lsn);
            // Unknown: the write is done and must be acknowledged, so this product's stripe
            // reads from the primary from now on rather than risk a replica from before it.
            freshness.wrote(product_id, lsn.unwrap_or(u64::MAX));
        }
        self.cache.invalidate_product(product_id);
    }

    /// A read document: from the cache, or from its one statement.
    pub(super) async fn document(
        &self,
        doc: Doc,
        statement: &db::Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<HttpResponse, ApiError> {
        let body = self
            .cache
            .get_or_load(doc, || async {
                self.reads
                    .fetch_text(doc.product_id(), self.timeout, statement, params)
                    .await
                    .map(Bytes::from)
            })
            .await?;
        Ok(HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
            .body(body))
    }
}
