//! Broker configuration under Apache Kafka's `server.properties` names.
//!
//! Values come from a properties file and `--override key=value` flags (later wins), as
//! with Kafka's `kafka-server-start.sh`. Keys Rivulet does not know are warned about; keys
//! Kafka knows but Rivulet has no use for are accepted quietly so a stock
//! `server.properties` works; invalid values stop the broker at start with the key named.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rivulet_storage::FlushPolicy;

use std::sync::Arc;

use crate::request_context::SecurityProtocol;
use crate::security::authorizer::{AuthorizerConfig, AUTHORIZER_CLASSES};
use crate::security::jaas::{self, JaasEntry};
use crate::security::tls::{self, TlsListener};
use crate::security::{
    oauthbearer, InterBroker, PlainUsers, SaslListener, SaslLogin, SaslMechanism, PLAIN_LOGIN_MODULE,
    SCRAM_LOGIN_MODULE,
};

/// A configuration problem found at start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value '{value}' for {key}: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    /// A security setting Rivulet does not enforce yet. Starting anyway would serve
    /// plaintext, unauthenticated and unauthorized traffic to an operator who asked for
    /// the opposite, so the broker refuses to start instead.
    #[error("{key}={value}: {reason}; Rivulet does not enforce it and will not start with it set")]
    UnsupportedSecurity { key: String, value: String, reason: String },
}

/// Where a dynamic broker setting comes from (DescribeConfigs sources 2 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicLevel {
    /// Set for this broker (`kafka-configs --entity-type brokers --entity-name <id>`).
    Broker,
    /// Set for every broker (`--entity-default`).
    ClusterDefault,
}

/// Broker settings that may change while the broker runs (Kafka's dynamic broker configs):
/// the defaults of topic configs, the cleaner's settings (Kafka's
/// `LogCleaner.ReconfigurableConfigs`, those that act here) and the producer-state expiry.
pub const DYNAMIC_KEYS: &[&str] = &[
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.cleanup.policy",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "producer.id.expiration.ms",
    "log.message.timestamp.type",
    "message.max.bytes",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// A `PLAINTEXT://host:port` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Empty means every interface.
    pub host: String,
    pub port: u16,
}

/// The validated configuration of one broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub message_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    /// `max.connections.per.ip`: connections one client address may hold at once (Kafka's
    /// default is unlimited, `i32::MAX`).
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides` (`host:count,...`), host names resolved at start.
    pub max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize>,
    /// `max.connection.creation.rate`: new connections per second the broker accepts over
    /// all its listeners but the inter-broker one (KIP-612); `None` (Kafka's default,
    /// `i32::MAX`) is no limit.
    pub max_connection_creation_rate: Option<u32>,
    /// `listener.name.<listener>.max.connection.creation.rate`, by listener name as in
    /// `listeners`: the same limit for one listener.
    pub listener_max_connection_creation_rate: BTreeMap<String, u32>,
    /// Connections silent for longer are closed (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    pub log_message_timestamp_type_log_append: bool,
    pub flush_policy: FlushPolicy,
    pub broker_rack: Option<String>,
    /// `group.initial.rebalance.delay.ms`
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub group_max_session_timeout_ms: i32,
    /// KIP-848 consumer groups: `group.consumer.heartbeat.interval.ms`,
    /// `group.consumer.session.timeout.ms`, `group.consumer.assignors`, `group.consumer.max.size`.
    pub group_consumer: crate::group::consumer::ConsumerGroupSettings,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_num_partitions: i32,
    /// `offsets.retention.minutes`
    pub offsets_retention_minutes: u64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `max.request.partition.size.limit`: the most partitions one DescribeTopicPartitions
    /// response holds (Kafka's default 2,000).
    pub max_request_partition_size_limit: i32,
    /// `metadata.store`: `None` keeps metadata in the broker's own RocksDB; an
    /// `etcd://host:port[,host:port][/root]` URL keeps it in etcd.
    pub metadata_store: Option<rivulet_metadata::EtcdLocation>,
    /// `metadata.store.connection.timeout.ms`: how long each etcd call is retried while
    /// etcd is unreachable (starting, restarting) before it fails; at start-up, how long
    /// a broker waits for etcd (Kafka's `zookeeper.connection.timeout.ms`, 18 s).
    pub metadata_store_connection_timeout_ms: u64,
    /// `broker.session.timeout.ms`: how long a broker's etcd registration outlives its
    /// last keep-alive.
    pub broker_session_timeout_ms: u64,
    /// `transaction.state.log.num.partitions`
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.max.timeout.ms`: producers asking for longer get INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub transaction_abort_interval_ms: u64,
    /// `offsets.topic.replication.factor` (cluster mode; a single node keeps one copy)
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor` (cluster mode)
    pub transaction_state_log_replication_factor: i16,
    /// `min.insync.replicas`: acks=all needs at least this many in-sync replicas.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader.
    pub replica_fetch_wait_max_ms: u64,
    /// `unclean.leader.election.enable`: elect an out-of-sync replica when no in-sync one
    /// is alive (losing what it lacks).
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`: the controller moves leadership back to preferred
    /// replicas every `leader.imbalance.check.interval.seconds`.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    /// `log.retention.ms` (else `log.retention.minutes`, else `log.retention.hours`; 7 days):
    /// the default `retention.ms` of topics. -1 keeps records forever.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`: the default `retention.bytes` of a partition; -1 = no limit.
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub log_retention_check_interval_ms: u64,
    /// `log.cleanup.policy`: the default `cleanup.policy` of topics.
    pub log_cleanup_policy: String,
    /// `log.cleaner.enable`: compacted topics are cleaned in the background.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: how often the cleaner looks for logs to clean.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: bound on the cleaner's offset map, in bytes.
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `leader.replication.throttled.rate` / `follower.replication.throttled.rate`: bytes
    /// per second for the replicas a topic's `*.replication.throttled.replicas` names
    /// (Kafka sets them while reassigning); `i64::MAX` is no limit.
    pub leader_replication_throttled_rate: i64,
    pub follower_replication_throttled_rate: i64,
    /// `producer.id.expiration.ms`: a producer with no open transaction that has not
    /// written to a partition for this long is forgotten there.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`: how often expired producers are looked for.
    pub producer_id_expiration_check_interval_ms: u64,
    /// Each listener's security protocol and the SASL settings of `SASL_PLAINTEXT` ones.
    pub security: ListenerSecurity,
    /// `connection.failed.authentication.delay.ms`: how long a failed authentication waits
    /// before its answer and the close (KIP-306), slowing password guessing.
    pub failed_authentication_delay_ms: u64,
    /// `quota.window.num` / `quota.window.size.seconds`: the samples client quotas are
    /// measured over (Kafka's defaults 11 × 1 s).
    pub quota_window_num: u32,
    pub quota_window_size_seconds: u32,
    /// `host:port` for the Prometheus `/metrics` endpoint (`rivulet.metrics.listener`);
    /// none by default.
    pub metrics_listener: Option<String>,
    /// `host:port` the web console listens on (`rivulet.console.listener`); none by
    /// default, so no console socket is opened unless asked for.
    pub console_listener: Option<String>,
    /// `rivulet.console.allow.unauthenticated`: the console has no login, so with an
    /// authorizer configured it starts only when this says its readers may see everything.
    pub console_allow_unauthenticated: bool,
    /// Every key that was set, as given (for DescribeConfigs).
    pub raw: RawProperties,
    /// Keys of `raw` that dynamic broker configs set, and at which level.
    pub dynamic: BTreeMap<String, DynamicLevel>,
}

/// Whether `key` holds a secret (Kafka's PASSWORD-typed configs: JAAS lines, passwords,
/// secrets), whose value is never shown in errors, logs or `Debug`.
pub fn is_sensitive(key: &str) -> bool {
    key.ends_with("jaas.config") || key.contains("password") || key.ends_with("secret")
}

/// The properties as given. `Debug` hides the values of [`is_sensitive`] keys, so printing
/// a whole [`BrokerConfig`] never leaks a JAAS line's passwords.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawProperties(pub BTreeMap<String, String>);

impl std::ops::Deref for RawProperties {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::fmt::Debug for RawProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, if is_sensitive(k) { "(hidden)" } else { v.as_str() })))
            .finish()
    }
}

/// Keys Rivulet reads.
const KNOWN_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "delete.topic.enable",
    "message.max.bytes",
    "socket.request.max.bytes",
    "max.connections",
    "connections.max.reauth.ms",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.connection.creation.rate",
    "connections.max.idle.ms",
    "connection.failed.authentication.delay.ms",
    "quota.window.num",
    "authorizer.class.name",
    "super.users",
    "allow.everyone.if.no.acl.found",
    "quota.window.size.seconds",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "log.message.timestamp.type",
    "log.flush.interval.messages",
    "broker.rack",
    "rivulet.metrics.listener",
    "rivulet.console.listener",
    "rivulet.console.allow.unauthenticated",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
    "group.consumer.session.timeout.ms",
    "group.consumer.min.session.timeout.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.assignors",
    "group.consumer.max.size",
    "offsets.topic.num.partitions",
    "offsets.retention.minutes",
    "transaction.state.log.num.partitions",
    "metadata.store",
    "metadata.store.username",
    "metadata.store.password",
    // `metadata.store.ssl.*` keys: `tls::METADATA_STORE_TLS_KEYS`.
    "broker.session.timeout.ms",
    "metadata.store.connection.timeout.ms",
    "transaction.max.timeout.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "offset.metadata.max.bytes",
    "max.request.partition.size.limit",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "min.insync.replicas",
    "replica.lag.time.max.ms",
    "replica.fetch.wait.max.ms",
    "unclean.leader.election.enable",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.cleanup.policy",
    "log.cleaner.enable",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "producer.id.expiration.ms",
    "producer.id.expiration.check.interval.ms",
];

/// Kafka keys that are meaningful for Apache Kafka but have no effect here (threads,
/// segments, KRaft/ZooKeeper wiring, ...). Accepted without a warning.
const ACCEPTED_KAFKA_KEYS: &[&str] = &[
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "security.inter.broker.protocol",
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "log.segment.bytes",
    "log.cleaner.threads",
    "log.flush.interval.ms",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
];

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse::<T>().map_err(|e| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    })
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: value.to_string(), reason: reason.to_string() }
}

