//! Client quotas as Kafka's `ClientQuotaManager` enforces them: byte rates per user and
//! client id (`producer_byte_rate`, `consumer_byte_rate`), measured over a sliding window
//! of `quota.window.num` samples of `quota.window.size.seconds`, answered with
//! `throttle_time_ms` and a muted connection (KIP-219) instead of an error.
//!
//! * **Which quota applies** to a request from user U with client id C: the first entity
//!   with a value for the key, in Kafka's order — `(U, C)`, `(U, <default>)`, `U`,
//!   `(<default>, C)`, `(<default>, <default>)`, `<default>` user, `C`, `<default>` client.
//! * **Whose bytes count** against it: the entity's bucket. A quota of a named entity is
//!   shared by every connection it matches; a default stands for each user (or client
//!   id) separately, so its bucket is that user's (or client id's) own.
//! * **The throttle**: with the measured rate `r` above the quota `q`, the time for the
//!   window's average to come back to `q`: `(r - q) / q * window` (Kafka's
//!   `QuotaUtils.throttleTime`; byte-rate throttles are not capped).
//!
//! The quotas live in the metadata store (DescribeClientQuotas / AlterClientQuotas,
//! `kafka-configs --entity-type users|clients`); each broker keeps them in memory, replaced
//! after its own changes and at every etcd sync, as the ACLs are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rivulet_metadata::{QuotaEntity, QuotaName, QuotaValues};

/// Kafka's quota keys for users and client ids.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// The keys AlterClientQuotas accepts for user and client-id entities.
pub const USER_CLIENT_KEYS: &[&str] =
    &[PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE, CONTROLLER_MUTATION_RATE];

/// The byte rates enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    Produce,
    Fetch,
}

impl QuotaType {
    fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => PRODUCER_BYTE_RATE,
            QuotaType::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// The sliding window: `quota.window.num` samples of `quota.window.size.seconds`.
#[derive(Debug, Clone, Copy)]
pub struct QuotaWindow {
    pub samples: u32,
    pub sample: Duration,
}

/// One bucket's byte count, as Kafka's `Rate` over a `SampledStat`: a ring of samples,
/// each covering one sample period from its start.
#[derive(Debug)]
struct Rate {
    /// (start, bytes) of each sample, oldest first.
    samples: std::collections::VecDeque<(Instant, f64)>,
}

impl Rate {
    fn new() -> Self {
        Rate { samples: std::collections::VecDeque::new() }
    }

    fn record(&mut self, window: QuotaWindow, bytes: f64, now: Instant) {
        self.purge(window, now);
        match self.samples.back_mut() {
            Some((start, total)) if now.duration_since(*start) < window.sample => *total += bytes,
            _ => {
                if self.samples.len() >= window.samples as usize {
                    self.samples.pop_front();
                }
                self.samples.push_back((now, bytes));
            }
        }
    }

    /// Drops samples that ended more than a whole window ago.
    fn purge(&mut self, window: QuotaWindow, now: Instant) {
        let span = window.sample * window.samples;
        while self.samples.front().is_some_and(|(start, _)| now.duration_since(*start) >= span) {
            self.samples.pop_front();
        }
    }

    /// The span the rate is averaged over: from the oldest sample's start, but never less
    /// than `samples - 1` whole samples (Kafka's `Rate.windowSize`), so a first burst is
    /// not judged over a few milliseconds.
    fn window_size(&self, window: QuotaWindow, now: Instant) -> Duration {
        let elapsed = self.samples.front().map_or(Duration::ZERO, |(start, _)| now.duration_since(*start));
        let minimum = window.sample * window.samples.saturating_sub(1);
        elapsed.max(minimum)
    }

    /// Bytes per second over the window.
    fn measure(&mut self, window: QuotaWindow, now: Instant) -> (f64, Duration) {
        self.purge(window, now);
        let total: f64 = self.samples.iter().map(|(_, b)| b).sum();
        let size = self.window_size(window, now);
        (total / size.as_secs_f64().max(f64::MIN_POSITIVE), size)
    }
}

/// Every quota and every bucket's usage.
#[derive(Debug)]
pub struct QuotaManager {
    window: QuotaWindow,
    quotas: RwLock<Arc<HashMap<QuotaEntity, QuotaValues>>>,
    usage: Mutex<HashMap<(QuotaType, QuotaEntity), Rate>>,
}

impl QuotaManager {
    pub fn new(window: QuotaWindow) -> Self {
        QuotaManager { window, quotas: RwLock::new(Arc::new(HashMap::new())), usage: Mutex::new(HashMap::new()) }
    }

