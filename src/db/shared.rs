//! Where a statement gets its connection: reads share a few of the pool's connections (lanes)
//! instead of taking one each; writes, with no lanes, borrow one of their own.
//!
//! A read is one statement that takes no lock, so many can be in flight on one connection:
//! tokio-postgres pipelines them (each with its own Sync, so a failing read never touches
//! another), PostgreSQL's backend finds the next statement already in its socket buffer instead
//! of sleeping and being woken for each, and both ends make one system call for many messages.
//! On two cores those wake-ups, not the index scans, were most of the time of a read:
//! bench/results/2026-11-28-*.md measures both ways.
//!
//! Each HTTP worker reads through lanes of its own (`AppState::for_worker`), so a lane's
//! connection task runs on the thread of the requests that use it and no answer crosses threads;
//! only when the pool cannot open a connection does a read borrow another worker's lane.
//!
//! Writes keep a connection to themselves: a write can wait for a row lock, and every read queued
//! behind it on a shared connection would wait with it.

use crate::metrics::DbMetrics;
use deadpool_postgres::{Object, Pool, PoolError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

type Lane = Mutex<Option<Arc<Object>>>;

pub struct Connections {
    pool: Pool,
    /// The lanes of every worker. Each holds a pool object that reads share, or nothing until
    /// the next read opens one.
    lanes: Arc<[Lane]>,
    /// This worker's own lanes. Empty: every statement borrows a connection of its own.
    mine: std::ops::Range<usize>,
    next: AtomicUsize,
    pub(super) metrics: DbMetrics,
}

impl Connections {
    /// `workers` × `per_worker` lanes, shared out by [`Connections::for_worker`]; 0 lanes: each
    /// statement borrows a connection of its own (writes).
    pub fn new(pool: Pool, workers: usize, per_worker: usize, metrics: DbMetrics) -> Connections {
        Connections {
            pool,
            lanes: (0..workers * per_worker)
                .map(|_| Mutex::new(None))
                .collect(),
            mine: 0..0,
            next: AtomicUsize::new(0),
            metrics,
        }
    }

    /// The `worker`-th worker's share of the lanes (wrapping around past the last).
    pub fn for_worker(&self, worker: usize, per_worker: usize) -> Connections {
        let workers = self.lanes.len() / per_worker.max(1);
        let start = if workers == 0 {
            0
        } else {
            worker % workers * per_worker
        };
        Connections {
            pool: self.pool.clone(),
            lanes: self.lanes.clone(),
            mine: start..(start + per_worker).min(self.lanes.len()),
            next: AtomicUsize::new(0),
            metrics: self.metrics.clone(),
        }
    }

    /// A connection to run one statement on.
    pub async fn client(&self) -> Result<Arc<Object>, PoolError> {
        if self.mine.is_empty() {
            return Ok(Arc::new(self.pool.get().await?));
        }
        let index = self.mine.start + self.next.fetch_add(1, Ordering::Relaxed) % self.mine.len();
        let lane = &self.lanes[index];
        if let Some(client) = lane.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            if !client.is_closed() {
                return Ok(client.clone());
            }
        }
        // Two reads may both find the lane empty; the object stored last stays, the other goes
        // back to the pool when its read is done. When the pool cannot give a connection (the
        // database refuses new ones, or every one is busy), any worker's live lane serves.
        let client = match self.pool.get().await {
            Ok(object) => Arc::new(object),
            Err(e) => return self.any_live().ok_or(e),
        };
        *lane.lock().unwrap_or_else(PoisonError::into_inner) = Some(client.clone());
        Ok(client)
    }

    fn any_live(&self) -> Option<Arc<Object>> {
        self.lanes.iter().find_map(|lane| {
            let lane = lane.lock().unwrap_or_else(PoisonError::into_inner);
            lane.as_ref().filter(|c| !c.is_closed()).cloned()
        })
    }

    /// Called when a statement on `client` got no answer in time: the connection may be hung, so
    /// it leaves its lane, and the last statement to let go of it closes it instead of giving it
    /// back to the pool (whose recycling only notices connections that are already closed).
    pub fn retire(&self, client: Arc<Object>) {
        for lane in self.lanes.iter() {
            let mut lane = lane.lock().unwrap_or_else(PoisonError::into_inner);
            if lane.as_ref().is_some_and(|c| Arc::ptr_eq(c, &client)) {
                *lane = None;
            }
        }
        if let Some(object) = Arc::into_inner(client) {
            drop(Object::take(object));
        }
    }
}
