//! Finished response bodies of hot product ids, in memory (moka). A body is stored under its
//! document and the [`Version`] of its product that `crate::coherence` gave the read, so this
//! module never decides what is stale: it only stores, finds and weighs bodies. A body is kept
//! with its gzip form and its entity tag, made once as it enters (`http::representation`), so a
//! hit never compresses or hashes.

use crate::coherence::Version;
use crate::config::CacheSettings;
use crate::db::DbError;
use crate::metrics::CacheMetrics;
use bytes::Bytes;
use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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

/// A finished document: its bytes, their gzip form when worth having, and the hash of the bytes
/// that its entity tags are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub plain: Bytes,
    pub gzip: Option<Bytes>,
    pub tag: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub version: Version,
    pub doc: Doc,
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

pub struct BodyCache {
    bodies: Option<moka::future::Cache<Key, Body>>,
    metrics: CacheMetrics,
}

impl BodyCache {
    pub fn new(settings: &CacheSettings, metrics: CacheMetrics) -> BodyCache {
        let bodies = settings.enabled.then(|| {
            moka::future::Cache::builder()
                .max_capacity(settings.max_bytes)
                .weigher(|_key: &Key, body: &Body| {
                    let gzip = body.gzip.as_ref().map_or(0, Bytes::len);
                    let weight = body.plain.len() + gzip + std::mem::size_of::<(Key, Body)>();
                    u32::try_from(weight).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(settings.ttl_secs))
                .build()
        });
        BodyCache { bodies, metrics }
    }

    pub fn enabled(&self) -> bool {
        self.bodies.is_some()
    }

    /// The body of `key`: from memory, or from `load` (once for all concurrent misses of the
    /// same key). Errors are not cached.
    pub async fn get_or_load<F, Fut>(&self, key: Key, load: F) -> Result<Body, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Body, DbError>>,
    {
        let Some(bodies) = &self.bodies else {
            return Ok(load().await?);
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

    /// `load`, neither looked up nor kept (counted as a miss when the cache is on).
    pub async fn bypass<F, Fut>(&self, load: F) -> Result<Body, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Body, DbError>>,
    {
        if self.enabled() {
            self.metrics.misses.inc();
        }
        Ok(load().await?)
    }

    /// Keeps `body` under `key` (a body just read anew).
    pub async fn insert(&self, key: Key, body: Body) {
        if let Some(bodies) = &self.bodies {
            bodies.insert(key, body).await;
        }
    }

    /// Frees every body now (their keys are already unreachable once the epoch moved).
    pub fn clear(&self) {
        if let Some(bodies) = &self.bodies {
            bodies.invalidate_all();
        }
    }

    pub fn entries(&self) -> u64 {
        self.bodies.as_ref().map_or(0, |b| b.entry_count())
    }

    pub fn weighted_bytes(&self) -> u64 {
        self.bodies.as_ref().map_or(0, |b| b.weighted_size())
    }
}
