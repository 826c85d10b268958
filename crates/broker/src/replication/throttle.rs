//! A bound on replication traffic in bytes per second, shared by every partition it covers
//! (Kafka's `ReplicationQuotaManager`): while a reassignment copies a partition to a new
//! replica, the copying must not starve producers and in-sync followers.
//!
//! A token bucket holding at most one second of traffic: a fetch may take it below zero
//! (a whole batch is never split), and the partitions it covers get nothing more until it
//! has refilled, so over time the traffic keeps to the rate.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct ReplicationThrottle {
    /// When the bucket was last refilled, and what it held then.
    bucket: Mutex<(Instant, f64)>,
}

impl Default for ReplicationThrottle {
    fn default() -> Self {
        Self { bucket: Mutex::new((Instant::now(), 0.0)) }
    }
}

impl ReplicationThrottle {
    /// Refills for the time since the last look at `rate` bytes per second; returns what
    /// the bucket holds.
    fn refill(&self, rate: i64) -> std::sync::MutexGuard<'_, (Instant, f64)> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let rate = rate as f64;
        bucket.1 = (bucket.1 + now.duration_since(bucket.0).as_secs_f64() * rate).min(rate);
        bucket.0 = now;
        bucket
    }

    /// Whether covered partitions may be served now at `rate` (`i64::MAX`: no limit).
    pub fn allows(&self, rate: i64) -> bool {
        rate == i64::MAX || self.refill(rate).1 > 0.0
    }

    /// Counts `bytes` sent (or fetched) for covered partitions.
    pub fn record(&self, rate: i64, bytes: usize) {
        if rate != i64::MAX {
            self.refill(rate).1 -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_past_the_rate_waits_for_the_bucket_to_refill() {
        let throttle = ReplicationThrottle::default();
        assert!(throttle.allows(i64::MAX));
        // Empty at first, full after a moment (at most one second's worth).
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(throttle.allows(1_000_000));
        throttle.record(1_000_000, 5_000_000);
        assert!(!throttle.allows(1_000_000));
        // Without a limit nothing is counted.
        throttle.record(i64::MAX, usize::MAX);
        assert!(throttle.allows(i64::MAX));
    }
}
