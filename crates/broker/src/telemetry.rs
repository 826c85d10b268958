//! Client telemetry (KIP-714), as Kafka's `ClientMetricsManager` serves it: client-metrics
//! subscriptions (`CLIENT_METRICS` config resources: `metrics`, `interval.ms`, `match`) tell
//! each client, by GetTelemetrySubscriptions, which of its metrics to push and how often;
//! PushTelemetry delivers them as an OTLP `MetricsData` message. Where Kafka hands the
//! payload to a receiver plugin, Rivulet keeps the latest value of every pushed series and
//! shows it on the Prometheus endpoint, labelled by client instance ([`ClientTelemetry::render`]).
//!
//! Differences from Kafka, each deliberate:
//! - the broker accepts only uncompressed payloads (it offers no compression type, so clients
//!   send none): a decompression bomb could not be bounded by `telemetry.max.bytes`;
//! - cumulative temporality is asked for (`DeltaTemporality` false), the form Prometheus
//!   exposes, so a pushed value is shown as it is instead of being summed;
//! - the APIs are offered only while a Prometheus endpoint exists to show what is pushed
//!   (Kafka offers them only with a receiver plugin).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use regex::Regex;
use rivulet_metadata::ClientMetricsConfigs;
use rivulet_protocol::kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest, PushTelemetryResponse,
};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::ResponseError;
use uuid::Uuid;

use crate::request_context::RequestContext;
use crate::topic_config::AlterError;

/// `interval.ms` when no subscription sets one (Kafka's `DEFAULT_INTERVAL_MS`).
pub const DEFAULT_INTERVAL_MS: i32 = 5 * 60 * 1000;
const MIN_INTERVAL_MS: i32 = 100;
const MAX_INTERVAL_MS: i32 = 3_600_000;
/// Kafka's `telemetry.max.bytes` default: the largest payload a push may carry.
pub const TELEMETRY_MAX_BYTES: i32 = 1024 * 1024;
/// An instance not heard from for this long (or three push intervals, if longer) is
/// forgotten with its series (Kafka's cache expiry).
const CACHE_EXPIRY: Duration = Duration::from_secs(60);
/// At most this many client instances are remembered (Kafka's cache size); the one heard
/// from least recently makes room.
const MAX_INSTANCES: usize = 16_384;
/// At most this many series per client instance are kept from one push.
const MAX_SERIES_PER_INSTANCE: usize = 10_000;
/// `metrics` value subscribing to every metric.
const ALL_METRICS: &str = "*";
/// The config names of a client-metrics resource.
pub const CONFIG_NAMES: [&str; 3] = ["metrics", "interval.ms", "match"];
/// The client attributes a `match` pattern may name.
const MATCH_PARAMS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

/// A Kafka `LIST` config value: comma-separated, trimmed, empty items dropped.
fn list(value: Option<&String>) -> Vec<String> {
    value.map_or_else(Vec::new, |v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
}

/// One client-metrics subscription, parsed.
#[derive(Debug, Clone)]
struct Subscription {
    /// Metric name prefixes (`*` for all); empty subscribes to nothing.
    metrics: Vec<String>,
    interval_ms: i32,
    /// Every pattern must match the whole attribute it names.
    matchers: Vec<(String, Regex)>,
}

/// Checks and parses the configs of subscription `name` as `ClientMetricsConfigs.validate`
/// does: unknown names and out-of-range intervals are INVALID_REQUEST, a bad `match`
/// pattern INVALID_CONFIG.
fn parse_subscription(name: &str, configs: &BTreeMap<String, String>) -> Result<Subscription, AlterError> {
    if name.is_empty() {
        return Err(AlterError::InvalidRequest("Subscription name can't be empty".to_string()));
    }
    if let Some(key) = configs.keys().find(|k| !CONFIG_NAMES.contains(&k.as_str())) {
        return Err(AlterError::InvalidRequest(format!("Unknown client metrics configuration: {key}")));
    }
    let interval_ms = match configs.get("interval.ms") {
        None => DEFAULT_INTERVAL_MS,
        Some(v) => {
            let parsed: i32 = v.trim().parse().map_err(|_| {
                AlterError::InvalidConfig(format!(
                    "Invalid value {v} for configuration interval.ms: Not a number of type INT"
                ))
            })?;
            if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&parsed) {
                return Err(AlterError::InvalidRequest(format!(
                    "Invalid value {parsed} for interval.ms, interval must be between 100 and 3600000 (1 hour)"
                )));
            }
            parsed
        }
    };
    let mut matchers = Vec::new();
    for pattern in list(configs.get("match")) {
        let illegal = || AlterError::InvalidConfig(format!("Illegal client matching pattern: {pattern}"));
        // Kafka splits on every '=' and wants exactly two parts.
        let parts: Vec<&str> = pattern.split('=').collect();
        let [param, value] = parts.as_slice() else { return Err(illegal()) };
        let param = param.trim();
        if !MATCH_PARAMS.contains(&param) {
            return Err(illegal());
        }
        // Java's `Matcher.matches()`: the whole attribute.
        let regex = Regex::new(&format!("^(?:{})$", value.trim())).map_err(|_| illegal())?;
        matchers.push((param.to_string(), regex));
    }
    Ok(Subscription { metrics: list(configs.get("metrics")), interval_ms, matchers })
}

