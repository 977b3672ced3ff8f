//! What the handlers use: [`Shared`], built once in `startup` and shared by every HTTP worker
//! behind one `Arc`, and each worker's own read lanes ([`AppState`]).

use super::representation::{self, Accepts, Keep, GZIP_CACHED_MIN, GZIP_UNCACHED_MIN};
use super::token::Token;
use crate::cache::Doc;
use crate::coherence::Coherence;
use crate::config::Settings;
use crate::db::{self, DbError};
use crate::error::ApiError;
use crate::metrics::Metrics;
use actix_web::HttpResponse;
use bytes::Bytes;
use deadpool_postgres::Pool;
use flate2::Compression;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// What every worker shares.
pub struct Shared {
    /// The primary's pool, as /metrics reports it.
    pub pool: Pool,
    /// Every worker's read lanes, on the primary and on each replica; each worker takes its share
    /// ([`Shared::for_worker`]).
    pub reads: db::Reads,
    /// No lanes: each write borrows a connection of its own.
    pub writes: db::Connections,
    pub coherence: Arc<Coherence>,
    pub metrics: Arc<Metrics>,
    pub timeout: Duration,
    /// Unset until `startup` has reached the database and applied the schema: until then every
    /// route that needs the database answers 503.
    topology: OnceLock<db::Topology>,
    /// The constant body of GET /bench/constant (None unless server.bench_routes).
    pub bench_body: Option<Bytes>,
    /// /metrics is served on its own address (server.metrics_listen), not the API's.
    pub metrics_apart: bool,
    /// How long shared caches may keep a read's answer (see `representation`).
    shared_max_age: u32,
    /// Read lanes per worker, and how many workers took their share so far.
    read_lanes: usize,
    workers_started: AtomicUsize,
}

/// One HTTP worker's state: the shared part, and read lanes of its own, whose connections are
/// opened by (and so run on the thread of) that worker.
pub struct AppState {
    pub shared: Arc<Shared>,
    reads: db::Reads,
}

impl Shared {
    /// `reads`: every worker's lanes, `read_lanes` of them per worker.
    pub fn new(
        pool: Pool,
        reads: db::Reads,
        read_lanes: usize,
        coherence: Arc<Coherence>,
        metrics: Arc<Metrics>,
        settings: &Settings,
    ) -> Shared {
        Shared {
            writes: db::Connections::new(pool.clone(), 0, 0, metrics.db.clone()),
            pool,
            reads,
            read_lanes,
            coherence,
            metrics,
            timeout: settings.database.timeout(),
            topology: OnceLock::new(),
            bench_body: settings
                .server
                .bench_routes
                .then(|| Bytes::from(vec![b' '; super::bench::MAX_BYTES])),
            metrics_apart: !settings.server.metrics_listen.is_empty(),
            shared_max_age: settings.server.shared_max_age_secs.max(1),
            workers_started: AtomicUsize::new(0),
        }
    }

    /// The state of one more worker.
    pub fn for_worker(self: &Arc<Self>) -> AppState {
        let worker = self.workers_started.fetch_add(1, Ordering::Relaxed);
        AppState {
            shared: self.clone(),
            reads: self.reads.for_worker(worker, self.read_lanes),
        }
    }

    /// Called by `startup` once the database answers and the schema is applied: from now on
    /// every route serves.
    pub fn serve(&self, topology: db::Topology) {
        let _ = self.topology.set(topology);
    }

    /// The database's topology once it is ready; Err(503) until then.
    pub fn ready(&self) -> Result<db::Topology, ApiError> {
        self.topology.get().copied().ok_or(DbError::Starting.into())
    }
}

impl AppState {
    /// Called once a write to `product_id` has committed, before it is acknowledged: from now on
    /// no read of this instance answers from before it. Returns the write's position for its
    /// consistency token: where the primary's WAL stood after the commit (u64::MAX when that
    /// could not be read: a read with the token then goes to the primary), or 0 when no read
    /// goes to a replica.
    pub(super) async fn wrote(&self, product_id: i32) -> u64 {
        let shared = &self.shared;
        if !shared.coherence.needs_wal_position() {
            shared.coherence.wrote(product_id, None);
            return 0;
        }
        let lsn = db::query_opt(&shared.writes, shared.timeout, &db::sql::WAL_POSITION, &[])
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get::<_, String>(0).ok())
            .as_deref()
            .and_then(db::parse_lsn);
        shared.coherence.wrote(product_id, lsn);
        lsn.unwrap_or(u64::MAX)
    }

    /// A read document: from the cache, or from its one statement; as the client accepts it
    /// (`representation`). A consistency token for its product (the client's own write) skips
    /// the cache and asks for at least its position.
    pub(super) async fn document(
        &self,
        doc: Doc,
        (token, accepts): (&Token, &Accepts),
        statement: &db::Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<HttpResponse, ApiError> {
        let shared = &self.shared;
        shared.ready()?;
        let own_write = token.position(doc.product_id());
        // A body that may enter the cache is compressed once, well; one for this client alone
        // only when it takes gzip and is big enough, fast.
        let compress = match shared.coherence.cache().enabled() {
            true => Some((Compression::default(), GZIP_CACHED_MIN)),
            false => accepts
                .gzip
                .then_some((Compression::fast(), GZIP_UNCACHED_MIN)),
        };
        let load = || async {
            // Read after the cache version (see coherence): a replica older than a write never
            // fills the version that follows the write.
            let required = shared
                .coherence
                .required_position(doc.product_id())
                .map(|required| required.max(own_write.unwrap_or(0)));
            let text = self
                .reads
                .fetch_text(required, shared.timeout, statement, params)
                .await?;
            Ok(representation::body(Bytes::from(text), compress))
        };
        let (body, keep) = match own_write {
            None => (
                shared.coherence.document(doc, load).await?,
                Keep::Shared(shared.shared_max_age),
            ),
            Some(_) => (
                shared.coherence.fresh_document(doc, load).await?,
                Keep::Private,
            ),
        };
        Ok(representation::respond(&body, accepts, &keep))
    }

    /// This worker's reads of the primary (health).
    pub(super) fn primary(&self) -> &db::Connections {
        &self.reads.primary
    }
}
