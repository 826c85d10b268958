//! Client quotas as Kafka's `ClientQuotaManager` and `ClientRequestQuotaManager` enforce
//! them: byte rates per user and client id (`producer_byte_rate`, `consumer_byte_rate`) and
//! the share of request-handling time (`request_percentage`), measured over a sliding
//! window of `quota.window.num` samples of `quota.window.size.seconds`, answered with
//! `throttle_time_ms` and a muted connection (KIP-219) instead of an error; and the
//! per-IP `connection_creation_rate` quotas (KIP-612) the accept loop applies.
//!
//! * **Which quota applies** to a request from user U with client id C: the first entity
//!   with a value for the key, in Kafka's order — `(U, C)`, `(U, <default>)`, `U`,
//!   `(<default>, C)`, `(<default>, <default>)`, `<default>` user, `C`, `<default>` client.
//! * **Whose usage counts** against it: the entity's bucket. A quota of a named entity is
//!   shared by every connection it matches; a default stands for each user (or client
//!   id) separately, so its bucket is that user's (or client id's) own.
//! * **The throttle**: with the measured rate `r` above the quota `q`, the time for the
//!   window's average to come back to `q`: `(r - q) / q * window` (Kafka's
//!   `QuotaUtils.throttleTime`). Byte-rate throttles are not capped; request-time throttles
//!   are capped at one sample, `quota.window.size.seconds` (Kafka's
//!   `ClientRequestQuotaManager.maxThrottleTimeMs`), as are connection-rate ones.
//! * **Request time** is Kafka's unit: percent of one thread, `nanoseconds × 100 / 10⁹`
//!   per second of window, so `request_percentage=50` allows half a thread's time. Kafka
//!   counts a request's time on its request handler thread and on its network thread.
//!   Here a request has no thread of its own: what counts is the time the request's
//!   handler actually runs (the sum of its polls — waiting for replication, a long-poll
//!   fetch or a rebalance is not counted, as Kafka's purgatory time is not) plus decoding
//!   the request, and encoding its response is counted afterwards without throttling
//!   (Kafka's network-thread time). A response is never delayed: its `throttle_time_ms`
//!   tells the client to wait and the connection reads nothing more until then. A fetch
//!   throttled for either quota is answered empty, and where a byte rate and the request
//!   time both throttle, the longer throttle applies (Kafka's `KafkaApis`).
//! * **Exempt** from request quotas, as in Kafka: requests served while a connection
//!   authenticates or re-authenticates (SASL), `acks=0` produce requests, replica fetches
//!   and WriteTxnMarkers (inter-broker, Kafka's cluster actions).
//! * **Nothing is measured** while no entity has a value for a key: the hot path then
//!   pays one atomic load for request quotas.
//!
//! The quotas live in the metadata store (DescribeClientQuotas / AlterClientQuotas,
//! `kafka-configs --entity-type users|clients|ips`); each broker keeps them in memory,
//! replaced after its own changes and at every etcd sync, as the ACLs are.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rivulet_metadata::{QuotaEntity, QuotaName, QuotaValues};
use rivulet_protocol::RequestKind;

/// Kafka's quota keys for users and client ids.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// Kafka's quota key for IP entities: new connections per second from one address.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The keys AlterClientQuotas accepts for user and client-id entities.
pub const USER_CLIENT_KEYS: &[&str] =
    &[PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE, CONTROLLER_MUTATION_RATE];

/// The keys AlterClientQuotas accepts for IP entities.
pub const IP_KEYS: &[&str] = &[CONNECTION_CREATION_RATE];

/// Kafka's `ClientRequestQuotaManager.NanosToPercentagePerSecond`.
const NANOS_TO_PERCENTAGE: f64 = 100.0 / 1e9;

/// The quotas enforced per user and client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    Produce,
    Fetch,
    /// Request-handling time (`request_percentage`).
    Request,
}

impl QuotaType {
    fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => PRODUCER_BYTE_RATE,
            QuotaType::Fetch => CONSUMER_BYTE_RATE,
            QuotaType::Request => REQUEST_PERCENTAGE,
        }
    }

    /// Kafka's `QuotaType` name, as the metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            QuotaType::Produce => "Produce",
            QuotaType::Fetch => "Fetch",
            QuotaType::Request => "Request",
        }
    }
}

/// The sliding window: `quota.window.num` samples of `quota.window.size.seconds`.
#[derive(Debug, Clone, Copy)]
pub struct QuotaWindow {
    pub samples: u32,
    pub sample: Duration,
}

