//! The console's live plots: once a second the sampler reads the broker's own counters
//! (the Prometheus metrics in [`crate::metrics`]) and keeps the rates and mean latencies
//! of the last [`HISTORY`] seconds in a fixed-size ring. The page polls the ring; nothing
//! grows with uptime or traffic.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::metrics::METRICS;

/// How often a sample is taken.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// How many samples are kept: five minutes at one a second.
pub const HISTORY: usize = 300;

/// A bounded FIFO: pushing onto a full ring drops the oldest entry.
#[derive(Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T: Clone> Ring<T> {
    /// A ring holding at most `capacity` (at least one) entries.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { items: VecDeque::with_capacity(capacity), capacity }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
        debug_assert!(self.items.len() <= self.capacity);
    }

    /// The entries, oldest first.
    pub fn to_vec(&self) -> Vec<T> {
        self.items.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The counters a sample is derived from, read at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub bytes_in: u64,
    pub messages_in: u64,
    pub bytes_out: u64,
    pub produce_requests: u64,
    pub fetch_requests: u64,
    /// Sum of the request-time histogram's observations, in seconds.
    pub produce_seconds: f64,
    pub fetch_seconds: f64,
}

impl Counters {
    /// The current values of the broker's metrics.
    pub fn read() -> Self {
        let histogram = |api: &str| {
            let h = METRICS.request_seconds.with_label_values(&[api]);
            (h.get_sample_count(), h.get_sample_sum())
        };
        let (produce_requests, produce_seconds) = histogram("Produce");
        let (fetch_requests, fetch_seconds) = histogram("Fetch");
        Self {
            bytes_in: METRICS.bytes_in.get(),
            messages_in: METRICS.messages_in.get(),
            bytes_out: METRICS.bytes_out.get(),
            produce_requests,
            fetch_requests,
            produce_seconds,
            fetch_seconds,
        }
    }
}

/// One point of every plot: rates per second over the interval that ended at `time_ms`,
/// and the mean time of the requests completed in it (`None` when there were none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Wall-clock milliseconds since the epoch.
    pub time_ms: i64,
    pub produce_bytes_per_s: f64,
    pub produce_records_per_s: f64,
    pub fetch_bytes_per_s: f64,
    pub produce_requests_per_s: f64,
    pub fetch_requests_per_s: f64,
    pub produce_latency_ms: Option<f64>,
    pub fetch_latency_ms: Option<f64>,
}

impl Sample {
    /// The sample between two readings `elapsed` apart. Counters never go backwards; a
    /// smaller later value (which would mean a reset) counts as no change.
    pub fn between(before: &Counters, after: &Counters, elapsed: Duration, time_ms: i64) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
        let mean_ms = |count_a: u64, count_b: u64, sum_a: f64, sum_b: f64| {
            let count = count_b.saturating_sub(count_a);
            (count > 0).then(|| ((sum_b - sum_a).max(0.0) / count as f64) * 1000.0)
        };
        Self {
            time_ms,
            produce_bytes_per_s: rate(before.bytes_in, after.bytes_in),
            produce_records_per_s: rate(before.messages_in, after.messages_in),
            fetch_bytes_per_s: rate(before.bytes_out, after.bytes_out),
            produce_requests_per_s: rate(before.produce_requests, after.produce_requests),
            fetch_requests_per_s: rate(before.fetch_requests, after.fetch_requests),
            produce_latency_ms: mean_ms(
                before.produce_requests,
                after.produce_requests,
                before.produce_seconds,
                after.produce_seconds,
            ),
            fetch_latency_ms: mean_ms(
                before.fetch_requests,
                after.fetch_requests,
                before.fetch_seconds,
                after.fetch_seconds,
            ),
        }
    }
}

/// The samples of the last [`HISTORY`] seconds.
pub struct Samples {
    ring: Mutex<Ring<Sample>>,
}

impl Default for Samples {
    fn default() -> Self {
        Self { ring: Mutex::new(Ring::new(HISTORY)) }
    }
}

impl Samples {
    fn ring(&self) -> MutexGuard<'_, Ring<Sample>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, sample: Sample) {
        self.ring().push(sample);
    }

    /// Every sample kept, oldest first.
    pub fn all(&self) -> Vec<Sample> {
        self.ring().to_vec()
    }

    /// Samples the broker's metrics every [`SAMPLE_INTERVAL`] until the task is dropped.
    pub async fn run(self: std::sync::Arc<Self>) {
        let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        interval.tick().await;
        let mut last = (Counters::read(), Instant::now());
        loop {
            interval.tick().await;
            let now = (Counters::read(), Instant::now());
            let time_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            self.push(Sample::between(&last.0, &now.0, now.1.duration_since(last.1), time_ms));
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_drops_its_oldest_entry() {
        let mut ring = Ring::new(3);
        assert!(ring.is_empty());
        for i in 0..5 {
            ring.push(i);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.to_vec(), [2, 3, 4]);
        // A zero capacity still keeps the latest entry rather than nothing.
        let mut one = Ring::new(0);
        one.push('a');
        one.push('b');
        assert_eq!(one.to_vec(), ['b']);
    }

    #[test]
    fn samples_are_rates_and_mean_latencies_over_the_interval() {
        let before = Counters {
            bytes_in: 1_000,
            messages_in: 10,
            bytes_out: 0,
            produce_requests: 4,
            fetch_requests: 100,
            produce_seconds: 0.5,
            fetch_seconds: 10.0,
        };
        let after = Counters {
            bytes_in: 5_000,
            messages_in: 50,
            bytes_out: 2_000,
            produce_requests: 8,
            fetch_requests: 100,
            produce_seconds: 0.508,
            fetch_seconds: 10.0,
        };
        let s = Sample::between(&before, &after, Duration::from_secs(2), 42);
        assert_eq!(s.time_ms, 42);
        assert_eq!(s.produce_bytes_per_s, 2_000.0);
        assert_eq!(s.produce_records_per_s, 20.0);
        assert_eq!(s.fetch_bytes_per_s, 1_000.0);
        assert_eq!(s.produce_requests_per_s, 2.0);
        assert_eq!(s.fetch_requests_per_s, 0.0);
        // 8 ms over 4 requests.
        let latency = s.produce_latency_ms.unwrap();
        assert!((latency - 2.0).abs() < 1e-9, "{latency}");
        // No fetch completed: no latency, rather than a made-up zero.
        assert_eq!(s.fetch_latency_ms, None);
        // A counter that went backwards is no change, not a huge rate.
        let reset = Sample::between(&after, &before, Duration::from_secs(1), 43);
        assert_eq!(reset.produce_bytes_per_s, 0.0);
        assert_eq!(reset.produce_latency_ms, None);
    }

    #[test]
    fn samples_keep_the_last_five_minutes() {
        let samples = Samples::default();
        for i in 0..(HISTORY as i64 + 10) {
            samples.push(Sample::between(&Counters::default(), &Counters::default(), SAMPLE_INTERVAL, i));
        }
        let all = samples.all();
        assert_eq!(all.len(), HISTORY);
        assert_eq!(all.first().map(|s| s.time_ms), Some(10));
        assert_eq!(all.last().map(|s| s.time_ms), Some(HISTORY as i64 + 9));
    }
}
