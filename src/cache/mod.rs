//! Finished response bodies of hot product ids, in memory, never stale after a write.
//!
//! Invalidation without scanning: every key carries the generation of its product's stripe and
//! the cache-wide epoch, both read BEFORE the database is asked. A write that commits bumps its
//! product's generation, so bodies loaded before the commit are stored under a key no later read
//! asks for; they age out by size and TTL. Losing the LISTEN connection bumps the epoch, which
//! retires every body at once, and until the listener is back nothing new is cached (this
//! instance would not hear other instances' writes).
//!
//! Products share 65,536 generation stripes: a write to one product also retires the bodies of
//! the few products on its stripe, which costs them a miss and never a stale answer.

mod listen;

pub use listen::{spawn_listener, APPLICATION_NAME as LISTENER_APPLICATION_NAME};

use crate::config::CacheSettings;
use crate::db::DbError;
use crate::metrics::CacheMetrics;
use bytes::Bytes;
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const STRIPES: usize = 1 << 16;

/// Which document of which product a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Doc {
    /// A page of the list: its sort by name, the zero-based page and the count.
    List {
        product_id: i32,
        sort: &'static str,
        page: i64,
        count: i32,
    },
    Meta(i32),
}

impl Doc {
    pub fn product_id(&self) -> i32 {
        match self {
            Doc::List { product_id, .. } | Doc::Meta(product_id) => *product_id,
        }
    }
}

/// A load that failed, as every request that waited on it sees it.
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
pub struct LoadError {
    #[source]
    pub cause: Arc<DbError>,
    /// False for the one request that ran the load; true for those that waited on its result.
    /// The cause is worth logging once, by the one that ran it.
    pub shared: bool,
}

impl From<DbError> for LoadError {
    fn from(cause: DbError) -> Self {
        LoadError {
            cause: Arc::new(cause),
            shared: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    epoch: u64,
    generation: u64,
    doc: Doc,
}

pub struct BodyCache {
    bodies: Option<moka::future::Cache<Key, Bytes>>,
    generations: Box<[AtomicU64]>,
    epoch: AtomicU64,
    /// False while this instance cannot hear other instances' writes.
    listening: AtomicBool,
    metrics: CacheMetrics,
}

impl BodyCache {
    pub fn new(settings: &CacheSettings, metrics: CacheMetrics) -> BodyCache {
        let bodies = settings.enabled.then(|| {
            moka::future::Cache::builder()
                .max_capacity(settings.max_bytes)
                .weigher(|_key: &Key, body: &Bytes| {
                    let weight = body.len() + std::mem::size_of::<Key>();
                    u32::try_from(weight).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(settings.ttl_secs))
                .build()
        });
        BodyCache {
            bodies,
            generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn enabled(&self) -> bool {
        self.bodies.is_some()
    }

    /// The body of `doc`: from memory, or from `load` (once for all concurrent misses of the
    /// same key). Errors are not cached.
    pub async fn get_or_load<F, Fut>(&self, doc: Doc, load: F) -> Result<Bytes, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, DbError>>,
    {
        let Some(bodies) = &self.bodies else {
            return Ok(load().await?);
        };
        if !self.listening.load(Ordering::Acquire) {
            self.metrics.misses.inc();
            return Ok(load().await?);
        }
        let key = Key {
            epoch: self.epoch.load(Ordering::Acquire),
            generation: self.stripe(doc.product_id()).load(Ordering::Acquire),
            doc,
        };
        if let Some(body) = bodies.get(&key).await {
            self.metrics.hits.inc();
            return Ok(body);
        }
        self.metrics.misses.inc();
        let ran = Cell::new(false);
        bodies
            .try_get_with(key, async {
                ran.set(true);
                load().await
            })
            .await
            .map_err(|cause| LoadError {
                cause,
                shared: !ran.get(),
            })
    }

    /// Called after a write to `product_id` has committed (here, or anywhere via NOTIFY).
    pub fn invalidate_product(&self, product_id: i32) {
        self.stripe(product_id).fetch_add(1, Ordering::AcqRel);
    }

    /// Retires every body: used when notifications may have been missed.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(bodies) = &self.bodies {
            bodies.invalidate_all();
        }
    }

    fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    pub fn entries(&self) -> u64 {
        self.bodies.as_ref().map_or(0, |b| b.entry_count())
    }

    pub fn weighted_bytes(&self) -> u64 {
        self.bodies.as_ref().map_or(0, |b| b.weighted_size())
    }

    fn stripe(&self, product_id: i32) -> &AtomicU64 {
        &self.generations[product_id as u32 as usize % STRIPES]
    }
}