/// One bucket's usage, as Kafka's `Rate` over a `SampledStat`: a ring of samples, each
/// covering one sample period from its start.
#[derive(Debug)]
pub(crate) struct Rate {
    /// (start, bytes) of each sample, oldest first.
    samples: std::collections::VecDeque<(Instant, f64)>,
}

impl Rate {
    pub(crate) fn new() -> Self {
        Rate { samples: std::collections::VecDeque::new() }
    }

    /// Adds `bytes` (a negative amount takes back what was recorded, as Kafka's
    /// `sensor.record(-1.0, time, false)`).
    pub(crate) fn record(&mut self, window: QuotaWindow, bytes: f64, now: Instant) {
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

    /// Whether every sample has left the window (the bucket can be forgotten).
    pub(crate) fn is_idle(&mut self, window: QuotaWindow, now: Instant) -> bool {
        self.purge(window, now);
        self.samples.is_empty()
    }

    /// Units per second over the window, and the window's span.
    pub(crate) fn measure(&mut self, window: QuotaWindow, now: Instant) -> (f64, Duration) {
        self.purge(window, now);
        let total: f64 = self.samples.iter().map(|(_, b)| b).sum();
        let size = self.window_size(window, now);
        (total / size.as_secs_f64().max(f64::MIN_POSITIVE), size)
    }
}

/// The `connection_creation_rate` of IP entities, by address (parsed, so `::1` and
/// `0:0:0:0:0:0:0:1` are one), and of the default IP entity.
#[derive(Debug, Default)]
struct IpRates {
    named: HashMap<IpAddr, f64>,
    default: Option<f64>,
}

/// Every quota and every bucket's usage.
#[derive(Debug)]
pub struct QuotaManager {
    window: QuotaWindow,
    quotas: RwLock<Arc<HashMap<QuotaEntity, QuotaValues>>>,
    /// Whether any user or client-id entity has a `request_percentage`: read by every
    /// request, so one atomic load is all an unquota'd broker pays.
    request_quotas: AtomicBool,
    ip_rates: RwLock<Arc<IpRates>>,
    usage: Mutex<HashMap<(QuotaType, QuotaEntity), Rate>>,
}

impl QuotaManager {
    pub fn new(window: QuotaWindow) -> Self {
        QuotaManager {
            window,
            quotas: RwLock::new(Arc::new(HashMap::new())),
            request_quotas: AtomicBool::new(false),
            ip_rates: RwLock::new(Arc::new(IpRates::default())),
            usage: Mutex::new(HashMap::new()),
        }
    }

    /// The longest a request-time or connection-rate throttle lasts: one sample (Kafka's
    /// `maxThrottleTimeMs`, `quota.window.size.seconds`).
    pub fn max_throttle(&self) -> Duration {
        self.window.sample
    }

    pub fn window(&self) -> QuotaWindow {
        self.window
    }

    /// Replaces the quotas (the store's copy, read after a change).
    pub fn replace_quotas(&self, quotas: Vec<(QuotaEntity, QuotaValues)>) {
        let quotas: HashMap<QuotaEntity, QuotaValues> = quotas.into_iter().collect();
        let mut current = self.quotas.write().unwrap_or_else(|p| p.into_inner());
        if **current != quotas {
            tracing::info!(entities = quotas.len(), "client quotas changed");
            let request_quotas =
                quotas.iter().any(|(entity, values)| entity.ip.is_none() && values.contains_key(REQUEST_PERCENTAGE));
            let mut ip_rates = IpRates::default();
            for (entity, values) in
                quotas.iter().filter(|(entity, _)| entity.user.is_none() && entity.client_id.is_none())
            {
                let (Some(ip), Some(rate)) = (&entity.ip, values.get(CONNECTION_CREATION_RATE)) else { continue };
                match ip {
                    QuotaName::Default => ip_rates.default = Some(*rate),
                    // AlterClientQuotas stores only addresses that parse.
                    QuotaName::Named(name) => match name.parse::<IpAddr>() {
                        Ok(address) => {
                            ip_rates.named.insert(address, *rate);
                        }
                        Err(_) => {
                            tracing::warn!(ip = %name, "ignoring the quota of an IP entity that is no IP address")
                        }
                    },
                }
            }
            *self.ip_rates.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ip_rates);
            self.request_quotas.store(request_quotas, Ordering::Relaxed);
            *current = Arc::new(quotas);
        }
    }

    /// Whether any `request_percentage` is set: requests are timed only then.
    pub fn request_quotas_enabled(&self) -> bool {
        self.request_quotas.load(Ordering::Relaxed)
    }

