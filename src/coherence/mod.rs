//! Coherence: what a write changes, for every instance. The one place that knows it.
//!
//! A committed write to product P (made here, or heard from another instance by NOTIFY) does two
//! things, both here:
//!
//! - **The body cache** ([`crate::cache`]) no longer serves P's bodies from before it. Each body is
//!   cached under a [`Version`]: the generation of P's stripe and the cache-wide epoch, read BEFORE
//!   the database is asked. A write bumps the generation, so a body loaded before its commit is
//!   stored under a key no later read asks for (it ages out by size and TTL). Missing writes (the
//!   LISTEN connection lost: NOTIFY is never replayed) bumps the epoch, which retires every body at
//!   once, and nothing is cached until the listener is back.
//! - **The replica watermark** ([`Watermark`], with read replicas only): the primary's WAL position
//!   at or past the write's commit, recorded for P, so that P's reads go to a replica only once it
//!   has replayed that far (`db::Reads`).
//!
//! Products share [`STRIPES`] stripes: a write to one also retires the bodies of the few products
//! on its stripe and sends them to the primary until the replicas catch up, which costs a miss or
//! a primary read and never a stale answer.

pub mod listen;

use crate::cache::{Body, BodyCache, Doc, Key, LoadError};
use crate::db::DbError;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use listen::{spawn_listener, APPLICATION_NAME as LISTENER_APPLICATION_NAME};

/// How many stripes products share (both the cache's generations and the replicas' watermark).
pub const STRIPES: usize = 1 << 16;

fn stripe(product_id: i32) -> usize {
    product_id as u32 as usize % STRIPES
}

fn counters() -> Box<[AtomicU64]> {
    (0..STRIPES).map(|_| AtomicU64::new(0)).collect()
}

/// Which version of a product's bodies a read may be answered with (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    epoch: u64,
    generation: u64,
}

pub struct Coherence {
    cache: BodyCache,
    generations: Box<[AtomicU64]>,
    epoch: AtomicU64,
    /// False while this instance cannot hear other instances' writes.
    listening: AtomicBool,
    /// Only with read replicas.
    watermark: Option<Watermark>,
}

impl Coherence {
    pub fn new(cache: BodyCache, replicas: bool) -> Coherence {
        Coherence {
            cache,
            generations: counters(),
            epoch: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            watermark: replicas.then(Watermark::default),
        }
    }

    /// Whether anything needs to hear other instances' writes (a cache, or replicas to route).
    pub fn needs_listener(&self) -> bool {
        self.cache.enabled() || self.watermark.is_some()
    }

    /// Whether a write must tell [`Coherence::wrote`] where the WAL stands after its commit.
    pub fn needs_wal_position(&self) -> bool {
        self.watermark.is_some()
    }

    /// The body of `doc`: from the cache when it holds the current version, else from `load`
    /// (once for all concurrent misses). Nothing is cached while this instance may miss writes.
    pub async fn document<F, Fut>(&self, doc: Doc, load: F) -> Result<Body, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Body, DbError>>,
    {
        match self.version(doc) {
            Some(version) => self.cache.get_or_load(Key { version, doc }, load).await,
            None => self.cache.bypass(load).await,
        }
    }

    /// The body of `doc` read anew (not from the cache), then cached for the reads that follow:
    /// for a client that must see its own write, which this instance may not have heard of yet.
    pub async fn fresh_document<F, Fut>(&self, doc: Doc, load: F) -> Result<Body, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Body, DbError>>,
    {
        let version = self.version(doc);
        let body = self.cache.bypass(load).await?;
        if let Some(version) = version {
            self.cache.insert(Key { version, doc }, body.clone()).await;
        }
        Ok(body)
    }

    /// The version a read of `doc` starts from; None while this instance may miss writes.
    fn version(&self, doc: Doc) -> Option<Version> {
        self.is_listening().then(|| Version {
            epoch: self.epoch.load(Ordering::Acquire),
            generation: self.generations[stripe(doc.product_id())].load(Ordering::Acquire),
        })
    }

    /// The primary WAL position a replica must have replayed to serve `product_id`; None: only
    /// the primary may serve it (no replicas, or writes may be going unheard).
    pub fn required_position(&self, product_id: i32) -> Option<u64> {
        let watermark = self.watermark.as_ref()?;
        if !self.is_listening() {
            return None;
        }
        Some(watermark.required(product_id))
    }

    /// A write of this instance to `product_id` has committed, at or before WAL position `lsn`
    /// (None: unknown, so the product's stripe reads from the primary from now on). Called before
    /// the write is acknowledged: no read of this instance answers from before it.
    pub fn wrote(&self, product_id: i32, lsn: Option<u64>) {
        self.changed(product_id, lsn.unwrap_or(u64::MAX));
    }