/// Validates client-metrics configs before they are stored (IncrementalAlterConfigs,
/// AlterConfigs).
pub fn validate(name: &str, configs: &BTreeMap<String, String>) -> Result<(), AlterError> {
    parse_subscription(name, configs).map(|_| ())
}

/// What the broker knows about a client from its connection (Kafka's
/// `ClientMetricsInstanceMetadata`).
#[derive(Debug, Clone)]
struct ClientInfo {
    client_id: String,
    software_name: String,
    software_version: String,
    source_address: String,
    source_port: String,
}

impl ClientInfo {
    fn of(ctx: &RequestContext) -> Self {
        ClientInfo {
            client_id: ctx.client_id.to_string(),
            software_name: ctx.client_software_name.to_string(),
            software_version: ctx.client_software_version.to_string(),
            source_address: ctx.peer.ip().to_string(),
            source_port: ctx.peer.port().to_string(),
        }
    }

    fn attribute<'a>(&'a self, id: &'a str, name: &str) -> Option<&'a str> {
        Some(match name {
            "client_instance_id" => id,
            "client_id" => &self.client_id,
            "client_software_name" => &self.software_name,
            "client_software_version" => &self.software_version,
            "client_source_address" => &self.source_address,
            "client_source_port" => &self.source_port,
            _ => return None,
        })
    }
}

/// Prometheus metric type of a pushed metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// One pushed series: its labels (sorted by name) and latest value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    kind: Kind,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A client instance: its evaluated subscription and what it pushed last.
#[derive(Debug)]
struct Instance {
    info: ClientInfo,
    /// The subscriptions version this instance was evaluated against.
    version: u64,
    subscription_id: i32,
    metrics: Vec<String>,
    interval_ms: i32,
    /// Milliseconds since the manager started; 0 = never.
    last_get_ms: u64,
    last_push_ms: u64,
    terminating: bool,
    last_seen: Instant,
    samples: Vec<Sample>,
}

impl Instance {
    /// Kafka's `maybeUpdateGetRequestTimestamp`: a get no sooner than one interval after
    /// the previous get or push.
    fn accept_get(&mut self, now_ms: u64) -> bool {
        let last = self.last_get_ms.max(self.last_push_ms);
        if last == 0 || now_ms.saturating_sub(last) >= self.interval_ms as u64 {
            self.last_get_ms = now_ms;
            return true;
        }
        false
    }

    /// Kafka's `maybeUpdatePushRequestTimestamp`: the first push after a get is always
    /// accepted (clients jitter it), later ones one interval apart.
    fn accept_push(&mut self, now_ms: u64) -> bool {
        let accept = self.last_get_ms > self.last_push_ms
            || self.last_push_ms == 0
            || now_ms.saturating_sub(self.last_push_ms) >= self.interval_ms as u64;
        if accept {
            self.last_push_ms = now_ms;
        }
        accept
    }

