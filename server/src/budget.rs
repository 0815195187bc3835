//! The node-wide memory budget (`etch serve --memory-budget`, protocol.md §10): one count of
//! the bytes a node holds for its connections beyond their fixed buffers, namely
//!
//! - replies queued and not yet written (every frame, while it waits for its writer),
//! - large frames being received (from their length prefix until they are handled),
//! - cells acquired to complete an incoming value (until it is merged),
//! - encoded QUERY, LATTICE_QUERY and DATA_REQUEST answers (before they are queued).
//!
//! Large amounts wait for room and give up at a deadline (the caller answers `:LOAD` or closes
//! the connection); small control frames (PING answers, errors) are always counted but never
//! wait, so a node over its budget still answers them. A connection with replies queued is not
//! read while the node is over budget (`conn`), so clients that never read cannot make it
//! queue more: they keep what they hold until the writer's stall timeout closes them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The budget: a limit in bytes and what is taken of it now.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    freed: Notify,
}

/// Bytes taken from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Option<Arc<MemoryBudget>>,
    bytes: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
            freed: Notify::new(),
        })
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes taken now (may exceed the limit by the small frames that never wait).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Whether more is taken than the limit allows.
    pub fn over(&self) -> bool {
        self.used() > self.limit
    }

    /// Counts `bytes` at once, over the limit or not (for what is already in memory, or small).
    pub fn force(self: &Arc<Self>, bytes: usize) -> Held {
        self.used.fetch_add(bytes, Ordering::SeqCst);
        Held {
            budget: Some(self.clone()),
            bytes,
        }
    }

    /// Takes `bytes` if they fit now. Anything fits into an empty budget, so one amount larger
    /// than the whole limit is not refused forever.
    pub fn try_take(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let mut used = self.used();
        loop {
            if used != 0 && used.saturating_add(bytes) > self.limit {
                return None;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Some(Held {
                        budget: Some(self.clone()),
                        bytes,
                    })
                }
                Err(now) => used = now,
            }
        }
    }

    /// Takes `bytes`, waiting for room until `deadline`; `None` when none came in time.
    pub async fn take(self: &Arc<Self>, bytes: usize, deadline: Instant) -> Option<Held> {
        loop {
            let freed = self.freed.notified();
            if let Some(h) = self.try_take(bytes) {
                return Some(h);
            }
            tokio::time::timeout_at(deadline, freed).await.ok()?;
        }
    }

    /// Waits until the budget is not over its limit, or `deadline`; `false` at the deadline.
    pub async fn room(&self, deadline: Instant) -> bool {
        loop {
            let freed = self.freed.notified();
            if !self.over() {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return false;
            }
        }
    }

    /// Resolves at the next release (for waiters that also watch something else).
    pub async fn released(&self) {
        self.freed.notified().await
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::SeqCst);
        self.freed.notify_waiters();
    }
}

impl Held {
    /// Holds nothing (where there is no budget: a client connection).
    pub fn none() -> Held {
        Held {
            budget: None,
            bytes: 0,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Makes this hold exactly `bytes`: gives back what is beyond, or counts what is missing at
    /// once (an estimate taken before an answer was made, set to the answer's size).
    pub fn fit(&mut self, bytes: usize) {
        let Some(b) = &self.budget else {
            return;
        };
        if bytes < self.bytes {
            b.release(self.bytes - bytes);
        } else {
            b.used.fetch_add(bytes - self.bytes, Ordering::SeqCst);
        }
        self.bytes = bytes;
    }

    /// Adds what `other` holds to this (one release for both).
    pub fn absorb(&mut self, mut other: Held) {
        if self.budget.is_none() {
            self.budget = other.budget.take();
        }
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            if self.bytes > 0 {
                b.release(self.bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn takes_waits_and_gives_back() {
        let b = MemoryBudget::new(100);
        let a = b.try_take(60).unwrap();
        assert!(b.try_take(50).is_none());
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(b.take(50, soon).await.is_none());
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.take(50, Instant::now() + Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a);
        let got = waiter.await.unwrap().unwrap();
        assert_eq!((got.bytes(), b.used()), (50, 50));
        // Small frames are counted over the limit; nothing else fits then.
        let f = b.force(80);
        assert!(b.over() && b.try_take(1).is_none());
        drop((f, got));
        assert_eq!(b.used(), 0);
        // An empty budget takes even more than its limit.
        let big = b.try_take(500).unwrap();
        let mut sum = Held::none();
        sum.absorb(b.force(5));
        sum.absorb(b.force(7));
        assert_eq!((sum.bytes(), b.used()), (12, 512));
        drop((big, sum));
        assert_eq!(b.used(), 0);
        // An estimate set to what was made of it.
        let mut est = b.try_take(90).unwrap();
        est.fit(30);
        assert_eq!(b.used(), 30);
        est.fit(40);
        assert_eq!(b.used(), 40);
        drop(est);
        assert_eq!(b.used(), 0);
    }
}