    /// Another instance's write (by NOTIFY), committed at or before primary position `lsn`.
    fn heard(&self, product_id: i32, lsn: u64) {
        self.changed(product_id, lsn);
    }

    fn changed(&self, product_id: i32, lsn: u64) {
        // The watermark first: a read that sees the new generation must also see the new
        // position, or it could cache a replica's body from before the write under it.
        if let Some(watermark) = &self.watermark {
            watermark.raise(product_id, lsn);
        }
        self.generations[stripe(product_id)].fetch_add(1, Ordering::AcqRel);
    }

    /// Every product changed, at or before primary position `lsn` (a load swapped the tables in;
    /// or, from the listener, writes it may not have heard): no replica serves anything until it
    /// has replayed that far, and every body retires.
    fn everything_changed(&self, lsn: u64) {
        if let Some(watermark) = &self.watermark {
            watermark.floor.fetch_max(lsn, Ordering::AcqRel);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    /// The listener hears every write from now on; those before primary position `lsn` (0
    /// without replicas) it did not hear, so they count as changing everything.
    fn listening_from(&self, lsn: u64) {
        self.everything_changed(lsn);
        self.listening.store(true, Ordering::Release);
    }

    /// The listener lost its connection: writes may go unheard until it is back (meanwhile
    /// nothing is cached and every read goes to the primary: see `is_listening`).
    fn deaf(&self) {
        self.listening.store(false, Ordering::Release);
        self.everything_changed(0);
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    pub fn cache(&self) -> &BodyCache {
        &self.cache
    }
}

/// What each product's replica reads must have replayed, in primary WAL positions: the highest
/// position recorded for its stripe, and never less than the floor taken when the listener
/// started hearing writes.
struct Watermark {
    floor: AtomicU64,
    stripes: Box<[AtomicU64]>,
}

impl Default for Watermark {
    fn default() -> Self {
        Watermark {
            floor: AtomicU64::new(0),
            stripes: counters(),
        }
    }
}

impl Watermark {
    fn required(&self, product_id: i32) -> u64 {
        let stripe = self.stripes[stripe(product_id)].load(Ordering::Acquire);
        stripe.max(self.floor.load(Ordering::Acquire))
    }

    fn raise(&self, product_id: i32, lsn: u64) {
        self.stripes[stripe(product_id)].fetch_max(lsn, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::metrics::CacheMetrics;

    fn coherence(replicas: bool) -> Coherence {
        let cache = BodyCache::new(&Settings::defaults().cache, CacheMetrics::default());
        Coherence::new(cache, replicas)
    }

    #[test]
    fn a_product_needs_what_was_written_to_it_and_the_floor() {
        let c = coherence(true);
        assert_eq!(c.required_position(7), None, "not listening: primary only");
        c.listening_from(100);
        assert_eq!(c.required_position(7), Some(100));
        c.heard(7, 250);
        c.heard(7, 200);
        assert_eq!(c.required_position(7), Some(250), "never goes back");
        c.everything_changed(180);
        assert_eq!(c.required_position(9), Some(180), "a load: every product");
        assert_eq!(c.required_position(7), Some(250));
        c.wrote(8, None);
        assert_eq!(c.required_position(8), Some(u64::MAX), "unknown: primary");
        c.deaf();
        assert_eq!(c.required_position(9), None);
    }

    #[test]
    fn without_replicas_there_is_no_position_to_keep() {
        let c = coherence(false);
        c.listening_from(0);
        assert!(!c.needs_wal_position());
        assert_eq!(c.required_position(7), None);
    }

    #[actix_web::test]
    async fn a_write_retires_the_body_read_before_it() {
        let c = coherence(false);
        c.listening_from(0);
        let doc = Doc::Meta(7);
        let load = |text: &'static str| {
            move || async move {
                Ok(Body {
                    plain: bytes::Bytes::from_static(text.as_bytes()),
                    gzip: None,
                    tag: 0,
                })
            }
        };
        assert_eq!(c.document(doc, load("old")).await.unwrap().plain, "old");
        assert_eq!(
            c.document(doc, load("new")).await.unwrap().plain,
            "old",
            "cached"
        );
        c.wrote(7, None);
        assert_eq!(c.document(doc, load("new")).await.unwrap().plain, "new");
        c.heard(7 + STRIPES as i32, 0);
        assert_eq!(
            c.document(doc, load("newer")).await.unwrap().plain,
            "newer",
            "its stripe"
        );
        c.deaf();
        assert_eq!(c.document(doc, load("deaf")).await.unwrap().plain, "deaf");
        assert_eq!(
            c.document(doc, load("still")).await.unwrap().plain,
            "still",
            "not cached"
        );
    }
}
