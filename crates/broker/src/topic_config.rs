//! Topic-level configuration: the names Kafka accepts, their defaults (taken from the
//! broker's synonym when it has one), and validation for CreateTopics.

use std::collections::BTreeMap;

use crate::config::{BrokerConfig, DynamicLevel};

/// Kafka's `ConfigEntry.ConfigType` codes (DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Kafka's `DescribeConfigsResponse.ConfigSource` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    /// A client-metrics subscription's own value (KIP-714).
    ClientMetrics = 7,
}

/// One topic config Kafka defines.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: &'static str,
    /// The broker config that supplies the default, if any.
    pub broker_synonym: Option<&'static str>,
    /// Allowed values for enumerations.
    pub choices: &'static [&'static str],
}

const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    broker_synonym: Option<&'static str>,
) -> TopicConfigDef {
    TopicConfigDef { name, config_type, default, broker_synonym, choices: &[] }
}

/// Every topic config name Kafka 4 accepts, with its default.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        config_type: ConfigType::List,
        default: "delete",
        broker_synonym: Some("log.cleanup.policy"),
        choices: &["delete", "compact"],
    },
    TopicConfigDef {
        name: "compression.type",
        config_type: ConfigType::String,
        default: "producer",
        broker_synonym: Some("compression.type"),
        choices: &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
    },
    def("delete.retention.ms", ConfigType::Long, "86400000", Some("log.cleaner.delete.retention.ms")),
    def("file.delete.delay.ms", ConfigType::Long, "60000", Some("log.segment.delete.delay.ms")),
    def("flush.messages", ConfigType::Long, "9223372036854775807", Some("log.flush.interval.messages")),
    def("flush.ms", ConfigType::Long, "9223372036854775807", Some("log.flush.interval.ms")),
    def("index.interval.bytes", ConfigType::Int, "4096", Some("log.index.interval.bytes")),
    def("max.compaction.lag.ms", ConfigType::Long, "9223372036854775807", Some("log.cleaner.max.compaction.lag.ms")),
    def("max.message.bytes", ConfigType::Int, "1048588", Some("message.max.bytes")),
    def("message.timestamp.after.max.ms", ConfigType::Long, "3600000", Some("log.message.timestamp.after.max.ms")),
    def(
        "message.timestamp.before.max.ms",
        ConfigType::Long,
        "9223372036854775807",
        Some("log.message.timestamp.before.max.ms"),
    ),
    TopicConfigDef {
        name: "message.timestamp.type",
        config_type: ConfigType::String,
        default: "CreateTime",
        broker_synonym: Some("log.message.timestamp.type"),
        choices: &["CreateTime", "LogAppendTime"],
    },
    def("min.cleanable.dirty.ratio", ConfigType::Double, "0.5", Some("log.cleaner.min.cleanable.ratio")),
    def("min.compaction.lag.ms", ConfigType::Long, "0", Some("log.cleaner.min.compaction.lag.ms")),
    def("min.insync.replicas", ConfigType::Int, "1", Some("min.insync.replicas")),
    def("preallocate", ConfigType::Boolean, "false", Some("log.preallocate")),
    def("retention.bytes", ConfigType::Long, "-1", Some("log.retention.bytes")),
    def("retention.ms", ConfigType::Long, "604800000", Some("log.retention.ms")),
    def("segment.bytes", ConfigType::Int, "1073741824", Some("log.segment.bytes")),
    def("segment.index.bytes", ConfigType::Int, "10485760", Some("log.index.size.max.bytes")),
    def("segment.jitter.ms", ConfigType::Long, "0", Some("log.roll.jitter.ms")),
    def("segment.ms", ConfigType::Long, "604800000", Some("log.roll.ms")),
    def("unclean.leader.election.enable", ConfigType::Boolean, "false", Some("unclean.leader.election.enable")),
    // Replicas whose replication traffic is throttled while a reassignment moves them
    // (`kafka-reassign-partitions --throttle` sets both).
    def("leader.replication.throttled.replicas", ConfigType::List, "", None),
    def("follower.replication.throttled.replicas", ConfigType::List, "", None),
];