/// `host:port` of an HTTP listener: a non-empty host (a name, an IPv4 address or a
/// bracketed IPv6 one) and a port number. Checked here so a typo stops the start with the
/// key named, rather than a bind error later.
fn parse_console_listener(key: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(invalid(key, value, "expected host:port, e.g. 127.0.0.1:8080"));
    };
    if port.parse::<u16>().is_err() {
        return Err(invalid(key, value, "the port must be a number from 0 to 65535"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    let plain = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if !bracketed && !plain {
        return Err(invalid(key, value, "expected host:port, e.g. 127.0.0.1:8080 (an IPv6 host in brackets)"));
    }
    Ok(value.to_string())
}

/// The KIP-848 settings, checked as Kafka's `GroupCoordinatorConfig` does: each timeout
/// within its min/max bounds (defaults 5 s in [5 s, 15 s] for the heartbeat interval, 45 s
/// in [45 s, 60 s] for the session), the interval below the session timeout, and assignors
/// by name (`uniform`, `range`) or by Kafka's class names.
fn consumer_group_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<crate::group::consumer::ConsumerGroupSettings, ConfigError> {
    let value = |key: &str, default: i32| get(key).map_or(Ok(default), |v| parse_positive::<i32>(key, v));
    let heartbeat = value("group.consumer.heartbeat.interval.ms", 5_000)?;
    let min_heartbeat = value("group.consumer.min.heartbeat.interval.ms", 5_000)?;
    let max_heartbeat = value("group.consumer.max.heartbeat.interval.ms", 15_000)?;
    let session = value("group.consumer.session.timeout.ms", 45_000)?;
    let min_session = value("group.consumer.min.session.timeout.ms", 45_000)?;
    let max_session = value("group.consumer.max.session.timeout.ms", 60_000)?;
    let shown = |v: i32| v.to_string();
    if !(min_heartbeat..=max_heartbeat).contains(&heartbeat) {
        let reason =
            format!("must be within [{min_heartbeat}, {max_heartbeat}] (group.consumer.min/max.heartbeat.interval.ms)");
        return Err(invalid("group.consumer.heartbeat.interval.ms", &shown(heartbeat), &reason));
    }
    if !(min_session..=max_session).contains(&session) {
        let reason =
            format!("must be within [{min_session}, {max_session}] (group.consumer.min/max.session.timeout.ms)");
        return Err(invalid("group.consumer.session.timeout.ms", &shown(session), &reason));
    }
    if heartbeat >= session {
        return Err(invalid(
            "group.consumer.heartbeat.interval.ms",
            &shown(heartbeat),
            "must be less than group.consumer.session.timeout.ms",
        ));
    }
    let mut assignors = Vec::new();
    if let Some(list) = get("group.consumer.assignors") {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let short = match name {
                "org.apache.kafka.coordinator.group.assignor.UniformAssignor" | "uniform" => "uniform",
                "org.apache.kafka.coordinator.group.assignor.RangeAssignor" | "range" => "range",
                other => {
                    return Err(invalid("group.consumer.assignors", other, "unknown assignor; known: uniform, range"))
                }
            };
            if !assignors.iter().any(|a| a == short) {
                assignors.push(short.to_string());
            }
        }
        if assignors.is_empty() {
            return Err(invalid("group.consumer.assignors", list, "must name at least one assignor"));
        }
    }
    let defaults = crate::group::consumer::ConsumerGroupSettings::default();
    Ok(crate::group::consumer::ConsumerGroupSettings {
        heartbeat_interval_ms: heartbeat,
        session_timeout_ms: session,
        assignors: if assignors.is_empty() { defaults.assignors } else { assignors },
        max_size: get("group.consumer.max.size")
            .map_or(Ok(defaults.max_size), |v| parse_positive::<usize>("group.consumer.max.size", v))?,
    })
}

/// Parses `NAME://host:port[,NAME://host:port]`.
pub fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut listeners = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, address) = item.split_once("://").ok_or_else(|| invalid(key, value, "expected NAME://host:port"))?;
        let (host, port) = address.rsplit_once(':').ok_or_else(|| invalid(key, value, "missing :port"))?;
        let port: u16 = parse(key, port)?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if name.is_empty() {
            return Err(invalid(key, value, "listener name is empty"));
        }
        listeners.push(Listener { name: name.to_string(), host, port });
    }
    if listeners.is_empty() {
        return Err(invalid(key, value, "no listener given"));
    }
    Ok(listeners)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn parse_positive<T>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let parsed: T = parse(key, value)?;
    if parsed <= T::default() {
        return Err(invalid(key, value, "must be positive"));
    }
    Ok(parsed)
}

/// A retention setting: a count, or -1 for no limit (Kafka accepts any negative value as
/// "unlimited" and so does this).
fn parse_retention(key: &str, value: &str) -> Result<i64, ConfigError> {
    let parsed: i64 = parse(key, value)?;
    Ok(parsed.max(-1))
}

/// `log.retention.ms`, else `log.retention.minutes`, else `log.retention.hours` (Kafka's
/// precedence), in milliseconds; -1 = forever.
fn retention_ms(props: &BTreeMap<String, String>) -> Result<i64, ConfigError> {
    for (key, unit_ms) in
        [("log.retention.ms", 1), ("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)]
    {
        if let Some(v) = props.get(key) {
            let value = parse_retention(key, v)?;
            return Ok(if value < 0 { -1 } else { value.saturating_mul(unit_ms) });
        }
    }
    Ok(7 * 24 * 3_600_000)
}

fn parse_non_negative<T>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    if value.trim().starts_with('-') {
        return Err(invalid(key, value, "must not be negative"));
    }
    parse(key, value)
}

/// Kafka's default `listener.security.protocol.map`: every protocol name maps to itself.
const DEFAULT_PROTOCOL_MAP: &str = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// Security settings Kafka acts on that Rivulet does not enforce yet: each one, when set,
/// stops the broker at start (see [`ConfigError::UnsupportedSecurity`]).
const UNENFORCED_SECURITY_KEYS: &[&str] =
    &["authorizer.class.name", "super.users", "allow.everyone.if.no.acl.found", "principal.builder.class"];

/// Prefixes of the same kind: TLS (`ssl.`), SASL (`sasl.`), per-listener security
/// overrides (`listener.name.<listener>.ssl.keystore.location`, ...) and delegation tokens.
const UNENFORCED_SECURITY_PREFIXES: &[&str] = &["ssl.", "sasl.", "listener.name.", "delegation.token."];

fn unsupported(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::UnsupportedSecurity { key: key.to_string(), value: value.to_string(), reason: reason.into() }
}

/// What the listeners enforce, resolved from the configuration.
#[derive(Debug, Clone, Default)]
pub struct ListenerSecurity {
    /// Each listener's security protocol, by listener name as written in `listeners`.
    pub protocols: BTreeMap<String, SecurityProtocol>,
    /// The SASL settings of each `SASL_PLAINTEXT` and `SASL_SSL` listener, by listener name.
    pub sasl: BTreeMap<String, Arc<SaslListener>>,
    /// The TLS settings of each `SSL` and `SASL_SSL` listener, by listener name.
    pub tls: BTreeMap<String, Arc<TlsListener>>,
    /// The ACL authorizer every request passes (`authorizer.class.name`); none by default,
    /// as in Kafka: then every request is allowed and the ACL APIs answer SECURITY_DISABLED.
    pub authorizer: Option<AuthorizerConfig>,
    /// How this broker reaches and authenticates to the other brokers of its cluster.
    pub inter_broker: InterBroker,
}

/// The mechanisms of a SASL listener: `listener.name.<listener>.sasl.enabled.mechanisms`,
/// else `sasl.enabled.mechanisms`. Kafka's default (GSSAPI) is not served, so one must be
/// set.
fn enabled_mechanisms(
    props: &BTreeMap<String, String>,
    prefix: &str,
    listener: &str,
) -> Result<Vec<SaslMechanism>, ConfigError> {
    let listener_key = format!("{prefix}sasl.enabled.mechanisms");
    let (key, value) = match (props.get(&listener_key), props.get("sasl.enabled.mechanisms")) {
        (Some(v), _) => (listener_key.as_str(), v.as_str()),
        (None, Some(v)) => ("sasl.enabled.mechanisms", v.as_str()),
        (None, None) => {
            return Err(unsupported(
                "sasl.enabled.mechanisms",
                "GSSAPI (Kafka's default)",
                format!(
                    "listener {listener} is SASL_PLAINTEXT and Kerberos (GSSAPI) is not implemented; set \
                     sasl.enabled.mechanisms (or {listener_key}) to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 \
                     and/or OAUTHBEARER"
                ),
            ))
        }
    };
    let mut mechanisms = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mechanism = SaslMechanism::from_name(name).ok_or_else(|| {
            unsupported(
                key,
                value,
                format!(
                    "SASL mechanism {name} is not implemented (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and \
                     OAUTHBEARER are)"
                ),
            )
        })?;
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    if mechanisms.is_empty() {
        return Err(invalid(key, value, "no SASL mechanism given"));
    }
    Ok(mechanisms)
}

/// The JAAS entry of `mechanism` on a listener: `listener.name.<listener>.<mechanism
/// lower-case>.sasl.jaas.config`, else `sasl.jaas.config`. Returns the key it came from.
fn jaas_entry(
    props: &BTreeMap<String, String>,
    prefix: &str,
    mechanism: SaslMechanism,
) -> Result<Option<(String, JaasEntry)>, ConfigError> {
    let listener_key = format!("{prefix}{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase());
    let (key, value) = match (props.get(&listener_key), props.get("sasl.jaas.config")) {
        (Some(v), _) => (listener_key, v),
        (None, Some(v)) => ("sasl.jaas.config".to_string(), v),
        (None, None) => return Ok(None),
    };
    // The value holds passwords: the error names the key and the problem only.
    let entry = jaas::parse(value)
        .map_err(|reason| invalid(&key, "(hidden)", &format!("malformed JAAS configuration: {reason}")))?;
    Ok(Some((key, entry)))
}

/// The SASL settings of the SASL listener `listener_name` (`SASL_PLAINTEXT` or `SASL_SSL`).
fn resolve_sasl(
    props: &BTreeMap<String, String>,
    listener_name: &str,
    used: &mut Vec<String>,
) -> Result<SaslListener, ConfigError> {
    let prefix = format!("listener.name.{}.", listener_name.to_ascii_lowercase());
    let mechanisms = enabled_mechanisms(props, &prefix, listener_name)?;
    used.push("sasl.enabled.mechanisms".into());
    used.push(format!("{prefix}sasl.enabled.mechanisms"));
    let mut plain_users = PlainUsers::default();
    let mut max_reauth_ms = Vec::new();
    let mut oauthbearer = None;
    for &mechanism in &mechanisms {
        // KIP-368: `listener.name.<listener>.<mechanism>.connections.max.reauth.ms`, else
        // `listener.name.<listener>.connections.max.reauth.ms`, else the global
        // `connections.max.reauth.ms` (Kafka's order); 0 (the default) is no
        // re-authentication.
        let mechanism_key = format!("{prefix}{}.connections.max.reauth.ms", mechanism.name().to_ascii_lowercase());
        let listener_key = format!("{prefix}connections.max.reauth.ms");
        let mut reauth = 0;
        for key in [mechanism_key.as_str(), listener_key.as_str(), "connections.max.reauth.ms"] {
            used.push(key.to_string());
            if let Some(v) = props.get(key) {
                reauth = parse_non_negative::<u64>(key, v)?;
                break;
            }
        }
        max_reauth_ms.push((mechanism, reauth));
        let entry = jaas_entry(props, &prefix, mechanism)?;
        used.push("sasl.jaas.config".into());
        used.push(format!("{prefix}{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase()));
        match (mechanism, entry) {
            (SaslMechanism::Plain, None) => {
                return Err(unsupported(
                    "sasl.enabled.mechanisms",
                    "PLAIN",
                    format!(
                        "listener {} enables PLAIN but no JAAS configuration lists its users: set \
                         {prefix}plain.sasl.jaas.config (or sasl.jaas.config) to a {PLAIN_LOGIN_MODULE} \
                         entry with user_<name>=\"<password>\" options",
                        listener_name
                    ),
                ))
            }
            (SaslMechanism::Plain, Some((key, entry))) => {
                if entry.login_module != PLAIN_LOGIN_MODULE {
                    return Err(invalid(
                        &key,
                        "(hidden)",
                        &format!("PLAIN needs the login module {PLAIN_LOGIN_MODULE}, not {}", entry.login_module),
                    ));
                }
                plain_users.0 = entry
                    .options
                    .iter()
                    .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v.clone())))
                    .collect();
                if plain_users.0.is_empty() {
                    tracing::warn!(listener = %listener_name, key, "PLAIN is enabled but its JAAS entry lists no user_<name> option: every PLAIN login will fail");
                }
            }
            (SaslMechanism::Scram(_), Some((key, entry)))
                if key.starts_with("listener.name.") && entry.login_module != SCRAM_LOGIN_MODULE =>
            {
                return Err(invalid(
                    &key,
                    "(hidden)",
                    &format!("SCRAM needs the login module {SCRAM_LOGIN_MODULE}, not {}", entry.login_module),
                ));
            }
            // SCRAM's users are in the metadata store; its JAAS options only serve clients.
            (SaslMechanism::Scram(_), _) => {}
            (SaslMechanism::OAuthBearer, entry) => {
                let validator = resolve_oauthbearer(props, &prefix, listener_name, entry, used)?;
                oauthbearer = Some(Arc::new(validator));
            }
        }
    }
    Ok(SaslListener { mechanisms, plain_users, max_reauth_ms, oauthbearer })
}

/// How OAUTHBEARER tokens are validated on a listener, as Kafka picks its server callback
/// handler: `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class` set to
/// `OAuthBearerValidatorCallbackHandler` verifies signed JWTs against the JWKS of
/// `sasl.oauthbearer.jwks.endpoint.url` (a `file:` URL here); unset, the unsecured
/// validator (Kafka's default, for development) takes its options from the listener's
/// `OAuthBearerLoginModule` JAAS entry.
fn resolve_oauthbearer(
    props: &BTreeMap<String, String>,
    prefix: &str,
    listener_name: &str,
    entry: Option<(String, JaasEntry)>,
    used: &mut Vec<String>,
) -> Result<oauthbearer::Validator, ConfigError> {
    let handler_key = format!("{prefix}oauthbearer.sasl.server.callback.handler.class");
    used.push(handler_key.clone());
    let handler = props.get(&handler_key).map(|v| v.trim());
    // The key and value of the JWKS URL, named if the file cannot be used.
    let mut jwks_url = None;
    // A listener-and-mechanism key, else a listener key, else the global one.
    let mut setting = |key: &str| -> Option<(String, String)> {
        let candidates = [format!("{prefix}oauthbearer.{key}"), format!("{prefix}{key}"), key.to_string()];
        used.extend(candidates.iter().cloned());
        candidates.into_iter().find_map(|k| props.get(&k).map(|v| (k, v.trim().to_string())))
    };
    let entry = match entry {
        Some((key, entry)) if entry.login_module != oauthbearer::LOGIN_MODULE => {
            if key.starts_with("listener.name.") {
                return Err(invalid(
                    &key,
                    "(hidden)",
                    &format!(
                        "OAUTHBEARER needs the login module {}, not {}",
                        oauthbearer::LOGIN_MODULE,
                        entry.login_module
                    ),
                ));
            }
            None
        }
        other => other,
    };
    let config = match handler {
        None | Some(oauthbearer::UNSECURED_CALLBACK_HANDLER) => {
            let option = |name: &str| {
                entry.as_ref().and_then(|(_, e)| e.options.get(name)).map(|v| v.trim()).filter(|v| !v.is_empty())
            };
            let jaas_key =
                entry.as_ref().map_or_else(|| format!("{prefix}oauthbearer.sasl.jaas.config"), |(k, _)| k.clone());
            let clock_skew_ms = match option("unsecuredValidatorAllowableClockSkewMs") {
                None => 0,
                Some(v) => v.parse::<u64>().map_err(|_| {
                    invalid(
                        &jaas_key,
                        "(hidden)",
                        "unsecuredValidatorAllowableClockSkewMs must be a non-negative integer",
                    )
                })?,
            };
            tracing::warn!(
                listener = %listener_name,
                "OAUTHBEARER accepts unsecured (unsigned) JWTs on this listener, as Kafka's default validator does: \
                 for development only; set {handler_key}={} and sasl.oauthbearer.jwks.endpoint.url to verify signed tokens",
                oauthbearer::VALIDATOR_CALLBACK_HANDLER
            );
            oauthbearer::ValidatorConfig::Unsecured {
                principal_claim: option("unsecuredValidatorPrincipalClaimName").unwrap_or("sub").to_string(),
                scope_claim: option("unsecuredValidatorScopeClaimName").unwrap_or("scope").to_string(),
                required_scope: option("unsecuredValidatorRequiredScope")
                    .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(String::from).collect())
                    .unwrap_or_default(),
                clock_skew_ms,
            }
        }
        Some(oauthbearer::VALIDATOR_CALLBACK_HANDLER) => {
            const URL_KEY: &str = "sasl.oauthbearer.jwks.endpoint.url";
            let Some((url_key, url)) = setting(URL_KEY) else {
                return Err(invalid(
                    &handler_key,
                    oauthbearer::VALIDATOR_CALLBACK_HANDLER,
                    &format!("signed tokens are verified against the keys of {URL_KEY}, which is not set"),
                ));
            };
            let path = url.strip_prefix("file://").or_else(|| url.strip_prefix("file:")).ok_or_else(|| {
                unsupported(
                    &url_key,
                    &url,
                    "only file: URLs are served (a JWKS file, read again when it changes); fetching keys over \
                     HTTP(S) is not implemented",
                )
            })?;
            jwks_url = Some((url_key.clone(), url.clone()));
            let list = |v: Option<(String, String)>| -> Vec<String> {
                v.map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                    .unwrap_or_default()
            };
            let expected_audience = list(setting("sasl.oauthbearer.expected.audience"));
            let expected_issuer = setting("sasl.oauthbearer.expected.issuer").map(|(_, v)| v).filter(|v| !v.is_empty());
            let sub_claim = setting("sasl.oauthbearer.sub.claim.name").map_or_else(|| "sub".to_string(), |(_, v)| v);
            let scope_claim =
                setting("sasl.oauthbearer.scope.claim.name").map_or_else(|| "scope".to_string(), |(_, v)| v);
            let clock_skew_s = match setting("sasl.oauthbearer.clock.skew.seconds") {
                Some((key, v)) => parse_non_negative::<u64>(&key, &v)?,
                None => 30,
            };
            // The refresh settings concern HTTPS endpoints; a file is read again when it changes.
            for key in [
                "sasl.oauthbearer.jwks.endpoint.refresh.ms",
                "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
                "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
            ] {
                setting(key);
            }
            oauthbearer::ValidatorConfig::Jwks {
                path: path.into(),
                expected_audience,
                expected_issuer,
                sub_claim,
                scope_claim,
                clock_skew_s,
            }
        }
        Some(other) => {
            return Err(unsupported(
                &handler_key,
                other,
                format!(
                    "custom server callback handlers are not served; use {} (signed JWTs, JWKS file) or leave it \
                     unset (unsecured JWTs, for development)",
                    oauthbearer::VALIDATOR_CALLBACK_HANDLER
                ),
            ))
        }
    };
    oauthbearer::Validator::new(config).map_err(|reason| {
        let (key, value) = jwks_url.unwrap_or_default();
        invalid(&key, &value, &reason)
    })
}

