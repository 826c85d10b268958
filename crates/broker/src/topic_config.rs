//! Topic-level configuration: the names Kafka accepts, their defaults (taken from the
//! broker's synonym when it has one), and validation for CreateTopics.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;

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
    StaticBroker = 4,
    Default = 5,
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
];

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
    if name == "max.message.bytes" && value.trim().parse::<i32>().is_ok_and(|v| v < 0) {
        return Err(format!("Invalid value {value} for configuration {name}: must be at least 0"));
    }
    Ok(())
}

/// A topic config's effective value and where it came from.
pub struct Effective {
    pub value: String,
    pub source: ConfigSource,
}

/// The effective value of `def` for a topic with `overrides`.
pub fn effective(def: &TopicConfigDef, overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> Effective {
    if let Some(v) = overrides.get(def.name) {
        return Effective { value: v.clone(), source: ConfigSource::DynamicTopic };
    }
    if let Some(v) = def.broker_synonym.and_then(|s| broker.raw.get(s)) {
        return Effective { value: v.clone(), source: ConfigSource::StaticBroker };
    }
    Effective { value: def.default.to_string(), source: ConfigSource::Default }
}

/// Settings of a topic that the produce path needs, resolved once when the topic is loaded.
#[derive(Debug, Clone, Copy)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub compacted: bool,
    /// `min.insync.replicas`: acks=all needs at least this many in-sync replicas.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`
    pub unclean_leader_election: bool,
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
        let compacted = overrides.get("cleanup.policy").is_some_and(|p| p.split(',').any(|v| v.trim() == "compact"));
        let min_insync_replicas = overrides
            .get("min.insync.replicas")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(broker.min_insync_replicas);
        let unclean_leader_election = overrides
            .get("unclean.leader.election.enable")
            .map_or(broker.unclean_leader_election_enable, |v| v.eq_ignore_ascii_case("true"));
        TopicSettings { max_message_bytes, log_append_time, compacted, min_insync_replicas, unclean_leader_election }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