/// Whether a `*.replication.throttled.replicas` value names `partition` on `broker`: `*`
/// for all, else `partition:broker` pairs (Kafka's `ThrottledReplicaListValidator`).
pub fn throttles(list: Option<&String>, partition: i32, broker: i32) -> bool {
    let Some(list) = list else { return false };
    list.split(',').map(str::trim).any(|entry| {
        entry == "*"
            || entry
                .split_once(':')
                .is_some_and(|(p, b)| p.trim().parse::<i32>() == Ok(partition) && b.trim().parse::<i32>() == Ok(broker))
    })
}

/// Kafka's `ThrottledReplicaListValidator`: empty, `*`, or `partition:broker` pairs.
fn valid_throttled_replicas(value: &str) -> bool {
    let entries: Vec<&str> = value.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    entries == ["*"]
        || entries.iter().all(|entry| {
            entry
                .split_once(':')
                .is_some_and(|(p, b)| p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok())
        })
}

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one topic config override as CreateTopics must (Kafka's `LogConfig.validate`).
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = find(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let ok = match def.config_type {
        ConfigType::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
        ConfigType::Int => value.trim().parse::<i32>().is_ok(),
        ConfigType::Long => value.trim().parse::<i64>().is_ok(),
        ConfigType::Double => value.trim().parse::<f64>().is_ok(),
        ConfigType::String => def.choices.is_empty() || def.choices.contains(&value),
        ConfigType::List => value.split(',').map(str::trim).all(|v| def.choices.is_empty() || def.choices.contains(&v)),
    };
    if !ok {
        return Err(format!("Invalid value {value} for configuration {name}"));
    }
    if name.ends_with(".replication.throttled.replicas") && !valid_throttled_replicas(value) {
        return Err(format!(
            "Invalid value {value} for configuration {name}: must be the literal '*' or a list of replicas in \
             the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
        ));
    }
    if name == "max.message.bytes" && value.trim().parse::<i32>().is_ok_and(|v| v < 0) {
        return Err(format!("Invalid value {value} for configuration {name}: must be at least 0"));
    }
    Ok(())
}

/// One operation of IncrementalAlterConfigs (Kafka's `AlterConfigOp.OpType` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

impl AlterOp {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(AlterOp::Set),
            1 => Some(AlterOp::Delete),
            2 => Some(AlterOp::Append),
            3 => Some(AlterOp::Subtract),
            _ => None,
        }
    }
}

/// Why a config change was refused: INVALID_REQUEST for a malformed request, INVALID_CONFIG
/// for a name or value Kafka's `LogConfig.validate` refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterError {
    InvalidRequest(String),
    InvalidConfig(String),
}

/// The overrides after applying `changes` to `current` (Kafka's
/// `ConfigAdminManager.prepareIncrementalConfigs`): SET and DELETE on any topic config,
/// APPEND and SUBTRACT only on list configs, starting from the override or else the
/// config's default; every resulting override is validated.
pub fn apply_incremental(
    current: &BTreeMap<String, String>,
    changes: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, AlterError> {
    let mut names: Vec<&str> = changes.iter().map(|(n, _, _)| n.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(AlterError::InvalidRequest("Error due to duplicate config keys".into()));
    }
    let mut next = current.clone();
    for (name, code, value) in changes {
        let op = AlterOp::from_code(*code)
            .ok_or_else(|| AlterError::InvalidRequest(format!("Unknown alter config operation type {code}")))?;
        let Some(def) = find(name) else {
            // Kafka validates the resulting configs, not the names of the operations
            // (`ConfigurationControlManager.validateAlterConfig`): deleting a name that is not
            // set changes nothing and succeeds, even one this broker does not define. MirrorMaker
            // 2 sends a DELETE for every config at its default on the source cluster, Kafka's
            // tiered-storage ones (`remote.log.delete.on.disable`, ...) included.
            if op == AlterOp::Delete {
                continue;
            }
            return Err(AlterError::InvalidConfig(format!("Unknown topic config name: {name}")));
        };
        match op {
            AlterOp::Set => {
                let value = value
                    .clone()
                    .ok_or_else(|| AlterError::InvalidRequest(format!("Null value not supported for : {name}")))?;
                next.insert(name.clone(), value);
            }
            AlterOp::Delete => {
                next.remove(name);
            }
            AlterOp::Append | AlterOp::Subtract => {
                if def.config_type != ConfigType::List {
                    let verb = if op == AlterOp::Append { "append" } else { "subtract" };
                    return Err(AlterError::InvalidConfig(format!(
                        "Config value {verb} is not allowed for config key: {name}"
                    )));
                }
                let edited = edit_list(next.get(name).map_or(def.default, String::as_str), op, value.as_deref());
                next.insert(name.clone(), edited);
            }
        }
    }
    validate_all(&next)?;
    Ok(next)
}

/// APPEND adds the items of `value` missing from the comma-separated list `old`, SUBTRACT
/// removes them (Kafka's list semantics for IncrementalAlterConfigs).
pub fn edit_list(old: &str, op: AlterOp, value: Option<&str>) -> String {
    let mut items: Vec<String> = old.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_string).collect();
    for item in value.unwrap_or("").split(',').map(str::trim).filter(|v| !v.is_empty()) {
        if op == AlterOp::Append && !items.iter().any(|v| v == item) {
            items.push(item.to_string());
        } else if op == AlterOp::Subtract {
            items.retain(|v| v != item);
        }
    }
    items.join(",")
}