    /// Replaces the quotas (the store's copy, read after a change).
    pub fn replace_quotas(&self, quotas: Vec<(QuotaEntity, QuotaValues)>) {
        let quotas: HashMap<QuotaEntity, QuotaValues> = quotas.into_iter().collect();
        let mut current = self.quotas.write().unwrap_or_else(|p| p.into_inner());
        if **current != quotas {
            tracing::info!(entities = quotas.len(), "client quotas changed");
            *current = Arc::new(quotas);
        }
    }

    /// Every entity with its values, as last loaded.
    pub fn snapshot(&self) -> Arc<HashMap<QuotaEntity, QuotaValues>> {
        self.quotas.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether any quota is set (none: nothing is measured, the hot path stays free).
    pub fn is_empty(&self) -> bool {
        self.quotas.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// The quota for `key` that applies to `user` / `client_id`, and the bucket its bytes
    /// count in.
    fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(f64, QuotaEntity)> {
        let quotas = self.quotas.read().unwrap_or_else(|p| p.into_inner()).clone();
        let named = |s: &str| Some(QuotaName::Named(s.to_string()));
        let default = Some(QuotaName::Default);
        // (entity looked up, bucket its usage is counted in), in Kafka's precedence.
        let order = [
            ((named(user), named(client_id)), (named(user), named(client_id))),
            ((named(user), default.clone()), (named(user), named(client_id))),
            ((named(user), None), (named(user), None)),
            ((default.clone(), named(client_id)), (named(user), named(client_id))),
            ((default.clone(), default.clone()), (named(user), named(client_id))),
            ((default.clone(), None), (named(user), None)),
            ((None, named(client_id)), (None, named(client_id))),
            ((None, default), (None, named(client_id))),
        ];
        order.into_iter().find_map(|((user, client_id), (bucket_user, bucket_client))| {
            let value = quotas.get(&QuotaEntity { user, client_id })?.get(key)?;
            Some((*value, QuotaEntity { user: bucket_user, client_id: bucket_client }))
        })
    }

    /// Records `bytes` of `kind` for a request of `user` / `client_id` and returns how long
    /// the client must wait (zero when no quota applies or it is kept).
    pub fn record(&self, kind: QuotaType, user: &str, client_id: &str, bytes: usize) -> Duration {
        if self.is_empty() {
            return Duration::ZERO;
        }
        let Some((quota, bucket)) = self.resolve(kind.key(), user, client_id) else { return Duration::ZERO };
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let rate = usage.entry((kind, bucket)).or_insert_with(Rate::new);
        rate.record(self.window, bytes as f64, now);
        let (measured, window_size) = rate.measure(self.window, now);
        throttle(measured, quota, window_size)
    }

    /// The most bytes one request may take without exceeding the quota in a fresh window
    /// (Kafka's `getMaxValueInQuotaWindow`: `quota × (samples − 1) × sample`); fetches are
    /// bounded by it so a throttled fetch, answered empty, is not retried forever.
    pub fn max_in_window(&self, kind: QuotaType, user: &str, client_id: &str) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let (quota, _) = self.resolve(kind.key(), user, client_id)?;
        let span = (self.window.sample * self.window.samples.saturating_sub(1)).as_secs_f64();
        Some((quota * span).min(usize::MAX as f64) as usize)
    }

    /// Takes back `bytes` recorded for a request that was then not served (a throttled
    /// fetch is answered without records).
    pub fn unrecord(&self, kind: QuotaType, user: &str, client_id: &str, bytes: usize) {
        let Some((_, bucket)) = self.resolve(kind.key(), user, client_id) else { return };
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, total)) = usage.get_mut(&(kind, bucket)).and_then(|rate| rate.samples.back_mut()) {
            *total = (*total - bytes as f64).max(0.0);
        }
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long until the window's average is back at the
/// quota. (AlterClientQuotas refuses quotas that are not positive.)
fn throttle(measured: f64, quota: f64, window_size: Duration) -> Duration {
    if quota <= 0.0 || measured <= quota {
        return Duration::ZERO;
    }
    let ms = (measured - quota) / quota * window_size.as_millis() as f64;
    Duration::from_millis(ms.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: QuotaWindow = QuotaWindow { samples: 11, sample: Duration::from_secs(1) };

    fn entity(user: Option<&str>, client: Option<&str>) -> QuotaEntity {
        let name = |n: &str| if n == "<default>" { QuotaName::Default } else { QuotaName::Named(n.to_string()) };
        QuotaEntity { user: user.map(name), client_id: client.map(name) }
    }

    fn manager(quotas: &[(QuotaEntity, f64)]) -> QuotaManager {
        let m = QuotaManager::new(WINDOW);
        m.replace_quotas(
            quotas
                .iter()
                .map(|(e, v)| (e.clone(), [(PRODUCER_BYTE_RATE.to_string(), *v)].into_iter().collect()))
                .collect(),
        );
        m
    }

    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let m = manager(&[
            (entity(None, Some("<default>")), 1.0),
            (entity(None, Some("app")), 2.0),
            (entity(Some("<default>"), None), 3.0),
            (entity(Some("alice"), None), 4.0),
            (entity(Some("alice"), Some("app")), 5.0),
        ]);
        let quota = |user: &str, client: &str| m.resolve(PRODUCER_BYTE_RATE, user, client).map(|(q, _)| q);
        assert_eq!(quota("alice", "app"), Some(5.0));
        assert_eq!(quota("alice", "other"), Some(4.0));
        assert_eq!(quota("bob", "app"), Some(3.0), "a default user beats a client id");
        let clients_only = manager(&[(entity(None, Some("<default>")), 1.0), (entity(None, Some("app")), 2.0)]);
        let quota = |client: &str| clients_only.resolve(PRODUCER_BYTE_RATE, "bob", client);
        assert_eq!(quota("app"), Some((2.0, entity(None, Some("app")))));
        // A default client-id quota is each client id's own.
        assert_eq!(quota("other"), Some((1.0, entity(None, Some("other")))));
        assert!(manager(&[]).resolve(PRODUCER_BYTE_RATE, "bob", "app").is_none());
    }

    #[test]
    fn throttle_brings_the_window_average_back_to_the_quota() {
        // Twice the quota over a 10 s window: 10 s more at zero halves the average.
        assert_eq!(throttle(2_000.0, 1_000.0, Duration::from_secs(10)), Duration::from_secs(10));
        assert_eq!(throttle(900.0, 1_000.0, Duration::from_secs(10)), Duration::ZERO);
        // Kafka's worked example: 20 MB in a fresh window against 1 MB/s.
        assert_eq!(throttle(2e6, 1e6, Duration::from_secs(10)), Duration::from_secs(10));
        assert_eq!(
            manager(&[(entity(None, Some("app")), 1e6)]).max_in_window(QuotaType::Produce, "u", "app"),
            Some(10_000_000)
        );
    }

    #[test]
    fn a_burst_is_averaged_over_at_least_the_window_less_one_sample() {
        let m = manager(&[(entity(None, Some("app")), 1_000.0)]);
        // 10,000 bytes at once: 1,000 B/s over the minimum 10 s window, within the quota.
        assert_eq!(m.record(QuotaType::Produce, "u", "app", 10_000), Duration::ZERO);
        // 10,000 more: 2,000 B/s, so 10 s of silence brings it back.
        let wait = m.record(QuotaType::Produce, "u", "app", 10_000);
        assert!(wait >= Duration::from_millis(9_900) && wait <= Duration::from_secs(10), "{wait:?}");
        // Other clients and fetches are not counted against it.
        assert_eq!(m.record(QuotaType::Produce, "u", "other", 1_000_000), Duration::ZERO);
        assert_eq!(m.record(QuotaType::Fetch, "u", "app", 1_000_000), Duration::ZERO);
    }
}