    /// The `connection_creation_rate` for connections from `ip`: its own entity's, else the
    /// default IP entity's, else none (unlimited), as Kafka's `connectionRateForIp`.
    pub fn ip_connection_rate(&self, ip: IpAddr) -> Option<f64> {
        let rates = self.ip_rates.read().unwrap_or_else(|p| p.into_inner());
        rates.named.get(&ip).copied().or(rates.default)
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
            let value = quotas.get(&QuotaEntity { user, client_id, ip: None })?.get(key)?;
            Some((*value, QuotaEntity { user: bucket_user, client_id: bucket_client, ip: None }))
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

    /// Records `busy` of request-handling time for a request of `user` / `client_id` and
    /// returns how long the client must wait: Kafka's `ClientRequestQuotaManager`, the
    /// throttle capped at one sample. Zero when no request quota applies or it is kept.
    pub fn record_request(&self, user: &str, client_id: &str, busy: Duration) -> Duration {
        if !self.request_quotas_enabled() {
            return Duration::ZERO;
        }
        let Some((quota, bucket)) = self.resolve(REQUEST_PERCENTAGE, user, client_id) else { return Duration::ZERO };
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let rate = usage.entry((QuotaType::Request, bucket)).or_insert_with(Rate::new);
        rate.record(self.window, percentage(busy), now);
        let (measured, window_size) = rate.measure(self.window, now);
        throttle(measured, quota, window_size).min(self.max_throttle())
    }

    /// Records request-handling time that throttles nothing itself (Kafka's network-thread
    /// time, `recordNoThrottle`): the time to encode a response, counted once it is sent.
    pub fn record_request_unthrottled(&self, user: &str, client_id: &str, busy: Duration) {
        if !self.request_quotas_enabled() {
            return;
        }
        let Some((_, bucket)) = self.resolve(REQUEST_PERCENTAGE, user, client_id) else { return };
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.entry((QuotaType::Request, bucket)).or_insert_with(Rate::new).record(
            self.window,
            percentage(busy),
            Instant::now(),
        );
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

/// Request-handling time in Kafka's unit: percent of one thread for one second.
fn percentage(busy: Duration) -> f64 {
    busy.as_nanos() as f64 * NANOS_TO_PERCENTAGE
}

/// Whether a request is exempt from request quotas, as Kafka's `KafkaApis` answers it with
/// `sendResponseExemptThrottle` / `sendNoOpResponseExemptThrottle`: replica fetches and
/// WriteTxnMarkers (inter-broker) and `acks=0` produce requests, which have no response to
/// carry a throttle. (Requests on a connection still authenticating never reach here.)
pub fn exempt_from_request_quota(body: &RequestKind, version: i16) -> bool {
    match body {
        RequestKind::WriteTxnMarkers(_) => true,
        RequestKind::Fetch(fetch) => crate::handlers::follower_id(fetch, version).is_some(),
        RequestKind::Produce(produce) => produce.acks == 0,
        _ => false,
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

/// Kafka's `QuotaUtils.boundedThrottleTime`: [`throttle`] capped at `max`. A quota of zero
/// (`max.connection.creation.rate=0`) throttles every recording for `max`.
pub(crate) fn bounded_throttle(measured: f64, quota: f64, window_size: Duration, max: Duration) -> Duration {
    if quota <= 0.0 {
        return if measured > 0.0 { max } else { Duration::ZERO };
    }
    throttle(measured, quota, window_size).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: QuotaWindow = QuotaWindow { samples: 11, sample: Duration::from_secs(1) };

    fn entity(user: Option<&str>, client: Option<&str>) -> QuotaEntity {
        let name = |n: &str| if n == "<default>" { QuotaName::Default } else { QuotaName::Named(n.to_string()) };
        QuotaEntity { user: user.map(name), client_id: client.map(name), ip: None }
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

    fn with_values(quotas: &[(QuotaEntity, &str, f64)]) -> QuotaManager {
        let m = QuotaManager::new(WINDOW);
        m.replace_quotas(
            quotas.iter().map(|(e, k, v)| (e.clone(), [(k.to_string(), *v)].into_iter().collect())).collect(),
        );
        m
    }

    #[test]
    fn request_time_is_recorded_in_percent_of_a_thread_and_its_throttle_capped_at_one_sample() {
        let m = with_values(&[(entity(None, Some("app")), REQUEST_PERCENTAGE, 50.0)]);
        assert!(m.request_quotas_enabled());
        // 5 s of handler time over the minimum 10 s window: half a thread, within 50 %.
        assert_eq!(m.record_request("u", "app", Duration::from_secs(5)), Duration::ZERO);
        // 0.2 s more: 52 %, so (52 - 50) / 50 of the 10 s window.
        let wait = m.record_request("u", "app", Duration::from_millis(200));
        assert!(wait >= Duration::from_millis(390) && wait <= Duration::from_millis(410), "{wait:?}");
        // Far over: Kafka's formula says 10 s, request quotas wait at most one sample.
        assert_eq!(m.record_request("u", "app", Duration::from_secs(5)), WINDOW.sample);
        // Encoding time counts without throttling by itself, and other client ids are free.
        m.record_request_unthrottled("u", "app", Duration::from_secs(1));
        assert_eq!(m.record_request("u", "other", Duration::from_secs(100)), Duration::ZERO);
        // Byte rates are separate buckets.
        assert_eq!(m.record(QuotaType::Produce, "u", "app", 1_000_000), Duration::ZERO);
    }

    #[test]
    fn requests_are_timed_only_while_a_request_percentage_is_set() {
        let bytes_only = manager(&[(entity(None, Some("app")), 1_000.0)]);
        assert!(!bytes_only.is_empty());
        assert!(!bytes_only.request_quotas_enabled());
        assert_eq!(bytes_only.record_request("u", "app", Duration::from_secs(100)), Duration::ZERO);
        let ip_only = with_values(&[(
            QuotaEntity { ip: Some(QuotaName::Default), ..QuotaEntity::default() },
            CONNECTION_CREATION_RATE,
            5.0,
        )]);
        assert!(!ip_only.request_quotas_enabled());
        let users = with_values(&[(entity(Some("<default>"), None), REQUEST_PERCENTAGE, 1.0)]);
        assert!(users.request_quotas_enabled());
        assert!(users.record_request("bob", "any", Duration::from_secs(1)) > Duration::ZERO);
        users.replace_quotas(Vec::new());
        assert!(!users.request_quotas_enabled());
    }

    #[test]
    fn replica_fetches_txn_markers_and_acks_0_produce_are_exempt() {
        use rivulet_protocol::kafka_protocol::messages::fetch_request::ReplicaState;
        use rivulet_protocol::kafka_protocol::messages::{
            BrokerId, FetchRequest, MetadataRequest, ProduceRequest, WriteTxnMarkersRequest,
        };
        let exempt = exempt_from_request_quota;
        assert!(exempt(&RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default()), 1));
        let replica = FetchRequest::default().with_replica_id(BrokerId(2));
        assert!(exempt(&RequestKind::Fetch(replica), 12));
        let replica = FetchRequest::default().with_replica_state(ReplicaState::default().with_replica_id(BrokerId(2)));
        assert!(exempt(&RequestKind::Fetch(replica), 15));
        let consumer = FetchRequest::default().with_replica_id(BrokerId(-1));
        assert!(!exempt(&RequestKind::Fetch(consumer), 12));
        assert!(exempt(&RequestKind::Produce(ProduceRequest::default().with_acks(0)), 9));
        assert!(!exempt(&RequestKind::Produce(ProduceRequest::default().with_acks(-1)), 9));
        assert!(!exempt(&RequestKind::Metadata(MetadataRequest::default()), 12));
    }

    #[test]
    fn an_address_has_its_own_rate_else_the_default_ip_rate() {
        let ip = |name: &str| QuotaEntity {
            ip: Some(if name == "<default>" { QuotaName::Default } else { QuotaName::Named(name.to_string()) }),
            ..QuotaEntity::default()
        };
        let m = with_values(&[
            (ip("127.0.0.1"), CONNECTION_CREATION_RATE, 2.0),
            (ip("0:0:0:0:0:0:0:1"), CONNECTION_CREATION_RATE, 3.0),
        ]);
        assert_eq!(m.ip_connection_rate("127.0.0.1".parse().unwrap()), Some(2.0));
        assert_eq!(m.ip_connection_rate("::1".parse().unwrap()), Some(3.0));
        assert_eq!(m.ip_connection_rate("127.0.0.2".parse().unwrap()), None);
        let m = with_values(&[(ip("<default>"), CONNECTION_CREATION_RATE, 7.0)]);
        assert_eq!(m.ip_connection_rate("127.0.0.2".parse().unwrap()), Some(7.0));
        assert_eq!(bounded_throttle(1.0, 0.0, Duration::from_secs(10), Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(
            bounded_throttle(30.0, 2.0, Duration::from_secs(10), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            bounded_throttle(2.2, 2.0, Duration::from_secs(1), Duration::from_secs(1)),
            Duration::from_millis(100)
        );
    }
}