/// Resolves the security protocol of every listener (Kafka's
/// `listener.security.protocol.map`), the SASL settings of `SASL_PLAINTEXT` and `SASL_SSL`
/// ones and the TLS settings of `SSL` and `SASL_SSL` ones. Everything not enforced — other
/// mechanisms, key store types, authorizers, re-authentication, any other security key —
/// stops the broker at start: accepting it would be fail-open.
fn resolve_security(props: &BTreeMap<String, String>, listeners: &[Listener]) -> Result<ListenerSecurity, ConfigError> {
    const MAP_KEY: &str = "listener.security.protocol.map";
    let map_value = props.get(MAP_KEY).map_or(DEFAULT_PROTOCOL_MAP, String::as_str);
    let mut map = BTreeMap::new();
    for item in map_value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) =
            item.split_once(':').ok_or_else(|| invalid(MAP_KEY, map_value, "expected LISTENER:PROTOCOL pairs"))?;
        let protocol = SecurityProtocol::from_name(protocol.trim()).ok_or_else(|| {
            invalid(MAP_KEY, map_value, &format!("unknown security protocol {protocol} for listener {name}"))
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    let mut security = ListenerSecurity::default();
    // Security keys this configuration uses; any other one is refused below.
    let mut used: Vec<String> = Vec::new();
    for listener in listeners {
        let protocol = map.get(&listener.name.to_ascii_uppercase()).copied().ok_or_else(|| {
            invalid(
                "listeners",
                props.get("listeners").map_or("", String::as_str),
                &format!("no security protocol defined for listener {} in {MAP_KEY}", listener.name),
            )
        })?;
        security.protocols.insert(listener.name.clone(), protocol);
        match protocol {
            SecurityProtocol::Plaintext => {}
            SecurityProtocol::SaslPlaintext => {
                security.sasl.insert(listener.name.clone(), Arc::new(resolve_sasl(props, &listener.name, &mut used)?));
            }
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                let tls = tls::resolve(props, &listener.name, &mut used).map_err(|e| {
                    let reason = format!("listener {}: {}", listener.name, e.reason);
                    if e.unsupported {
                        ConfigError::UnsupportedSecurity { key: e.key, value: e.value, reason }
                    } else {
                        ConfigError::Invalid { key: e.key, value: e.value, reason }
                    }
                })?;
                security.tls.insert(listener.name.clone(), Arc::new(tls));
                if protocol == SecurityProtocol::SaslSsl {
                    let sasl = resolve_sasl(props, &listener.name, &mut used)?;
                    security.sasl.insert(listener.name.clone(), Arc::new(sasl));
                }
            }
        }
    }
    // Not a security setting, but under the listener prefix: read by `from_properties`.
    for listener in listeners {
        let key = connection_creation_rate_key(&listener.name);
        if props.contains_key(&key) {
            used.push(key);
        }
    }
    security.inter_broker = resolve_inter_broker(props, listeners, &security, &mut used)?;
    security.authorizer = resolve_authorizer(props, &mut used)?;
    for (key, value) in props {
        let security_key = UNENFORCED_SECURITY_KEYS.contains(&key.as_str())
            || UNENFORCED_SECURITY_PREFIXES.iter().any(|prefix| key.starts_with(prefix));
        if security_key && !used.contains(key) {
            let reason = if key.starts_with("sasl.") && security.sasl.is_empty() {
                "no listener is SASL_PLAINTEXT or SASL_SSL, so no SASL setting would be enforced".to_string()
            } else if (key == "super.users" || key == "allow.everyone.if.no.acl.found") && security.authorizer.is_none()
            {
                "no authorizer.class.name is set, so it would not be enforced".to_string()
            } else if key.starts_with("ssl.") && security.tls.is_empty() {
                "no listener is SSL or SASL_SSL, so no TLS setting would be enforced".to_string()
            } else {
                "this setting is not implemented (authorizers, re-authentication, delegation tokens, SASL \
                 mechanisms other than PLAIN and SCRAM, and TLS settings other than PEM and PKCS12 stores are not)"
                    .to_string()
            };
            let shown = if is_sensitive(key) { "(hidden)" } else { value };
            return Err(unsupported(key, shown, reason));
        }
    }
    Ok(security)
}