    fn expired(&self, now: Instant) -> bool {
        let keep = CACHE_EXPIRY.max(Duration::from_millis(self.interval_ms as u64 * 3));
        now.duration_since(self.last_seen) > keep
    }
}

#[derive(Debug, Default)]
struct State {
    /// Bumped on every change of the subscriptions: instances evaluated against an older
    /// version are evaluated again at their next request.
    version: u64,
    configs: ClientMetricsConfigs,
    subscriptions: Vec<Subscription>,
    instances: HashMap<Uuid, Instance>,
}

/// The broker's client telemetry: subscriptions, client instances and their pushed series.
#[derive(Debug)]
pub struct ClientTelemetry {
    started: Instant,
    state: Mutex<State>,
}

impl Default for ClientTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientTelemetry {
    pub fn new() -> Self {
        ClientTelemetry { started: Instant::now(), state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "never" in an instance's timestamps.
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Replaces the subscriptions with those stored in the metadata store. One that does not
    /// parse (stored by another version, say) is left out and logged.
    pub fn replace_subscriptions(&self, configs: ClientMetricsConfigs) {
        let mut state = self.lock();
        if state.configs == configs {
            return;
        }
        state.subscriptions = configs
            .iter()
            .filter_map(|(name, values)| match parse_subscription(name, values) {
                Ok(subscription) => Some(subscription),
                Err(e) => {
                    tracing::warn!(subscription = %name, error = ?e, "client metrics subscription ignored");
                    None
                }
            })
            .collect();
        state.configs = configs;
        state.version += 1;
    }

    /// The stored configs of every subscription (DescribeConfigs, ListConfigResources).
    pub fn subscriptions(&self) -> ClientMetricsConfigs {
        self.lock().configs.clone()
    }

    /// The instance `id`, created or evaluated again against the current subscriptions
    /// when it is new or they changed (Kafka's `clientInstance`).
    fn instance<'a>(state: &'a mut State, id: Uuid, ctx: &RequestContext, now: Instant) -> &'a mut Instance {
        let State { version, subscriptions, instances, .. } = state;
        let version = *version;
        if !instances.contains_key(&id) && instances.len() >= MAX_INSTANCES {
            if let Some(oldest) = instances.iter().min_by_key(|(_, i)| i.last_seen).map(|(k, _)| *k) {
                instances.remove(&oldest);
            }
        }
        let instance = instances
            .entry(id)
            .or_insert_with(|| evaluated(subscriptions, id, ClientInfo::of(ctx), version, Vec::new(), now));
        if instance.version != version {
            let samples = std::mem::take(&mut instance.samples);
            *instance = evaluated(subscriptions, id, instance.info.clone(), version, samples, now);
        }
        instance.last_seen = now;
        instance
    }

    fn sweep(state: &mut State, now: Instant) {
        state.instances.retain(|_, i| !i.expired(now));
    }

    /// GetTelemetrySubscriptions (key 71).
    pub fn get_subscriptions(
        &self,
        ctx: &RequestContext,
        request: &GetTelemetrySubscriptionsRequest,
    ) -> GetTelemetrySubscriptionsResponse {
        let now = Instant::now();
        let now_ms = self.now_ms();
        let mut state = self.lock();
        Self::sweep(&mut state, now);
        let id = if request.client_instance_id.is_nil() {
            let mut id = Uuid::new_v4();
            while state.instances.contains_key(&id) {
                id = Uuid::new_v4();
            }
            id
        } else {
            request.client_instance_id
        };
        let instance = Self::instance(&mut state, id, ctx, now);
        if !instance.accept_get(now_ms) {
            return GetTelemetrySubscriptionsResponse::default()
                .with_error_code(ResponseError::ThrottlingQuotaExceeded.code());
        }
        GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(id)
            .with_subscription_id(instance.subscription_id)
            .with_requested_metrics(instance.metrics.iter().map(|m| StrBytes::from_string(m.clone())).collect())
            // None offered: clients then push uncompressed (see the module comment).
            .with_accepted_compression_types(Vec::new())
            .with_push_interval_ms(instance.interval_ms)
            .with_telemetry_max_bytes(TELEMETRY_MAX_BYTES)
            .with_delta_temporality(false)
    }

