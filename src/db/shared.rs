//! Reads share a few of the pool's connections instead of taking one each.
//!
//! A read is one statement that takes no lock, so many can be in flight on one connection:
//! tokio-postgres pipelines them (each with its own Sync, so a failing read never touches
//! another), PostgreSQL's backend finds the next statement already in its socket buffer instead
//! of sleeping and being woken for each, and both ends make one system call for many messages.
//! On two cores those wake-ups, not the index scans, were most of the time of a read:
//! bench/results/2026-11-28-*.md measures both ways.
//!
//! Each HTTP worker has its own `SharedReads` (see `startup`), so a lane's connection task runs
//! on the thread of the requests that use it and no answer crosses threads.
//!
//! Writes keep a connection to themselves: a write can wait for a row lock, and every read queued
//! behind it on a shared connection would wait with it.

use deadpool_postgres::{Object, Pool, PoolError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub struct SharedReads {
    pool: Pool,
    /// Each holds a pool object that reads share, or nothing until the next read opens one.
    /// No lanes: every read borrows a connection of its own, as writes do.
    lanes: Box<[Mutex<Option<Arc<Object>>>]>,
    next: AtomicUsize,
}

impl SharedReads {
    pub fn new(pool: Pool, lanes: usize) -> SharedReads {
        SharedReads {
            pool,
            lanes: (0..lanes).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A connection to run one read on.
    pub async fn client(&self) -> Result<Arc<Object>, PoolError> {
        if self.lanes.is_empty() {
            return Ok(Arc::new(self.pool.get().await?));
        }
        let lane = &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()];
        if let Some(client) = lane.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            if !client.is_closed() {
                return Ok(client.clone());
            }
        }
        // Two reads may both find the lane empty; the object stored last stays, the other goes
        // back to the pool when its read is done.
        let client = Arc::new(self.pool.get().await?);
        *lane.lock().unwrap_or_else(PoisonError::into_inner) = Some(client.clone());
        Ok(client)
    }

    /// Called when a read on `client` got no answer in time: the connection may be hung, so it
    /// leaves its lane, and the last read to let go of it closes it instead of giving it back to
    /// the pool (whose recycling only notices connections that are already closed).
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
