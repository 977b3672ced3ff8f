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
    /// This worker's read lanes.
    pub reads: db::Connections,
    /// No lanes: each write borrows a connection of its own.
    pub writes: db::Connections,
    read_lanes: usize,
    /// How many workers took their state (see `for_worker`).
    workers_started: AtomicUsize,
    pub timeout: Duration,
    pub cache: Arc<BodyCache>,
    pub metrics: Arc<Metrics>,
    /// The constant body of GET /bench/constant (None unless server.bench_routes).
    pub bench_body: Option<Bytes>,
}

impl AppState {
    /// The state the workers' states are made from. `read_lanes`: per worker, see
    /// [`crate::config::DatabaseSettings::read_lanes_per_worker`].
    pub fn new(
        pool: Pool,
        cache: Arc<BodyCache>,
        metrics: Arc<Metrics>,
        settings: &Settings,
        workers: usize,
        read_lanes: usize,
    ) -> AppState {
        AppState {
            reads: db::Connections::new(pool.clone(), workers, read_lanes, metrics.db.clone()),
            writes: db::Connections::new(pool.clone(), 0, 0, metrics.db.clone()),
            read_lanes,
            workers_started: AtomicUsize::new(0),
            pool,
            timeout: settings.database.timeout(),
            cache,
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
            metrics: self.metrics.clone(),
            bench_body: self.bench_body.clone(),
        }
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
                db::fetch_text(&self.reads, self.timeout, statement, params)
                    .await
                    .map(Bytes::from)
            })
            .await?;
        Ok(HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
            .body(body))
    }
}