/// Checks every override of a topic (AlterConfigs replaces them all at once).
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), AlterError> {
    for (name, value) in configs {
        validate(name, value).map_err(AlterError::InvalidConfig)?;
    }
    Ok(())
}

/// A topic config's effective value and where it came from.
pub struct Effective {
    pub value: String,
    pub source: ConfigSource,
}

/// Where a broker setting came from: a dynamic config (per broker or cluster default) or
/// the static configuration.
pub fn broker_source(broker: &BrokerConfig, key: &str) -> ConfigSource {
    match broker.dynamic.get(key) {
        Some(DynamicLevel::Broker) => ConfigSource::DynamicBroker,
        Some(DynamicLevel::ClusterDefault) => ConfigSource::DynamicDefaultBroker,
        None => ConfigSource::StaticBroker,
    }
}

/// The broker setting a topic config falls back to, if the broker's configuration sets
/// it: `(name, value, source)` as DescribeConfigs shows the synonym.
pub fn broker_value(def: &TopicConfigDef, broker: &BrokerConfig) -> Option<(&'static str, String, ConfigSource)> {
    let synonym = def.broker_synonym?;
    if def.name == "retention.ms" {
        // log.retention.ms, else .minutes, else .hours, already converted to milliseconds.
        for key in ["log.retention.ms", "log.retention.minutes", "log.retention.hours"] {
            if broker.raw.contains_key(key) {
                return Some((key, broker.log_retention_ms.to_string(), broker_source(broker, key)));
            }
        }
    }
    broker.raw.get(synonym).map(|v| (synonym, v.clone(), broker_source(broker, synonym)))
}