/// The listener brokers reach each other at and how this broker authenticates there, as
/// Kafka resolves it: `inter.broker.listener.name`, else the listener named after
/// `security.inter.broker.protocol` (setting both is an error), else (neither set) the
/// listener named PLAINTEXT if there is one and the first listener otherwise. On a SASL
/// listener the mechanism is `sasl.mechanism.inter.broker.protocol` (Kafka's default,
/// GSSAPI, is not served) and the login the `username` / `password` of the listener's
/// JAAS entry for it; on a TLS listener peers are verified against its truststore.
///
/// A missing login, mechanism or truststore does not stop a single broker (it has no
/// peers) but is kept in [`InterBroker::unusable`] for a cluster broker to refuse.
fn resolve_inter_broker(
    props: &BTreeMap<String, String>,
    listeners: &[Listener],
    security: &ListenerSecurity,
    used: &mut Vec<String>,
) -> Result<InterBroker, ConfigError> {
    const NAME_KEY: &str = "inter.broker.listener.name";
    const PROTOCOL_KEY: &str = "security.inter.broker.protocol";
    const MECHANISM_KEY: &str = "sasl.mechanism.inter.broker.protocol";
    used.extend([NAME_KEY, PROTOCOL_KEY, MECHANISM_KEY].map(String::from));
    let defined = || listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ");
    let find = |name: &str| listeners.iter().find(|l| l.name.eq_ignore_ascii_case(name));
    let listener = match (props.get(NAME_KEY), props.get(PROTOCOL_KEY)) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                NAME_KEY,
                props.get(NAME_KEY).map_or("", String::as_str),
                &format!("only one of {NAME_KEY} and {PROTOCOL_KEY} should be set"),
            ))
        }
        (Some(name), None) => find(name.trim()).ok_or_else(|| {
            invalid(
                NAME_KEY,
                name,
                &format!("must be a listener name defined in listeners and advertised.listeners ({})", defined()),
            )
        })?,
        (None, Some(protocol)) => {
            let protocol_name = SecurityProtocol::from_name(protocol.trim())
                .ok_or_else(|| invalid(PROTOCOL_KEY, protocol, "unknown security protocol"))?
                .name();
            find(protocol_name).ok_or_else(|| {
                invalid(
                    PROTOCOL_KEY,
                    protocol,
                    &format!(
                        "no listener is named {protocol_name} ({}); name the inter-broker listener with {NAME_KEY}",
                        defined()
                    ),
                )
            })?
        }
        (None, None) => match find("PLAINTEXT").or(listeners.first()) {
            Some(l) => l,
            None => return Ok(InterBroker::default()),
        },
    };
    let mut inter_broker = InterBroker { listener: listener.name.clone(), ..InterBroker::default() };
    let protocol = security.protocols.get(&listener.name).copied().unwrap_or(SecurityProtocol::Plaintext);
    if matches!(protocol, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl) {
        let tls = security.tls.get(&listener.name).cloned();
        if tls.as_ref().is_some_and(|t| t.client.is_some()) {
            inter_broker.tls = tls;
        } else {
            inter_broker.unusable = Some((
                "ssl.truststore.location".into(),
                format!(
                    "the inter-broker listener {} is {}: brokers verify each other's certificates against its \
                     truststore (ssl.truststore.type=PEM or PKCS12 with ssl.truststore.location, or PEM \
                     ssl.truststore.certificates)",
                    listener.name,
                    protocol.name()
                ),
            ));
        }
    }
    if matches!(protocol, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl) {
        let enabled = security.sasl.get(&listener.name).map(|s| s.mechanisms.clone()).unwrap_or_default();
        let Some(value) = props.get(MECHANISM_KEY) else {
            inter_broker.unusable.get_or_insert((
                MECHANISM_KEY.into(),
                format!(
                    "the inter-broker listener {} is {} and Kafka's default mechanism (GSSAPI) is not implemented: \
                     set {MECHANISM_KEY} to one of its sasl.enabled.mechanisms",
                    listener.name,
                    protocol.name()
                ),
            ));
            return Ok(inter_broker);
        };
        let mechanism = SaslMechanism::from_name(value.trim()).filter(|m| enabled.contains(m)).ok_or_else(|| {
            invalid(
                MECHANISM_KEY,
                value,
                &format!(
                    "must be one of the inter-broker listener {}'s sasl.enabled.mechanisms ({})",
                    listener.name,
                    enabled.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        if mechanism == SaslMechanism::OAuthBearer {
            inter_broker.unusable.get_or_insert((
                MECHANISM_KEY.into(),
                "brokers log in to each other with PLAIN or SCRAM; OAUTHBEARER between brokers is not implemented"
                    .into(),
            ));
            return Ok(inter_broker);
        }
        let prefix = format!("listener.name.{}.", listener.name.to_ascii_lowercase());
        let entry = jaas_entry(props, &prefix, mechanism)?;
        let login = entry.as_ref().and_then(|(_, e)| Some((e.options.get("username")?, e.options.get("password")?)));
        match login {
            Some((username, password)) => {
                inter_broker.sasl =
                    Some(SaslLogin { mechanism, username: username.clone(), password: password.clone() })
            }
            None => {
                let key = entry.map_or_else(
                    || format!("{prefix}{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase()),
                    |(key, _)| key,
                );
                inter_broker.unusable.get_or_insert((
                    key,
                    format!(
                        "brokers log in to each other's {} listener with the username and password options of \
                         its {} JAAS entry, and they are not set",
                        listener.name, mechanism
                    ),
                ));
            }
        }
    }
    Ok(inter_broker)
}

/// `listener.name.<listener>.max.connection.creation.rate` (Kafka writes listener names
/// lower-case in such keys).
fn connection_creation_rate_key(listener: &str) -> String {
    format!("listener.name.{}.max.connection.creation.rate", listener.to_ascii_lowercase())
}

/// A `max.connection.creation.rate` (Kafka's INT, at least 0); `i32::MAX` is no limit.
fn connection_creation_rate(key: &str, value: &str) -> Result<Option<u32>, ConfigError> {
    let rate: u32 = parse_non_negative(key, value)?;
    if rate > i32::MAX as u32 {
        return Err(invalid(key, value, "must fit in an INT"));
    }
    Ok((rate < i32::MAX as u32).then_some(rate))
}

/// `max.connections.per.ip.overrides`: `host:count` pairs, as Kafka's
/// `SocketServer.connectionQuotas` reads them; a host name counts for every address it
/// resolves to now.
fn per_ip_overrides(value: Option<&str>) -> Result<BTreeMap<std::net::IpAddr, usize>, ConfigError> {
    use std::net::ToSocketAddrs as _;
    const KEY: &str = "max.connections.per.ip.overrides";
    let mut overrides = BTreeMap::new();
    let Some(value) = value else { return Ok(overrides) };
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, count) =
            item.rsplit_once(':').ok_or_else(|| invalid(KEY, value, &format!("expected host:count, got {item}")))?;
        let count: usize = parse_non_negative(KEY, count.trim())?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0u16)
                .to_socket_addrs()
                .map_err(|e| invalid(KEY, value, &format!("cannot resolve {host}: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in addresses {
            overrides.insert(ip, count);
        }
    }
    Ok(overrides)
}

/// `metadata.store.username` / `metadata.store.password`: the etcd user the brokers
/// authenticate as when etcd runs with authentication enabled. Both or neither.
fn etcd_credentials(
    props: &BTreeMap<String, String>,
) -> Result<Option<rivulet_metadata::EtcdCredentials>, ConfigError> {
    match (props.get("metadata.store.username"), props.get("metadata.store.password")) {
        (None, None) => Ok(None),
        (Some(user), Some(password)) if !user.trim().is_empty() => {
            Ok(Some(rivulet_metadata::EtcdCredentials { user: user.trim().to_string(), password: password.clone() }))
        }
        (Some(user), _) => Err(invalid(
            "metadata.store.username",
            user,
            "needs a non-empty user and metadata.store.password beside it",
        )),
        (None, Some(_)) => {
            Err(invalid("metadata.store.password", "(hidden)", "needs metadata.store.username beside it"))
        }
    }
}

/// `metadata.store.ssl.*`: TLS towards etcd (see [`tls::metadata_store_tls`]).
fn etcd_tls(props: &BTreeMap<String, String>) -> Result<Option<rivulet_metadata::EtcdTls>, ConfigError> {
    tls::metadata_store_tls(props).map_err(|e| {
        let reason = format!("TLS to etcd: {}", e.reason);
        if e.unsupported {
            ConfigError::UnsupportedSecurity { key: e.key, value: e.value, reason }
        } else {
            ConfigError::Invalid { key: e.key, value: e.value, reason }
        }
    })
}

/// `authorizer.class.name` with its `super.users` and `allow.everyone.if.no.acl.found`:
/// Kafka's ACL authorizers are enforced, any other class stops the broker.
fn resolve_authorizer(
    props: &BTreeMap<String, String>,
    used: &mut Vec<String>,
) -> Result<Option<AuthorizerConfig>, ConfigError> {
    const CLASS: &str = "authorizer.class.name";
    let class = props.get(CLASS).map(|c| c.trim()).unwrap_or("");
    if class.is_empty() {
        // Kafka's default: no authorizer. An empty value is what Kafka's docs show.
        if props.contains_key(CLASS) {
            used.push(CLASS.to_string());
        }
        return Ok(None);
    }
    if !AUTHORIZER_CLASSES.contains(&class) {
        return Err(unsupported(
            CLASS,
            class,
            format!("only Kafka's ACL authorizers are enforced ({})", AUTHORIZER_CLASSES.join(", ")),
        ));
    }
    used.extend([CLASS, "super.users", "allow.everyone.if.no.acl.found"].map(String::from));
    let mut config = AuthorizerConfig::default();
    if let Some(value) = props.get("super.users") {
        for principal in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match principal.split_once(':') {
                Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                    config.super_users.insert(principal.to_string());
                }
                _ => return Err(invalid("super.users", value, &format!("{principal} is not a principal (User:name)"))),
            }
        }
    }
    if let Some(value) = props.get("allow.everyone.if.no.acl.found") {
        config.allow_everyone_if_no_acl_found = parse("allow.everyone.if.no.acl.found", value)?;
    }
    Ok(Some(config))
}

impl BrokerConfig {
    /// Reads a Java properties file into key/value pairs.
    pub fn read_properties(path: &std::path::Path) -> Result<BTreeMap<String, String>, ConfigError> {
        let file = std::fs::File::open(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        let map = java_properties::read(std::io::BufReader::new(file))
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        Ok(map.into_iter().collect())
    }

    /// Validates `props`. Returns the config and the keys that were not recognised.
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<(Self, Vec<String>), ConfigError> {
        let get = |key: &str| props.get(key).map(String::as_str);
        let node_id = match get("node.id").or(get("broker.id")) {
            Some(v) => {
                let id: i32 = parse("node.id", v)?;
                if id < 0 {
                    return Err(invalid("node.id", v, "must be >= 0"));
                }
                id
            }
            None => 1,
        };
        let listeners = parse_listeners("listeners", get("listeners").unwrap_or("PLAINTEXT://localhost:9092"))?;
        let security = resolve_security(&props, &listeners)?;
        let advertised_listeners = match get("advertised.listeners") {
            Some(v) => parse_listeners("advertised.listeners", v)?,
            None => listeners
                .iter()
                .map(|l| Listener {
                    host: if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                        "localhost".into()
                    } else {
                        l.host.clone()
                    },
                    ..l.clone()
                })
                .collect(),
        };
        let inter_broker_listener = &security.inter_broker.listener;
        if !inter_broker_listener.is_empty() && !advertised_listeners.iter().any(|l| &l.name == inter_broker_listener) {
            return Err(invalid(
                "inter.broker.listener.name",
                inter_broker_listener,
                "must be a listener name defined in advertised.listeners: the other brokers reach this one there",
            ));
        }
        let log_dirs: Vec<PathBuf> = get("log.dirs")
            .or(get("log.dir"))
            .unwrap_or("/tmp/rivulet-logs")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(invalid("log.dirs", get("log.dirs").unwrap_or(""), "no directory given"));
        }
        if log_dirs.len() > 1 {
            // Refused rather than silently using the first: an operator listing several
            // disks expects partitions spread over them, which Rivulet does not do yet.
            return Err(invalid(
                "log.dirs",
                get("log.dirs").or(get("log.dir")).unwrap_or(""),
                "Rivulet keeps all partitions in one RocksDB database and takes exactly one directory",
            ));
        }
        let timestamp_type = get("log.message.timestamp.type").unwrap_or("CreateTime");
        let log_append = match timestamp_type {
            "CreateTime" => false,
            "LogAppendTime" => true,
            other => return Err(invalid("log.message.timestamp.type", other, "expected CreateTime or LogAppendTime")),
        };
        let flush_policy = match get("log.flush.interval.messages") {
            None => FlushPolicy::OsManaged,
            Some(v) => match parse_positive::<i64>("log.flush.interval.messages", v)? {
                1 => FlushPolicy::EveryWrite,
                _ => FlushPolicy::OsManaged,
            },
        };
        let mut listener_max_connection_creation_rate = BTreeMap::new();
        for listener in &listeners {
            let key = connection_creation_rate_key(&listener.name);
            if let Some(rate) = get(&key).map(|v| connection_creation_rate(&key, v)).transpose()?.flatten() {
                listener_max_connection_creation_rate.insert(listener.name.clone(), rate);
            }
        }
        let group_consumer = consumer_group_settings(&get)?;
        let config = BrokerConfig {
            group_consumer,
            node_id,
            listeners,
            advertised_listeners,
            log_dirs,
            num_partitions: get("num.partitions").map_or(Ok(1), |v| parse_positive("num.partitions", v))?,
            default_replication_factor: get("default.replication.factor")
                .map_or(Ok(1), |v| parse_positive("default.replication.factor", v))?,
            auto_create_topics_enable: get("auto.create.topics.enable")
                .map_or(Ok(true), |v| parse_bool("auto.create.topics.enable", v))?,
            delete_topic_enable: get("delete.topic.enable")
                .map_or(Ok(true), |v| parse_bool("delete.topic.enable", v))?,
            message_max_bytes: get("message.max.bytes")
                .map_or(Ok(1_048_588), |v| parse_positive("message.max.bytes", v))?,
            socket_request_max_bytes: get("socket.request.max.bytes")
                .map_or(Ok(rivulet_protocol::frame::DEFAULT_MAX_REQUEST_BYTES), |v| {
                    parse_positive("socket.request.max.bytes", v)
                })?,
            max_connections: get("max.connections").map_or(Ok(10_000), |v| parse_positive("max.connections", v))?,
            max_connections_per_ip: get("max.connections.per.ip")
                .map_or(Ok(i32::MAX as usize), |v| parse_non_negative("max.connections.per.ip", v))?,
            max_connections_per_ip_overrides: per_ip_overrides(get("max.connections.per.ip.overrides"))?,
            max_connection_creation_rate: get("max.connection.creation.rate")
                .map_or(Ok(None), |v| connection_creation_rate("max.connection.creation.rate", v))?,
            listener_max_connection_creation_rate,
            connections_max_idle_ms: get("connections.max.idle.ms")
                .map_or(Ok(600_000), |v| parse_positive("connections.max.idle.ms", v))?,
            log_message_timestamp_type_log_append: log_append,
            flush_policy,
            broker_rack: get("broker.rack").map(str::to_string),
            group_initial_rebalance_delay_ms: get("group.initial.rebalance.delay.ms")
                .map_or(Ok(3000), |v| parse_non_negative("group.initial.rebalance.delay.ms", v))?,
            group_min_session_timeout_ms: get("group.min.session.timeout.ms")
                .map_or(Ok(6000), |v| parse_positive("group.min.session.timeout.ms", v))?,
            group_max_session_timeout_ms: get("group.max.session.timeout.ms")
                .map_or(Ok(1_800_000), |v| parse_positive("group.max.session.timeout.ms", v))?,
            offsets_topic_num_partitions: get("offsets.topic.num.partitions")
                .map_or(Ok(50), |v| parse_positive("offsets.topic.num.partitions", v))?,
            offsets_retention_minutes: get("offsets.retention.minutes")
                .map_or(Ok(10_080), |v| parse_positive("offsets.retention.minutes", v))?,
            offset_metadata_max_bytes: get("offset.metadata.max.bytes")
                .map_or(Ok(4096), |v| parse_non_negative("offset.metadata.max.bytes", v))?,
            max_request_partition_size_limit: get("max.request.partition.size.limit")
                .map_or(Ok(2000), |v| parse_positive("max.request.partition.size.limit", v))?,
            metadata_store: match get("metadata.store") {
                None | Some("") | Some("embedded") => {
                    if etcd_tls(&props)?.is_some() {
                        return Err(invalid(
                            "metadata.store.ssl.client.enable",
                            "true",
                            "metadata.store is embedded: there is no etcd to reach over TLS",
                        ));
                    }
                    None
                }
                Some(v) => {
                    let mut location = rivulet_metadata::EtcdLocation::parse(v)
                        .map_err(|reason| invalid("metadata.store", v, &reason))?;
                    location.credentials = etcd_credentials(&props)?;
                    if let Some(tls) = etcd_tls(&props)? {
                        location = location.with_tls(tls);
                    }
                    Some(location)
                }
            },
            metadata_store_connection_timeout_ms: get("metadata.store.connection.timeout.ms")
                .map_or(Ok(18_000), |v| parse_positive("metadata.store.connection.timeout.ms", v))?,
            broker_session_timeout_ms: get("broker.session.timeout.ms")
                .map_or(Ok(9_000), |v| parse_positive("broker.session.timeout.ms", v))?,
            transaction_state_log_num_partitions: get("transaction.state.log.num.partitions")
                .map_or(Ok(50), |v| parse_positive("transaction.state.log.num.partitions", v))?,
            transaction_max_timeout_ms: get("transaction.max.timeout.ms")
                .map_or(Ok(900_000), |v| parse_positive("transaction.max.timeout.ms", v))?,
            transaction_abort_interval_ms: get("transaction.abort.timed.out.transaction.cleanup.interval.ms")
                .map_or(Ok(10_000), |v| {
                    parse_positive("transaction.abort.timed.out.transaction.cleanup.interval.ms", v)
                })?,
            offsets_topic_replication_factor: get("offsets.topic.replication.factor")
                .map_or(Ok(3), |v| parse_positive("offsets.topic.replication.factor", v))?,
            transaction_state_log_replication_factor: get("transaction.state.log.replication.factor")
                .map_or(Ok(3), |v| parse_positive("transaction.state.log.replication.factor", v))?,
            min_insync_replicas: get("min.insync.replicas")
                .map_or(Ok(1), |v| parse_positive("min.insync.replicas", v))?,
            replica_lag_time_max_ms: get("replica.lag.time.max.ms")
                .map_or(Ok(30_000), |v| parse_positive("replica.lag.time.max.ms", v))?,
            replica_fetch_wait_max_ms: get("replica.fetch.wait.max.ms")
                .map_or(Ok(500), |v| parse_positive("replica.fetch.wait.max.ms", v))?,
            unclean_leader_election_enable: get("unclean.leader.election.enable")
                .map_or(Ok(false), |v| parse_bool("unclean.leader.election.enable", v))?,
            auto_leader_rebalance_enable: get("auto.leader.rebalance.enable")
                .map_or(Ok(true), |v| parse_bool("auto.leader.rebalance.enable", v))?,
            leader_imbalance_check_interval_seconds: get("leader.imbalance.check.interval.seconds")
                .map_or(Ok(300), |v| parse_positive("leader.imbalance.check.interval.seconds", v))?,
            log_retention_ms: retention_ms(&props)?,
            log_retention_bytes: get("log.retention.bytes")
                .map_or(Ok(-1), |v| parse_retention("log.retention.bytes", v))?,
            log_retention_check_interval_ms: get("log.retention.check.interval.ms")
                .map_or(Ok(300_000), |v| parse_positive("log.retention.check.interval.ms", v))?,
            log_cleanup_policy: match get("log.cleanup.policy") {
                None => "delete".to_string(),
                Some(v) => {
                    crate::topic_config::validate("cleanup.policy", v)
                        .map_err(|reason| invalid("log.cleanup.policy", v, &reason))?;
                    v.to_string()
                }
            },
            log_cleaner_enable: get("log.cleaner.enable").map_or(Ok(true), |v| parse_bool("log.cleaner.enable", v))?,
            log_cleaner_backoff_ms: get("log.cleaner.backoff.ms")
                .map_or(Ok(15_000), |v| parse_positive("log.cleaner.backoff.ms", v))?,
            log_cleaner_dedupe_buffer_size: get("log.cleaner.dedupe.buffer.size")
                .map_or(Ok(128 * 1024 * 1024), |v| parse_positive("log.cleaner.dedupe.buffer.size", v))?,
            log_cleaner_io_max_bytes_per_second: get("log.cleaner.io.max.bytes.per.second")
                .map_or(Ok(f64::INFINITY), |v| parse_positive("log.cleaner.io.max.bytes.per.second", v))?,
            leader_replication_throttled_rate: get("leader.replication.throttled.rate")
                .map_or(Ok(i64::MAX), |v| parse_positive("leader.replication.throttled.rate", v))?,
            follower_replication_throttled_rate: get("follower.replication.throttled.rate")
                .map_or(Ok(i64::MAX), |v| parse_positive("follower.replication.throttled.rate", v))?,
            producer_id_expiration_ms: get("producer.id.expiration.ms")
                .map_or(Ok(86_400_000), |v| parse_positive("producer.id.expiration.ms", v))?,
            producer_id_expiration_check_interval_ms: get("producer.id.expiration.check.interval.ms")
                .map_or(Ok(600_000), |v| parse_positive("producer.id.expiration.check.interval.ms", v))?,
            metrics_listener: match get("rivulet.metrics.listener") {
                None => None,
                Some(v) if v.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) => {
                    Some(v.to_string())
                }
                Some(v) => return Err(invalid("rivulet.metrics.listener", v, "expected host:port")),
            },
            console_listener: get("rivulet.console.listener")
                .map(|v| parse_console_listener("rivulet.console.listener", v))
                .transpose()?,
            console_allow_unauthenticated: get("rivulet.console.allow.unauthenticated")
                .map_or(Ok(false), |v| parse_bool("rivulet.console.allow.unauthenticated", v))?,
            security,
            failed_authentication_delay_ms: get("connection.failed.authentication.delay.ms")
                .map_or(Ok(100), |v| parse_non_negative("connection.failed.authentication.delay.ms", v))?,
            quota_window_num: match get("quota.window.num").map(|v| parse::<u32>("quota.window.num", v)).transpose()? {
                Some(0) => return Err(invalid("quota.window.num", "0", "Value must be at least 1")),
                other => other.unwrap_or(11),
            },
            quota_window_size_seconds: match get("quota.window.size.seconds")
                .map(|v| parse::<u32>("quota.window.size.seconds", v))
                .transpose()?
            {
                Some(0) => return Err(invalid("quota.window.size.seconds", "0", "Value must be at least 1")),
                other => other.unwrap_or(1),
            },
            raw: RawProperties::default(),
            dynamic: BTreeMap::new(),
        };
        if config.max_connections_per_ip == 0 && config.max_connections_per_ip_overrides.is_empty() {
            return Err(invalid(
                "max.connections.per.ip",
                "0",
                "can be set to zero only if max.connections.per.ip.overrides is set",
            ));
        }
        if let Some(v) = get("connections.max.reauth.ms") {
            parse_non_negative::<u64>("connections.max.reauth.ms", v)?;
        }
        // A broker of a cluster must be able to log in to its peers; a single one has none.
        if config.metadata_store.is_some() {
            if let Some((key, reason)) = &config.security.inter_broker.unusable {
                return Err(invalid(key, props.get(key.as_str()).map_or("", |_| "(as set)"), reason));
            }
        }
        // Defaults of topic configs, read when topics resolve their settings: checked here
        // so a bad value stops the broker rather than being ignored.
        for key in [
            "log.cleaner.delete.retention.ms",
            "log.cleaner.min.compaction.lag.ms",
            "log.cleaner.max.compaction.lag.ms",
        ] {
            if let Some(v) = get(key) {
                parse_non_negative::<i64>(key, v)?;
            }
        }
        if let Some(v) = get("log.cleaner.min.cleanable.ratio") {
            let ratio: f64 = parse("log.cleaner.min.cleanable.ratio", v)?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(invalid("log.cleaner.min.cleanable.ratio", v, "must be between 0 and 1"));
            }
        }
        // The console answers without asking who reads it: with ACLs in force it would show
        // every topic, group and transactional id the ACLs hide, so it starts only when the
        // operator says so.
        if let Some(console) = &config.console_listener {
            if config.security.authorizer.is_some() && !config.console_allow_unauthenticated {
                return Err(invalid(
                    "rivulet.console.listener",
                    console,
                    "an authorizer is configured and the console has no login: it would show what the ACLs \
                     hide; set rivulet.console.allow.unauthenticated=true to serve it anyway (bind it to a \
                     trusted address)",
                ));
            }
        }
        if config.socket_request_max_bytes > i32::MAX as usize {
            return Err(invalid(
                "socket.request.max.bytes",
                &config.socket_request_max_bytes.to_string(),
                "must fit in an i32",
            ));
        }
        let unknown = props
            .keys()
            .filter(|k| {
                !KNOWN_KEYS.contains(&k.as_str())
                    && !tls::METADATA_STORE_TLS_KEYS.contains(&k.as_str())
                    && !ACCEPTED_KAFKA_KEYS.contains(&k.as_str())
            })
            // Security keys reaching here were resolved above (any other one stopped the
            // start as unenforced).
            .filter(|k| !UNENFORCED_SECURITY_PREFIXES.iter().any(|prefix| k.starts_with(prefix)))
            .cloned()
            .collect();
        Ok((BrokerConfig { raw: RawProperties(props), ..config }, unknown))
    }

    /// This (static) configuration with the dynamic broker configs of the cluster default
    /// (entity `""`) and then of this broker laid over it, validated like a static one.
    pub fn with_dynamic(&self, dynamic: &rivulet_metadata::BrokerConfigs) -> Result<BrokerConfig, ConfigError> {
        let mut props = self.raw.0.clone();
        let mut levels = BTreeMap::new();
        for (entity, level) in
            [("".to_string(), DynamicLevel::ClusterDefault), (self.node_id.to_string(), DynamicLevel::Broker)]
        {
            for (key, value) in dynamic.get(&entity).into_iter().flatten() {
                if !DYNAMIC_KEYS.contains(&key.as_str()) {
                    return Err(invalid(key, value, "cannot be updated dynamically"));
                }
                props.insert(key.clone(), value.clone());
                levels.insert(key.clone(), level);
            }
        }
        let (mut config, _) = BrokerConfig::from_properties(props)?;
        config.dynamic = levels;
        Ok(config)
    }

    /// The listener clients are told about in Metadata.
    pub fn advertised(&self) -> &Listener {
        // Validation guarantees at least one listener.
        &self.advertised_listeners[0]
    }
}