    /// PushTelemetry (key 72), checked in Kafka's order.
    pub fn push(&self, ctx: &RequestContext, request: &PushTelemetryRequest) -> PushTelemetryResponse {
        let error = |e: ResponseError| PushTelemetryResponse::default().with_error_code(e.code());
        let id = request.client_instance_id;
        // Kafka's `Uuid.RESERVED`: the zero id and the metadata topic's id (1).
        if id.is_nil() || id.as_u128() == 1 {
            return error(ResponseError::InvalidRequest);
        }
        let now = Instant::now();
        let now_ms = self.now_ms();
        let mut state = self.lock();
        Self::sweep(&mut state, now);
        let instance = Self::instance(&mut state, id, ctx, now);
        let checked = if instance.terminating {
            Err(ResponseError::InvalidRequest)
        } else if !instance.accept_push(now_ms) && !request.terminating {
            Err(ResponseError::ThrottlingQuotaExceeded)
        } else if request.subscription_id != instance.subscription_id {
            Err(ResponseError::UnknownSubscriptionId)
        } else if request.compression_type != 0 {
            Err(ResponseError::UnsupportedCompressionType)
        } else if request.metrics.len() > TELEMETRY_MAX_BYTES as usize {
            Err(ResponseError::TelemetryTooLarge)
        } else {
            Ok(())
        };
        instance.terminating = request.terminating;
        if let Err(e) = checked {
            tracing::debug!(client_instance_id = %id, error = ?e, "push telemetry refused");
            return error(e);
        }
        if !request.metrics.is_empty() {
            match decode_samples(&request.metrics) {
                Ok(samples) => instance.samples = samples,
                Err(e) => {
                    tracing::warn!(client_instance_id = %id, error = %e, "undecodable telemetry payload");
                    return error(ResponseError::InvalidRecord);
                }
            }
        }
        if request.terminating {
            // The client is closing: nothing more will come from it.
            state.instances.remove(&id);
        }
        PushTelemetryResponse::default()
    }