/// The effective value of `def` for a topic with `overrides`.
pub fn effective(def: &TopicConfigDef, overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> Effective {
    if let Some(v) = overrides.get(def.name) {
        return Effective { value: v.clone(), source: ConfigSource::DynamicTopic };
    }
    if let Some((_, v, source)) = broker_value(def, broker) {
        return Effective { value: v, source };
    }
    Effective { value: def.default.to_string(), source: ConfigSource::Default }
}

/// Settings of a topic that the produce path needs, resolved once when the topic is loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub compacted: bool,
    /// `min.insync.replicas`: acks=all needs at least this many in-sync replicas.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`
    pub unclean_leader_election: bool,
    /// `cleanup.policy` includes `delete`: retention applies.
    pub delete_retention: bool,
    /// `retention.ms`; negative = forever.
    pub retention_ms: i64,
    /// `retention.bytes` per partition; negative = no limit.
    pub retention_bytes: i64,
    /// `delete.retention.ms`: how long the cleaner keeps tombstones.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms` / `max.compaction.lag.ms`
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`
    pub min_cleanable_dirty_ratio: f64,
}

impl TopicSettings {
    pub fn resolve(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> Self {
        let max_message_bytes = overrides
            .get("max.message.bytes")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(broker.message_max_bytes);
        let log_append_time = match overrides.get("message.timestamp.type") {
            Some(v) => v == "LogAppendTime",
            None => broker.log_message_timestamp_type_log_append,
        };
        let policy = overrides.get("cleanup.policy").unwrap_or(&broker.log_cleanup_policy);
        let compacted = policy.split(',').any(|v| v.trim() == "compact");
        let delete_retention = policy.split(',').any(|v| v.trim() == "delete");
        let retention_ms =
            overrides.get("retention.ms").and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(broker.log_retention_ms);
        let retention_bytes = overrides
            .get("retention.bytes")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(broker.log_retention_bytes);
        let min_insync_replicas = overrides
            .get("min.insync.replicas")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(broker.min_insync_replicas);
        let unclean_leader_election = overrides
            .get("unclean.leader.election.enable")
            .map_or(broker.unclean_leader_election_enable, |v| v.eq_ignore_ascii_case("true"));
        // Override, else the broker's synonym, else Kafka's default (validated on the way in).
        let value = |name: &str| find(name).map(|def| effective(def, overrides, broker).value);
        let long = |name: &str, default: i64| value(name).and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(default);
        TopicSettings {
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
            min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.5),
            max_message_bytes,
            log_append_time,
            compacted,
            min_insync_replicas,
            unclean_leader_election,
            delete_retention,
            retention_ms,
            retention_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replica_lists_as_kafka_reads_them() {
        assert!(validate("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
        assert!(validate("leader.replication.throttled.replicas", "*").is_ok());
        assert!(validate("follower.replication.throttled.replicas", "").is_ok());
        assert!(validate("leader.replication.throttled.replicas", "0-1").is_err());
        assert!(validate("leader.replication.throttled.replicas", "*,0:1").is_err());
        let list = "0:1, 2:3".to_string();
        assert!(throttles(Some(&list), 0, 1) && throttles(Some(&list), 2, 3));
        assert!(!throttles(Some(&list), 0, 3) && !throttles(None, 0, 1));
        assert!(throttles(Some(&"*".to_string()), 7, 9));
    }

    #[test]
    fn validates_names_types_and_choices() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate("max.message.bytes", "-5").is_err());
    }

    fn change(name: &str, op: AlterOp, value: Option<&str>) -> (String, i8, Option<String>) {
        (name.to_string(), op as i8, value.map(str::to_string))
    }

    #[test]
    fn incremental_changes_follow_kafka() {
        let current: BTreeMap<String, String> =
            [("retention.ms".to_string(), "1000".to_string())].into_iter().collect();
        let next = apply_incremental(
            &current,
            &[
                change("retention.ms", AlterOp::Delete, None),
                change("retention.bytes", AlterOp::Set, Some("2048")),
                change("cleanup.policy", AlterOp::Append, Some("compact")),
            ],
        )
        .unwrap();
        assert_eq!(next.get("retention.ms"), None);
        assert_eq!(next.get("retention.bytes").map(String::as_str), Some("2048"));
        // Appended to the default, `delete`.
        assert_eq!(next.get("cleanup.policy").map(String::as_str), Some("delete,compact"));
        let next = apply_incremental(&next, &[change("cleanup.policy", AlterOp::Subtract, Some("delete"))]).unwrap();
        assert_eq!(next.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert!(matches!(
            apply_incremental(&current, &[change("retention.ms", AlterOp::Append, Some("1"))]),
            Err(AlterError::InvalidConfig(_))
        ));
        assert!(matches!(
            apply_incremental(&current, &[change("retention.ms", AlterOp::Set, Some("soon"))]),
            Err(AlterError::InvalidConfig(_))
        ));
        assert!(matches!(
            apply_incremental(&current, &[change("no.such", AlterOp::Set, Some("1"))]),
            Err(AlterError::InvalidConfig(_))
        ));
        // Deleting a name that is not set, even an unknown one, is a no-op as in Kafka.
        assert_eq!(
            apply_incremental(
                &current,
                &[
                    change("remote.log.delete.on.disable", AlterOp::Delete, None),
                    change("retention.bytes", AlterOp::Delete, None)
                ]
            ),
            Ok(current.clone())
        );
        assert!(matches!(
            apply_incremental(&current, &[change("no.such", AlterOp::Append, Some("1"))]),
            Err(AlterError::InvalidConfig(_))
        ));
        assert!(matches!(
            apply_incremental(
                &current,
                &[change("retention.ms", AlterOp::Set, Some("1")), change("retention.ms", AlterOp::Delete, None)]
            ),
            Err(AlterError::InvalidRequest(_))
        ));
        assert!(matches!(
            apply_incremental(&current, &[("retention.ms".to_string(), 9, None)]),
            Err(AlterError::InvalidRequest(_))
        ));
    }
}