impl BrokerConfig {
    fn raw_or(&self, key: &str, default: &str) -> String {
        self.raw.get(key).cloned().unwrap_or_else(|| default.to_string())
    }

    /// Every broker config Rivulet reads, with its effective value and whether it was set
    /// explicitly (for DescribeConfigs on a BROKER resource).
    pub fn describe(&self) -> Vec<(&'static str, String, bool)> {
        let listeners = |ls: &[Listener]| {
            ls.iter().map(|l| format!("{}://{}:{}", l.name, l.host, l.port)).collect::<Vec<_>>().join(",")
        };
        let values: Vec<(&'static str, String)> = vec![
            ("node.id", self.node_id.to_string()),
            ("broker.id", self.node_id.to_string()),
            ("listeners", listeners(&self.listeners)),
            ("advertised.listeners", listeners(&self.advertised_listeners)),
            ("log.dirs", self.log_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(",")),
            ("num.partitions", self.num_partitions.to_string()),
            ("default.replication.factor", self.default_replication_factor.to_string()),
            ("auto.create.topics.enable", self.auto_create_topics_enable.to_string()),
            ("delete.topic.enable", self.delete_topic_enable.to_string()),
            ("message.max.bytes", self.message_max_bytes.to_string()),
            ("socket.request.max.bytes", self.socket_request_max_bytes.to_string()),
            ("max.connections", self.max_connections.to_string()),
            ("max.connections.per.ip", self.max_connections_per_ip.to_string()),
            ("max.connections.per.ip.overrides", self.raw_or("max.connections.per.ip.overrides", "")),
            ("max.connection.creation.rate", self.max_connection_creation_rate.unwrap_or(i32::MAX as u32).to_string()),
            ("connections.max.idle.ms", self.connections_max_idle_ms.to_string()),
            ("connection.failed.authentication.delay.ms", self.failed_authentication_delay_ms.to_string()),
            ("quota.window.num", self.quota_window_num.to_string()),
            ("quota.window.size.seconds", self.quota_window_size_seconds.to_string()),
            ("group.initial.rebalance.delay.ms", self.group_initial_rebalance_delay_ms.to_string()),
            ("group.min.session.timeout.ms", self.group_min_session_timeout_ms.to_string()),
            ("group.max.session.timeout.ms", self.group_max_session_timeout_ms.to_string()),
            ("group.consumer.heartbeat.interval.ms", self.group_consumer.heartbeat_interval_ms.to_string()),
            ("group.consumer.session.timeout.ms", self.group_consumer.session_timeout_ms.to_string()),
            ("group.consumer.assignors", self.group_consumer.assignors.join(",")),
            ("group.consumer.max.size", self.group_consumer.max_size.to_string()),
            ("offsets.topic.num.partitions", self.offsets_topic_num_partitions.to_string()),
            ("offsets.retention.minutes", self.offsets_retention_minutes.to_string()),
            ("offset.metadata.max.bytes", self.offset_metadata_max_bytes.to_string()),
            ("max.request.partition.size.limit", self.max_request_partition_size_limit.to_string()),
            (
                "metadata.store",
                self.metadata_store.as_ref().map_or_else(
                    || "embedded".to_string(),
                    |l| {
                        let endpoints = l.endpoints.join(",").replace("https://", "").replace("http://", "");
                        format!("etcd://{endpoints}{}", l.root)
                    },
                ),
            ),
            ("metadata.store.connection.timeout.ms", self.metadata_store_connection_timeout_ms.to_string()),
            ("broker.session.timeout.ms", self.broker_session_timeout_ms.to_string()),
            ("offsets.topic.replication.factor", self.offsets_topic_replication_factor.to_string()),
            ("transaction.state.log.replication.factor", self.transaction_state_log_replication_factor.to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            ("replica.lag.time.max.ms", self.replica_lag_time_max_ms.to_string()),
            ("replica.fetch.wait.max.ms", self.replica_fetch_wait_max_ms.to_string()),
            ("unclean.leader.election.enable", self.unclean_leader_election_enable.to_string()),
            ("auto.leader.rebalance.enable", self.auto_leader_rebalance_enable.to_string()),
            ("leader.imbalance.check.interval.seconds", self.leader_imbalance_check_interval_seconds.to_string()),
            ("log.retention.ms", self.log_retention_ms.to_string()),
            ("log.retention.bytes", self.log_retention_bytes.to_string()),
            ("log.retention.check.interval.ms", self.log_retention_check_interval_ms.to_string()),
            ("log.cleanup.policy", self.log_cleanup_policy.clone()),
            ("log.cleaner.enable", self.log_cleaner_enable.to_string()),
            ("log.cleaner.backoff.ms", self.log_cleaner_backoff_ms.to_string()),
            ("log.cleaner.dedupe.buffer.size", self.log_cleaner_dedupe_buffer_size.to_string()),
            (
                "log.cleaner.io.max.bytes.per.second",
                self.raw_or("log.cleaner.io.max.bytes.per.second", "1.7976931348623157E308"),
            ),
            ("leader.replication.throttled.rate", self.leader_replication_throttled_rate.to_string()),
            ("follower.replication.throttled.rate", self.follower_replication_throttled_rate.to_string()),
            ("producer.id.expiration.ms", self.producer_id_expiration_ms.to_string()),
            ("producer.id.expiration.check.interval.ms", self.producer_id_expiration_check_interval_ms.to_string()),
            ("log.cleaner.min.cleanable.ratio", self.raw_or("log.cleaner.min.cleanable.ratio", "0.5")),
            ("log.cleaner.delete.retention.ms", self.raw_or("log.cleaner.delete.retention.ms", "86400000")),
            ("log.cleaner.min.compaction.lag.ms", self.raw_or("log.cleaner.min.compaction.lag.ms", "0")),
            (
                "log.cleaner.max.compaction.lag.ms",
                self.raw_or("log.cleaner.max.compaction.lag.ms", "9223372036854775807"),
            ),
            ("transaction.state.log.num.partitions", self.transaction_state_log_num_partitions.to_string()),
            ("transaction.max.timeout.ms", self.transaction_max_timeout_ms.to_string()),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                self.transaction_abort_interval_ms.to_string(),
            ),
            (
                "log.message.timestamp.type",
                if self.log_message_timestamp_type_log_append { "LogAppendTime" } else { "CreateTime" }.to_string(),
            ),
            (
                "log.flush.interval.messages",
                match self.flush_policy {
                    FlushPolicy::EveryWrite => "1".to_string(),
                    FlushPolicy::OsManaged => i64::MAX.to_string(),
                },
            ),
        ];
        values
            .into_iter()
            .map(|(key, value)| {
                let explicit = self.raw.contains_key(key)
                    || (key == "node.id" && self.raw.contains_key("broker.id"))
                    || (key == "log.retention.ms"
                        && (self.raw.contains_key("log.retention.minutes")
                            || self.raw.contains_key("log.retention.hours")));
                (key, value, explicit)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn connection_creation_rates_broker_wide_and_per_listener() {
        let (config, unknown) = BrokerConfig::from_properties(BTreeMap::new()).unwrap();
        assert_eq!(config.max_connection_creation_rate, None);
        assert!(config.listener_max_connection_creation_rate.is_empty() && unknown.is_empty());
        let (config, unknown) = BrokerConfig::from_properties(props(&[
            ("listeners", "PLAINTEXT://:19092,INTERNAL://:19093"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT"),
            ("max.connection.creation.rate", "10"),
            ("listener.name.internal.max.connection.creation.rate", "5"),
        ]))
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(config.max_connection_creation_rate, Some(10));
        assert_eq!(config.listener_max_connection_creation_rate, [("INTERNAL".to_string(), 5)].into_iter().collect());
        let (config, _) =
            BrokerConfig::from_properties(props(&[("max.connection.creation.rate", "2147483647")])).unwrap();
        assert_eq!(config.max_connection_creation_rate, None);
        assert!(BrokerConfig::from_properties(props(&[("max.connection.creation.rate", "-1")])).is_err());
        assert!(BrokerConfig::from_properties(props(&[("max.connection.creation.rate", "2147483648")])).is_err());
        // A listener that does not exist is refused, as any other unknown listener setting.
        assert!(
            BrokerConfig::from_properties(props(&[("listener.name.nope.max.connection.creation.rate", "5")])).is_err()
        );
    }

    #[test]
    fn defaults_follow_kafka() {
        let (config, unknown) = BrokerConfig::from_properties(BTreeMap::new()).unwrap();
        assert_eq!(config.message_max_bytes, 1_048_588);
        assert_eq!(config.socket_request_max_bytes, 100 * 1024 * 1024);
        assert_eq!(config.num_partitions, 1);
        assert!(config.auto_create_topics_enable);
        assert_eq!(config.advertised().port, 9092);
        assert!(unknown.is_empty());
    }

    #[test]
    fn parses_listeners_and_reports_unknown_keys() {
        let (config, unknown) = BrokerConfig::from_properties(props(&[
            ("listeners", "PLAINTEXT://:19092"),
            ("broker.id", "3"),
            ("num.io.threads", "8"),
            ("no.such.key", "x"),
        ]))
        .unwrap();
        assert_eq!(config.node_id, 3);
        assert_eq!(config.listeners[0].host, "");
        assert_eq!(config.advertised().host, "localhost");
        assert_eq!(unknown, vec!["no.such.key".to_string()]);
    }

    #[test]
    fn refuses_invalid_values_naming_the_key() {
        for (key, value) in [
            ("num.partitions", "0"),
            ("message.max.bytes", "lots"),
            ("listeners", "localhost:9092"),
            ("auto.create.topics.enable", "yes"),
            ("log.message.timestamp.type", "Whenever"),
            ("node.id", "-4"),
            ("log.dirs", "/data/a,/data/b"),
        ] {
            let err = BrokerConfig::from_properties(props(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    /// Fail closed: every security setting that is not enforced stops the broker, naming
    /// the key, instead of serving plaintext to an operator who asked for TLS or SASL.
    #[test]
    fn unenforced_security_settings_stop_the_broker() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            // TLS needs a PEM or PKCS12 key store; Kafka's default store type (JKS) is not read.
            (&[("listeners", "SSL://:9093")], "ssl.keystore.type"),
            (&[("listeners", "SSL://:9093"), ("ssl.keystore.type", "JKS")], "ssl.keystore.type"),
            // Kafka's default mechanism, GSSAPI, is not served: one must be chosen.
            (&[("listeners", "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094")], "sasl.enabled.mechanisms"),
            (
                &[("listeners", "SASL_PLAINTEXT://:9094"), ("sasl.enabled.mechanisms", "PLAIN,GSSAPI")],
                "sasl.enabled.mechanisms",
            ),
            (
                &[("listeners", "SASL_PLAINTEXT://:9094"), ("sasl.enabled.mechanisms", "GSSAPI")],
                "sasl.enabled.mechanisms",
            ),
            (
                &[
                    ("listeners", "SASL_PLAINTEXT://:9094"),
                    ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
                    ("sasl.server.callback.handler.class", "com.example.Handler"),
                ],
                "sasl.server.callback.handler.class",
            ),
            (&[("listeners", "SASL_SSL://:9095")], "ssl.keystore.type"),
            (
                &[("listeners", "EXTERNAL://:9093"), ("listener.security.protocol.map", "EXTERNAL:SSL")],
                "ssl.keystore.type",
            ),
            (&[("authorizer.class.name", "com.example.CustomAuthorizer")], "authorizer.class.name"),
            (&[("super.users", "User:admin")], "super.users"),
            (&[("sasl.enabled.mechanisms", "PLAIN")], "sasl.enabled.mechanisms"),
            (&[("ssl.keystore.location", "/etc/kafka/ks.p12")], "ssl.keystore.location"),
            (
                &[("listener.name.sasl_plaintext.plain.sasl.jaas.config", "x")],
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            ),
            (&[("allow.everyone.if.no.acl.found", "true")], "allow.everyone.if.no.acl.found"),
        ];
        for (pairs, key) in cases {
            let err = BrokerConfig::from_properties(props(pairs)).unwrap_err();
            assert!(matches!(err, ConfigError::UnsupportedSecurity { .. }), "{pairs:?}: {err}");
            assert!(err.to_string().starts_with(&format!("{key}=")), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn oauthbearer_validators_resolve_as_kafkas_callback_handlers() {
        use crate::security::oauthbearer::{ValidatorConfig, VALIDATOR_CALLBACK_HANDLER};
        let base = [("listeners", "SASL_PLAINTEXT://:9094"), ("sasl.enabled.mechanisms", "PLAIN,OAUTHBEARER")];
        let plain = ("listener.name.sasl_plaintext.plain.sasl.jaas.config", PLAIN_JAAS);
        // Unsecured by default, with the validator options of the JAAS entry.
        let jaas = (
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredValidatorRequiredScope=\"kafka admin\" unsecuredValidatorAllowableClockSkewMs=\"2000\";",
        );
        let (config, _) = BrokerConfig::from_properties(props(&[base[0], base[1], plain, jaas])).unwrap();
        let validator = config.security.sasl["SASL_PLAINTEXT"].oauthbearer.clone().unwrap();
        assert_eq!(
            validator.config,
            ValidatorConfig::Unsecured {
                principal_claim: "sub".into(),
                scope_claim: "scope".into(),
                required_scope: vec!["kafka".into(), "admin".into()],
                clock_skew_ms: 2000
            }
        );
        // Signed tokens: the JWKS file must exist at start, and only file: URLs are served.
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXch","e":"AQAB"}]}"#).unwrap();
        let url = format!("file://{}", jwks.display());
        let handler =
            ("listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class", VALIDATOR_CALLBACK_HANDLER);
        let signed = [
            base[0],
            base[1],
            plain,
            handler,
            ("sasl.oauthbearer.jwks.endpoint.url", url.as_str()),
            ("sasl.oauthbearer.expected.audience", "kafka, other"),
            ("listener.name.sasl_plaintext.sasl.oauthbearer.expected.issuer", "https://issuer"),
        ];
        let (config, unknown) = BrokerConfig::from_properties(props(&signed)).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let ValidatorConfig::Jwks { expected_audience, expected_issuer, clock_skew_s, .. } =
            config.security.sasl["SASL_PLAINTEXT"].oauthbearer.clone().unwrap().config.clone()
        else {
            panic!("not the signed validator")
        };
        assert_eq!(
            (expected_audience, expected_issuer, clock_skew_s),
            (vec!["kafka".into(), "other".into()], Some("https://issuer".into()), 30)
        );
        let missing =
            [base[0], base[1], plain, handler, ("sasl.oauthbearer.jwks.endpoint.url", "file:///nonexistent/jwks.json")];
        let err = BrokerConfig::from_properties(props(&missing)).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid value 'file:///nonexistent/jwks.json' for sasl.oauthbearer.jwks.endpoint.url"),
            "{err}"
        );
        let https = [base[0], base[1], plain, handler, ("sasl.oauthbearer.jwks.endpoint.url", "https://idp/jwks")];
        let err = BrokerConfig::from_properties(props(&https)).unwrap_err();
        assert!(matches!(err, ConfigError::UnsupportedSecurity { .. }), "{err}");
        let custom = [
            base[0],
            base[1],
            plain,
            ("listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class", "com.example.Validator"),
        ];
        assert!(matches!(
            BrokerConfig::from_properties(props(&custom)).unwrap_err(),
            ConfigError::UnsupportedSecurity { .. }
        ));
        // Not between brokers.
        let inter = [base[0], base[1], plain, ("sasl.mechanism.inter.broker.protocol", "OAUTHBEARER")];
        let (config, _) = BrokerConfig::from_properties(props(&inter)).unwrap();
        assert!(config
            .security
            .inter_broker
            .unusable
            .is_some_and(|(key, _)| key == "sasl.mechanism.inter.broker.protocol"));
    }

    #[test]
    fn the_console_is_off_by_default_and_checks_its_address() {
        let (config, _) = BrokerConfig::from_properties(props(&[])).unwrap();
        assert_eq!(config.console_listener, None);
        for good in ["127.0.0.1:8080", "localhost:0", "[::1]:8080", "console-host:8080"] {
            let (config, unknown) =
                BrokerConfig::from_properties(props(&[("rivulet.console.listener", good)])).unwrap();
            assert_eq!(config.console_listener.as_deref(), Some(good));
            assert!(unknown.is_empty(), "{unknown:?}");
        }
        for bad in ["", "8080", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":8080", "a b:8080", "[]:1"] {
            let err = BrokerConfig::from_properties(props(&[("rivulet.console.listener", bad)])).unwrap_err();
            assert!(err.to_string().contains("rivulet.console.listener"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_console_refuses_to_start_beside_an_authorizer_unless_allowed() {
        const STANDARD: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
        let secured = [("authorizer.class.name", STANDARD), ("rivulet.console.listener", "127.0.0.1:8080")];
        let err = BrokerConfig::from_properties(props(&secured)).unwrap_err();
        assert!(err.to_string().contains("rivulet.console.allow.unauthenticated"), "{err}");
        let mut allowed = secured.to_vec();
        allowed.push(("rivulet.console.allow.unauthenticated", "true"));
        let (config, _) = BrokerConfig::from_properties(props(&allowed)).unwrap();
        assert!(config.console_allow_unauthenticated);
        // Without a console the authorizer alone starts as before.
        assert!(BrokerConfig::from_properties(props(&secured[..1])).is_ok());
    }

    #[test]
    fn kafka_acl_authorizers_are_enforced_with_their_settings() {
        const STANDARD: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
        let (config, unknown) = BrokerConfig::from_properties(props(&[
            ("authorizer.class.name", STANDARD),
            ("super.users", "User:admin; User:CN=broker,O=example"),
            ("allow.everyone.if.no.acl.found", "true"),
        ]))
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let authorizer = config.security.authorizer.unwrap();
        assert_eq!(authorizer.super_users.iter().collect::<Vec<_>>(), ["User:CN=broker,O=example", "User:admin"]);
        assert!(authorizer.allow_everyone_if_no_acl_found);
        let (config, _) = BrokerConfig::from_properties(props(&[(
            "authorizer.class.name",
            "kafka.security.authorizer.AclAuthorizer",
        )]))
        .unwrap();
        assert_eq!(config.security.authorizer, Some(AuthorizerConfig::default()));
        // Kafka's default, written out: no authorizer.
        let (config, _) = BrokerConfig::from_properties(props(&[("authorizer.class.name", "")])).unwrap();
        assert!(config.security.authorizer.is_none());
        let err =
            BrokerConfig::from_properties(props(&[("authorizer.class.name", STANDARD), ("super.users", "admin")]))
                .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    }

    #[test]
    fn pkcs12_store_passwords_stay_out_of_debug_and_errors_name_the_listener() {
        let store = |name: &str| format!("{}/src/security/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let (keystore, truststore) = (store("keytool-keystore.p12"), store("keytool-truststore.p12"));
        let pairs = [
            ("listeners", "PLAINTEXT://:9092,EXTERNAL://:9093"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,EXTERNAL:SSL"),
            ("listener.name.external.ssl.keystore.type", "PKCS12"),
            ("listener.name.external.ssl.keystore.location", &keystore),
            ("listener.name.external.ssl.keystore.password", "store-secret"),
            ("listener.name.external.ssl.truststore.type", "PKCS12"),
            ("listener.name.external.ssl.truststore.location", &truststore),
            ("listener.name.external.ssl.truststore.password", "trust-secret"),
            ("listener.name.external.ssl.client.auth", "required"),
        ];
        let (config, unknown) = BrokerConfig::from_properties(props(&pairs)).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let shown = format!("{config:?}");
        assert!(!shown.contains("store-secret") && !shown.contains("trust-secret"), "{shown}");
        let mut wrong = pairs;
        wrong[4].1 = "not-the-password";
        let err = BrokerConfig::from_properties(props(&wrong)).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("listener.name.external.ssl.keystore.password"), "{message}");
        assert!(message.contains("listener EXTERNAL"), "{message}");
        assert!(!message.contains("not-the-password"), "{message}");
    }

    #[test]
    fn tls_to_etcd_reads_its_stores_and_fails_closed() {
        let store = |name: &str| format!("{}/src/security/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let (ca, keystore, truststore) =
            (store("ca.pem"), store("keytool-keystore.p12"), store("keytool-truststore.p12"));
        let etcd = ("metadata.store", "etcd://127.0.0.1:2379,127.0.0.1:2380/prod");
        let on = ("metadata.store.ssl.client.enable", "true");
        // PKCS12 told by the file name, as ZooKeeper's client tells it; the name check off.
        let (config, unknown) = BrokerConfig::from_properties(props(&[
            etcd,
            on,
            ("metadata.store.ssl.truststore.location", &truststore),
            ("metadata.store.ssl.truststore.password", "trust-secret"),
            ("metadata.store.ssl.keystore.location", &keystore),
            ("metadata.store.ssl.keystore.password", "store-secret"),
            ("metadata.store.ssl.endpoint.identification.algorithm", ""),
            ("metadata.store.username", "rivulet"),
            ("metadata.store.password", "etcd-secret"),
        ]))
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let location = config.metadata_store.clone().unwrap();
        assert_eq!(location.endpoints, ["https://127.0.0.1:2379", "https://127.0.0.1:2380"]);
        let tls = location.tls.as_ref().unwrap();
        assert_eq!((tls.trust_anchors.len(), tls.identity.is_some(), tls.verify_host_name), (1, true, false));
        let shown = format!("{config:?}");
        for secret in ["trust-secret", "store-secret", "etcd-secret", "PRIVATE KEY"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // PEM, host names verified by default, no client certificate.
        let (config, _) =
            BrokerConfig::from_properties(props(&[etcd, on, ("metadata.store.ssl.truststore.location", &ca)])).unwrap();
        let tls = config.metadata_store.unwrap().tls.unwrap();
        assert_eq!((tls.trust_anchors.len(), tls.identity.is_some(), tls.verify_host_name), (1, false, true));

        let ca_only = ("metadata.store.ssl.truststore.location", ca.as_str());
        let refused: &[(&[(&str, &str)], &str)] = &[
            // Set while TLS is off, or without an etcd: never plaintext instead.
            (&[etcd, ca_only], "metadata.store.ssl.truststore.location"),
            (&[etcd, ("metadata.store.ssl.client.enable", "false"), ca_only], "metadata.store.ssl.truststore.location"),
            (&[on, ca_only], "metadata.store.ssl.client.enable"),
            (&[etcd, on], "metadata.store.ssl.truststore.location"),
            (
                &[etcd, on, ca_only, ("metadata.store.ssl.enabled.protocols", "TLSv1.3")],
                "metadata.store.ssl.enabled.protocols",
            ),
            (&[etcd, ("metadata.store.ssl.client.enable", "yes")], "metadata.store.ssl.client.enable"),
            (
                &[etcd, on, ("metadata.store.ssl.truststore.location", "/etc/zk/truststore.jks")],
                "metadata.store.ssl.truststore.location",
            ),
            (
                &[etcd, on, ca_only, ("metadata.store.ssl.endpoint.identification.algorithm", "none")],
                "metadata.store.ssl.endpoint.identification.algorithm",
            ),
            (
                &[etcd, on, ca_only, ("metadata.store.ssl.keystore.location", &keystore)],
                "metadata.store.ssl.keystore.password",
            ),
            (
                &[
                    etcd,
                    on,
                    ca_only,
                    ("metadata.store.ssl.keystore.location", &keystore),
                    ("metadata.store.ssl.keystore.password", "Wr0ng-pass"),
                ],
                "metadata.store.ssl.keystore.password",
            ),
            (
                &[etcd, on, ca_only, ("metadata.store.ssl.keystore.password", "Wr0ng-pass")],
                "metadata.store.ssl.keystore.password",
            ),
        ];
        for (pairs, key) in refused {
            let err = BrokerConfig::from_properties(props(pairs)).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(key), "{pairs:?}: {message}");
            assert!(!message.contains("Wr0ng-pass"), "{message}");
        }
    }

    #[test]
    fn etcd_credentials_come_in_pairs_and_stay_out_of_debug() {
        let etcd = ("metadata.store", "etcd://127.0.0.1:2379/prod");
        let (config, _) = BrokerConfig::from_properties(props(&[
            etcd,
            ("metadata.store.username", "rivulet"),
            ("metadata.store.password", "etcd-secret"),
        ]))
        .unwrap();
        let location = config.metadata_store.clone().unwrap();
        assert_eq!(location.credentials.as_ref().map(|c| c.user.as_str()), Some("rivulet"));
        assert!(!format!("{config:?}").contains("etcd-secret"));
        for pairs in [
            &[etcd, ("metadata.store.username", "rivulet")][..],
            &[etcd, ("metadata.store.password", "etcd-secret")][..],
        ] {
            let err = BrokerConfig::from_properties(props(pairs)).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
            assert!(!err.to_string().contains("etcd-secret"), "{err}");
        }
    }

    const PLAIN_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;

    #[test]
    fn sasl_plaintext_listeners_resolve_mechanisms_and_users() {
        let (config, unknown) = BrokerConfig::from_properties(props(&[
            ("listeners", "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094,SCRAM://:9095"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SCRAM:SASL_PLAINTEXT",
            ),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", PLAIN_JAAS),
            ("listener.name.scram.sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("connection.failed.authentication.delay.ms", "0"),
        ]))
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(config.security.protocols["PLAINTEXT"], SecurityProtocol::Plaintext);
        assert_eq!(config.security.protocols["SCRAM"], SecurityProtocol::SaslPlaintext);
        let sasl = &config.security.sasl["SASL_PLAINTEXT"];
        assert_eq!(sasl.mechanism_names(), ["PLAIN", "SCRAM-SHA-512"]);
        assert!(sasl.plain_users.verify("alice", "alice-secret"));
        assert!(!sasl.plain_users.verify("admin", "alice-secret"));
        assert_eq!(config.security.sasl["SCRAM"].mechanism_names(), ["SCRAM-SHA-256"]);
        assert_eq!(config.failed_authentication_delay_ms, 0);
        assert!(!format!("{:?}", config.security).contains("alice-secret"), "passwords stay out of Debug");
        let whole = format!("{config:?}");
        assert!(!whole.contains("alice-secret"), "nor out of the whole config's Debug: {whole}");
        assert!(whole.contains("\"listener.name.sasl_plaintext.plain.sasl.jaas.config\": \"(hidden)\""), "{whole}");
    }

    #[test]
    fn plain_needs_a_well_formed_jaas_entry() {
        let base = [("listeners", "SASL_PLAINTEXT://:9094"), ("sasl.enabled.mechanisms", "PLAIN")];
        let err = BrokerConfig::from_properties(props(&base)).unwrap_err();
        assert!(err.to_string().contains("no JAAS configuration lists its users"), "{err}");
        let malformed = [
            base[0],
            base[1],
            ("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"x;"),
        ];
        let err = BrokerConfig::from_properties(props(&malformed)).unwrap_err();
        assert!(err.to_string().starts_with("invalid value '(hidden)' for sasl.jaas.config: malformed JAAS"), "{err}");
        let wrong_module = [base[0], base[1], ("sasl.jaas.config", "com.example.Login required;")];
        let err = BrokerConfig::from_properties(props(&wrong_module)).unwrap_err();
        assert!(err.to_string().contains("PlainLoginModule"), "{err}");
        // The global sasl.jaas.config is the fallback of the listener-specific key.
        let global = [base[0], base[1], ("sasl.jaas.config", PLAIN_JAAS)];
        let (config, _) = BrokerConfig::from_properties(props(&global)).unwrap();
        assert!(config.security.sasl["SASL_PLAINTEXT"].plain_users.verify("admin", "admin-secret"));
    }

    #[test]
    fn retention_follows_kafkas_precedence() {
        let ms = |pairs: &[(&str, &str)]| BrokerConfig::from_properties(props(pairs)).unwrap().0.log_retention_ms;
        assert_eq!(ms(&[]), 604_800_000);
        assert_eq!(ms(&[("log.retention.hours", "1")]), 3_600_000);
        assert_eq!(ms(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]), 120_000);
        assert_eq!(ms(&[("log.retention.minutes", "2"), ("log.retention.ms", "5")]), 5);
        assert_eq!(ms(&[("log.retention.ms", "-1")]), -1);
        assert!(BrokerConfig::from_properties(props(&[("log.cleanup.policy", "shred")])).is_err());
    }

    #[test]
    fn session_lifetimes_resolve_per_listener_and_mechanism() {
        let (config, unknown) = BrokerConfig::from_properties(props(&[
            ("listeners", "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094"),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", PLAIN_JAAS),
            ("connections.max.reauth.ms", "60000"),
            ("listener.name.sasl_plaintext.plain.connections.max.reauth.ms", "1500"),
        ]))
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let sasl = &config.security.sasl["SASL_PLAINTEXT"];
        assert_eq!(sasl.max_reauth_ms(SaslMechanism::Plain), 1500);
        let scram = SaslMechanism::Scram(crate::security::scram::ScramMechanism::Sha256);
        assert_eq!(sasl.max_reauth_ms(scram), 60_000);
        // The listener's own value comes between the mechanism's and the global one.
        let (config, _) = BrokerConfig::from_properties(props(&[
            ("listeners", "SASL_PLAINTEXT://:9094"),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", PLAIN_JAAS),
            ("connections.max.reauth.ms", "60000"),
            ("listener.name.sasl_plaintext.connections.max.reauth.ms", "30000"),
            ("listener.name.sasl_plaintext.plain.connections.max.reauth.ms", "1500"),
        ]))
        .unwrap();
        let sasl = &config.security.sasl["SASL_PLAINTEXT"];
        assert_eq!((sasl.max_reauth_ms(SaslMechanism::Plain), sasl.max_reauth_ms(scram)), (1500, 30_000));
        // Without a SASL listener the setting is accepted (it governs nothing), but checked.
        assert!(BrokerConfig::from_properties(props(&[("connections.max.reauth.ms", "0")])).is_ok());
        assert!(BrokerConfig::from_properties(props(&[("connections.max.reauth.ms", "-1")])).is_err());
    }

    #[test]
    fn the_inter_broker_listener_and_login_resolve_as_kafka_does() {
        const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                            username=\"broker\" password=\"broker-secret\" user_broker=\"broker-secret\";";
        let sasl = [
            ("listeners", "PLAINTEXT://:9092,INTERNAL://:9094"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT"),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
            ("listener.name.internal.plain.sasl.jaas.config", JAAS),
        ];
        let resolve = |extra: &[(&str, &str)]| {
            let mut pairs = sasl.to_vec();
            pairs.extend_from_slice(extra);
            BrokerConfig::from_properties(props(&pairs))
        };
        // Neither key: the listener named PLAINTEXT, with no login.
        let (config, _) = resolve(&[]).unwrap();
        assert_eq!(config.security.inter_broker.listener, "PLAINTEXT");
        assert!(config.security.inter_broker.sasl.is_none() && config.security.inter_broker.unusable.is_none());
        // Named, with a mechanism: the login is the JAAS entry's username and password.
        let (config, unknown) =
            resolve(&[("inter.broker.listener.name", "internal"), ("sasl.mechanism.inter.broker.protocol", "PLAIN")])
                .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let inter_broker = &config.security.inter_broker;
        assert_eq!(inter_broker.listener, "INTERNAL");
        let login = inter_broker.sasl.as_ref().unwrap();
        assert_eq!(
            (login.mechanism, login.username.as_str(), login.password.as_str()),
            (SaslMechanism::Plain, "broker", "broker-secret")
        );
        assert!(!format!("{config:?}").contains("broker-secret"));
        // SCRAM without a JAAS entry for it, or no mechanism at all: a single broker starts,
        // a cluster broker is refused naming what is missing.
        for (extra, key) in [
            (
                &[
                    ("inter.broker.listener.name", "INTERNAL"),
                    ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
                ][..],
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
            ),
            (&[("inter.broker.listener.name", "INTERNAL")][..], "sasl.mechanism.inter.broker.protocol"),
        ] {
            let (config, _) = resolve(extra).unwrap();
            assert_eq!(config.security.inter_broker.unusable.as_ref().map(|(k, _)| k.as_str()), Some(key));
            let mut clustered = extra.to_vec();
            clustered.push(("metadata.store", "etcd://127.0.0.1:2379/prod"));
            let err = resolve(&clustered).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        // Errors Kafka gives too.
        for (extra, message) in [
            (
                &[("inter.broker.listener.name", "INTERNAL"), ("security.inter.broker.protocol", "SASL_PLAINTEXT")][..],
                "only one of inter.broker.listener.name and security.inter.broker.protocol",
            ),
            (&[("inter.broker.listener.name", "REPLICATION")][..], "must be a listener name defined"),
            (&[("security.inter.broker.protocol", "SASL_SSL")][..], "no listener is named SASL_SSL"),
            (
                &[("inter.broker.listener.name", "INTERNAL"), ("sasl.mechanism.inter.broker.protocol", "GSSAPI")][..],
                "must be one of the inter-broker listener INTERNAL's sasl.enabled.mechanisms (PLAIN, SCRAM-SHA-512)",
            ),
            (
                &[("inter.broker.listener.name", "INTERNAL"), ("advertised.listeners", "PLAINTEXT://h:9092")][..],
                "must be a listener name defined in advertised.listeners",
            ),
        ] {
            let err = resolve(extra).unwrap_err();
            assert!(err.to_string().contains(message), "{extra:?}: {err}");
        }
    }

    #[test]
    fn plaintext_listeners_with_kafkas_stock_protocol_map_start() {
        // Kafka 4's config/server.properties, as shipped.
        let (config, unknown) = BrokerConfig::from_properties(props(&[
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            ),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("controller.listener.names", "CONTROLLER"),
        ]))
        .unwrap();
        assert_eq!(config.listeners.len(), 2);
        assert!(unknown.is_empty(), "{unknown:?}");
        let err = BrokerConfig::from_properties(props(&[("listeners", "INTERNAL://:9092")])).unwrap_err();
        assert!(err.to_string().contains("no security protocol defined for listener INTERNAL"), "{err}");
    }
}