    /// The Prometheus text exposition of every live instance's latest pushed series, each
    /// labelled with `client_instance_id`, `client_id`, `client_software_name` and
    /// `client_software_version` beside its own attributes.
    pub fn render(&self) -> String {
        let mut state = self.lock();
        Self::sweep(&mut state, Instant::now());
        // name -> (kind, lines)
        let mut families: BTreeMap<String, (Kind, Vec<String>)> = BTreeMap::new();
        for (id, instance) in &state.instances {
            let id = id.to_string();
            let client = [
                ("client_instance_id", id.as_str()),
                ("client_id", instance.info.client_id.as_str()),
                ("client_software_name", instance.info.software_name.as_str()),
                ("client_software_version", instance.info.software_version.as_str()),
            ];
            for sample in &instance.samples {
                let family = families.entry(sample.name.clone()).or_insert_with(|| (sample.kind, Vec::new()));
                let mut line = format!("{}{{", sample.name);
                let own = sample.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let mut first = true;
                for (key, value) in client.iter().copied().chain(own) {
                    if !first {
                        line.push(',');
                    }
                    first = false;
                    let _ = write!(line, "{key}=\"{}\"", escape_label(value));
                }
                let _ = write!(line, "}} {}", format_value(sample.value));
                family.1.push(line);
            }
        }
        let mut out = String::new();
        for (name, (kind, lines)) in families {
            let kind = match kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {name} Pushed by clients (KIP-714 telemetry).");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// A client instance evaluated against `subscriptions` (at subscriptions version
/// `version`), keeping the series it pushed before.
fn evaluated(
    subscriptions: &[Subscription],
    id: Uuid,
    info: ClientInfo,
    version: u64,
    samples: Vec<Sample>,
    now: Instant,
) -> Instance {
    let (metrics, interval_ms) = evaluate(subscriptions, &id.to_string(), &info);
    Instance {
        subscription_id: subscription_id(&metrics, interval_ms, id),
        info,
        version,
        metrics,
        interval_ms,
        last_get_ms: 0,
        last_push_ms: 0,
        terminating: false,
        last_seen: now,
        samples,
    }
}

/// The metrics and interval of a client: the union of the matching subscriptions' metrics
/// (just `*` when one asks for all) and the shortest of their intervals.
fn evaluate(subscriptions: &[Subscription], id: &str, info: &ClientInfo) -> (Vec<String>, i32) {
    let mut metrics: Vec<String> = Vec::new();
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    let mut all = false;
    for subscription in subscriptions {
        let matches = subscription
            .matchers
            .iter()
            .all(|(param, regex)| info.attribute(id, param).is_some_and(|value| regex.is_match(value)));
        if !matches {
            continue;
        }
        all |= subscription.metrics.iter().any(|m| m == ALL_METRICS);
        metrics.extend(subscription.metrics.iter().cloned());
        interval_ms = interval_ms.min(subscription.interval_ms);
    }
    if all {
        metrics = vec![ALL_METRICS.to_string()];
    }
    metrics.sort();
    metrics.dedup();
    (metrics, interval_ms)
}

/// A subscription id that changes with the subscribed metrics and interval and differs
/// between instances, the same on every broker (so a push may go to any of them).
fn subscription_id(metrics: &[String], interval_ms: i32, id: Uuid) -> i32 {
    #[allow(deprecated)] // SipHash with fixed keys: the same value in every process.
    let mut hasher = std::hash::SipHasher::new();
    metrics.hash(&mut hasher);
    interval_ms.hash(&mut hasher);
    id.hash(&mut hasher);
    hasher.finish() as i32
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        value.to_string()
    }
}

/// A Prometheus-safe name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, anything else becoming `_`.
fn prometheus_name(name: &str, allow_colon: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':') { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The subset of OTLP's `opentelemetry.proto.metrics.v1` that Kafka clients push: number
/// gauges and sums with attributes. Other point kinds (histograms, summaries) are skipped.
mod otlp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricsData {
        #[prost(message, repeated, tag = "1")]
        pub resource_metrics: Vec<ResourceMetrics>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceMetrics {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_metrics: Vec<ScopeMetrics>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeMetrics {
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "5")]
        pub gauge: Option<Gauge>,
        #[prost(message, optional, tag = "7")]
        pub sum: Option<Sum>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sum {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
        #[prost(int32, tag = "2")]
        pub aggregation_temporality: i32,
        #[prost(bool, tag = "3")]
        pub is_monotonic: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NumberDataPoint {
        #[prost(message, repeated, tag = "7")]
        pub attributes: Vec<KeyValue>,
        #[prost(fixed64, tag = "3")]
        pub time_unix_nano: u64,
        #[prost(double, optional, tag = "4")]
        pub as_double: Option<f64>,
        #[prost(sfixed64, optional, tag = "6")]
        pub as_int: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `AnyValue`'s scalar members (its arrays and maps are not used by Kafka clients and
    /// are skipped as unknown fields).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(string, optional, tag = "1")]
        pub string_value: Option<String>,
        #[prost(bool, optional, tag = "2")]
        pub bool_value: Option<bool>,
        #[prost(int64, optional, tag = "3")]
        pub int_value: Option<i64>,
        #[prost(double, optional, tag = "4")]
        pub double_value: Option<f64>,
    }

    impl AnyValue {
        pub fn text(&self) -> String {
            if let Some(s) = &self.string_value {
                s.clone()
            } else if let Some(b) = self.bool_value {
                b.to_string()
            } else if let Some(i) = self.int_value {
                i.to_string()
            } else if let Some(d) = self.double_value {
                d.to_string()
            } else {
                String::new()
            }
        }
    }
}

/// The label set of a key/value list, names made Prometheus-safe; a later duplicate wins.
fn labels_of(attributes: &[otlp::KeyValue], into: &mut BTreeMap<String, String>) {
    for kv in attributes {
        let value = kv.value.as_ref().map(otlp::AnyValue::text).unwrap_or_default();
        into.insert(prometheus_name(&kv.key, false), value);
    }
}

/// Decodes one pushed `MetricsData` into samples, at most [`MAX_SERIES_PER_INSTANCE`].
fn decode_samples(payload: &Bytes) -> Result<Vec<Sample>, prost::DecodeError> {
    let data = otlp::MetricsData::decode(payload.clone())?;
    let reserved = ["client_instance_id", "client_id", "client_software_name", "client_software_version"];
    let mut samples = Vec::new();
    for resource_metrics in &data.resource_metrics {
        let mut resource_labels = BTreeMap::new();
        if let Some(resource) = &resource_metrics.resource {
            labels_of(&resource.attributes, &mut resource_labels);
        }
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                let (kind, points) = match (&metric.gauge, &metric.sum) {
                    (Some(gauge), _) => (Kind::Gauge, &gauge.data_points),
                    (None, Some(sum)) if sum.is_monotonic => (Kind::Counter, &sum.data_points),
                    (None, Some(sum)) => (Kind::Gauge, &sum.data_points),
                    (None, None) => continue,
                };
                let name = prometheus_name(&metric.name, true);
                for point in points {
                    let Some(value) = point.as_double.or(point.as_int.map(|i| i as f64)) else { continue };
                    let mut labels = resource_labels.clone();
                    labels_of(&point.attributes, &mut labels);
                    // The broker's own labels name the client; a pushed one of the same
                    // name would make the series ambiguous.
                    for key in reserved {
                        labels.remove(key);
                    }
                    samples.push(Sample { name: name.clone(), kind, labels: labels.into_iter().collect(), value });
                    if samples.len() >= MAX_SERIES_PER_INSTANCE {
                        return Ok(samples);
                    }
                }
            }
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn info(client_id: &str, software: &str) -> ClientInfo {
        ClientInfo {
            client_id: client_id.to_string(),
            software_name: software.to_string(),
            software_version: "4.3.1".to_string(),
            source_address: "127.0.0.1".to_string(),
            source_port: "50000".to_string(),
        }
    }

    #[test]
    fn subscriptions_are_validated_as_kafka_does() {
        assert!(validate("s", &configs(&[("metrics", "org.apache.kafka.producer."), ("interval.ms", "1000")])).is_ok());
        assert!(matches!(validate("", &configs(&[])), Err(AlterError::InvalidRequest(_))));
        assert!(matches!(validate("s", &configs(&[("metric", "x")])), Err(AlterError::InvalidRequest(_))));
        assert!(matches!(validate("s", &configs(&[("interval.ms", "99")])), Err(AlterError::InvalidRequest(_))));
        assert!(matches!(validate("s", &configs(&[("interval.ms", "3600001")])), Err(AlterError::InvalidRequest(_))));
        assert!(matches!(validate("s", &configs(&[("interval.ms", "soon")])), Err(AlterError::InvalidConfig(_))));
        assert!(matches!(validate("s", &configs(&[("match", "client_id")])), Err(AlterError::InvalidConfig(_))));
        assert!(matches!(validate("s", &configs(&[("match", "user=x")])), Err(AlterError::InvalidConfig(_))));
        assert!(matches!(validate("s", &configs(&[("match", "client_id=(")])), Err(AlterError::InvalidConfig(_))));
        assert!(
            validate("s", &configs(&[("match", "client_id=app-.*, client_software_name=apache-kafka-java")])).is_ok()
        );
    }

    #[test]
    fn matching_subscriptions_are_merged_with_the_shortest_interval() {
        let parse = |pairs: &[(&str, &str)]| parse_subscription("s", &configs(pairs)).expect("valid");
        let subscriptions = vec![
            parse(&[("metrics", "org.apache.kafka.producer."), ("interval.ms", "5000")]),
            parse(&[("metrics", "org.apache.kafka.consumer."), ("interval.ms", "1000"), ("match", "client_id=app-.*")]),
            parse(&[("metrics", "*"), ("match", "client_software_name=librdkafka")]),
        ];
        let (metrics, interval) = evaluate(&subscriptions, "id", &info("app-1", "apache-kafka-java"));
        assert_eq!(metrics, ["org.apache.kafka.consumer.", "org.apache.kafka.producer."]);
        assert_eq!(interval, 1000);
        // A pattern matches the whole attribute, as Java's `matches()`.
        let (metrics, interval) = evaluate(&subscriptions, "id", &info("my-app-1", "apache-kafka-java"));
        assert_eq!((metrics, interval), (vec!["org.apache.kafka.producer.".to_string()], 5000));
        let (metrics, _) = evaluate(&subscriptions, "id", &info("x", "librdkafka"));
        assert_eq!(metrics, ["*"]);
        assert_eq!(evaluate(&[], "id", &info("x", "y")), (Vec::new(), DEFAULT_INTERVAL_MS));
    }

    #[test]
    fn subscription_ids_change_with_the_subscription_and_the_instance() {
        let id = Uuid::from_u128(7);
        let a = subscription_id(&["a".to_string()], 1000, id);
        assert_eq!(a, subscription_id(&["a".to_string()], 1000, id));
        assert_ne!(a, subscription_id(&["a".to_string()], 2000, id));
        assert_ne!(a, subscription_id(&["b".to_string()], 1000, id));
        assert_ne!(a, subscription_id(&["a".to_string()], 1000, Uuid::from_u128(8)));
    }

    fn kv(key: &str, value: &str) -> otlp::KeyValue {
        otlp::KeyValue {
            key: key.to_string(),
            value: Some(otlp::AnyValue { string_value: Some(value.to_string()), ..Default::default() }),
        }
    }

    #[test]
    fn pushed_gauges_and_sums_become_labelled_samples() {
        let point = |value: f64, attributes: Vec<otlp::KeyValue>| otlp::NumberDataPoint {
            attributes,
            time_unix_nano: 1,
            as_double: Some(value),
            as_int: None,
        };
        let data = otlp::MetricsData {
            resource_metrics: vec![otlp::ResourceMetrics {
                resource: Some(otlp::Resource { attributes: vec![kv("client.rack", "r1"), kv("client_id", "spoof")] }),
                scope_metrics: vec![otlp::ScopeMetrics {
                    metrics: vec![
                        otlp::Metric {
                            name: "org.apache.kafka.producer.record.queue.time.avg".to_string(),
                            gauge: Some(otlp::Gauge { data_points: vec![point(2.5, vec![])] }),
                            sum: None,
                        },
                        otlp::Metric {
                            name: "org.apache.kafka.producer.node.request.latency.max".to_string(),
                            gauge: None,
                            sum: Some(otlp::Sum {
                                data_points: vec![otlp::NumberDataPoint {
                                    attributes: vec![kv("node.id", "1")],
                                    time_unix_nano: 1,
                                    as_double: None,
                                    as_int: Some(42),
                                }],
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            }),
                        },
                    ],
                }],
            }],
        };
        let samples = decode_samples(&Bytes::from(data.encode_to_vec())).expect("decodes");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].name, "org_apache_kafka_producer_record_queue_time_avg");
        assert_eq!((samples[0].kind, samples[0].value), (Kind::Gauge, 2.5));
        assert_eq!(samples[0].labels, [("client_rack".to_string(), "r1".to_string())]);
        assert_eq!((samples[1].kind, samples[1].value), (Kind::Counter, 42.0));
        assert!(samples[1].labels.contains(&("node_id".to_string(), "1".to_string())));
        assert!(decode_samples(&Bytes::from_static(b"\xff\xff\xff")).is_err());
    }

    #[test]
    fn names_and_label_values_are_made_safe_for_prometheus() {
        assert_eq!(prometheus_name("a.b-c", true), "a_b_c");
        assert_eq!(prometheus_name("9lives", false), "_9lives");
        assert_eq!(prometheus_name("a:b", false), "a_b");
        assert_eq!(escape_label("say \"hi\"\\\n"), "say \\\"hi\\\"\\\\\\n");
    }
}
