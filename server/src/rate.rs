//! The node's upload cap (`etch serve --max-upload-rate`): every byte the node sends on the
//! peer protocol, on all connections together, is paced to at most the configured rate.
//! Providers cap their bandwidth; a fetch from several capped nodes then adds their rates
//! (`acquire::complete_tree` asks them all at once).

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Bytes sent in one paced step: a large frame goes out in slices, so connections share the
/// rate rather than wait behind one frame.
pub const PACE_SLICE_BYTES: usize = 64 * 1024;

/// A node-wide rate: the time the next byte may be sent.
#[derive(Debug)]
pub struct UploadRate {
    bytes_per_sec: f64,
    next: Mutex<Instant>,
}

impl UploadRate {
    /// A cap of `bytes_per_sec` (more than zero).
    pub fn new(bytes_per_sec: u64) -> UploadRate {
        UploadRate {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            next: Mutex::new(Instant::now()),
        }
    }

    /// The cap in bytes per second.
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec as u64
    }

    /// Waits for the turn of `bytes` to be sent: the sends of all callers, one after the
    /// other, take no less time than their bytes at the rate.
    pub async fn pace(&self, bytes: usize) {
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_take_their_bytes_at_the_rate() {
        let rate = std::sync::Arc::new(UploadRate::new(1_000_000));
        let t = Instant::now();
        let mut senders = Vec::new();
        for _ in 0..4 {
            let r = rate.clone();
            senders.push(tokio::spawn(async move {
                for _ in 0..5 {
                    r.pace(10_000).await;
                }
            }));
        }
        for s in senders {
            s.await.unwrap();
        }
        // 20 sends of 10 kB at 1 MB/s: the last starts 190 ms after the first.
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(190), "{took:?}");
    }
}
