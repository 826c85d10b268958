//! DescribeConfigs (key 32): topic and broker configs, as `kafka-configs --describe` and
//! `kafka-topics --describe` ask for them, and client-metrics subscriptions
//! (`kafka-client-metrics --describe`).

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use rivulet_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::config::DYNAMIC_KEYS;
use crate::request_context::RequestContext;
use crate::topic_config::{self, ConfigSource, ConfigType, TOPIC_CONFIGS};

/// Kafka's `ConfigResource.Type` codes.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_CLIENT_METRICS: i8 = 16;

fn entry(
    name: &str,
    value: String,
    source: ConfigSource,
    config_type: ConfigType,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(read_only)
        .with_config_source(source as i8)
        .with_config_type(config_type as i8)
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref().is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
}

fn broker_config_type(name: &str) -> ConfigType {
    match name {
        "auto.create.topics.enable"
        | "delete.topic.enable"
        | "log.cleaner.enable"
        | "unclean.leader.election.enable"
        | "auto.leader.rebalance.enable" => ConfigType::Boolean,
        "listeners" | "advertised.listeners" | "log.dirs" | "log.message.timestamp.type" => ConfigType::String,
        "log.flush.interval.messages"
        | "connections.max.idle.ms"
        | "offsets.retention.minutes"
        | "log.retention.ms"
        | "log.retention.bytes"
        | "log.retention.check.interval.ms"
        | "log.cleaner.backoff.ms"
        | "log.cleaner.dedupe.buffer.size" => ConfigType::Long,
        "log.cleanup.policy" => ConfigType::List,
        "log.cleaner.min.cleanable.ratio" => ConfigType::Double,
        "log.cleaner.delete.retention.ms"
        | "log.cleaner.min.compaction.lag.ms"
        | "log.cleaner.max.compaction.lag.ms" => ConfigType::Long,
        _ => ConfigType::Int,
    }
}

/// Every source a topic config's value could come from, highest precedence first, as
/// Kafka lists them (`{DYNAMIC_TOPIC_CONFIG:retention.ms=..., DEFAULT_CONFIG:...}`).
fn synonyms(
    def: &topic_config::TopicConfigDef,
    overrides: &std::collections::BTreeMap<String, String>,
    broker: &crate::config::BrokerConfig,
) -> Vec<DescribeConfigsSynonym> {
    let synonym = |name: &str, value: &str, source: ConfigSource| {
        DescribeConfigsSynonym::default()
            .with_name(str_bytes(name))
            .with_value(Some(str_bytes(value)))
            .with_source(source as i8)
    };
    let mut out = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        out.push(synonym(def.name, v, ConfigSource::DynamicTopic));
    }
    if let Some((name, v, source)) = topic_config::broker_value(def, broker) {
        out.push(synonym(name, &v, source));
    }
    out.push(synonym(def.broker_synonym.unwrap_or(def.name), def.default, ConfigSource::Default));
    out
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            // DESCRIBE_CONFIGS on the topic, or on the cluster for broker configs.
            let denied = match resource.resource_type {
                RESOURCE_TOPIC
                    if !broker.authorized(
                        ctx,
                        AclOperation::DescribeConfigs,
                        ResourceType::Topic,
                        resource.resource_name.as_str(),
                    ) =>
                {
                    Some(ResponseError::TopicAuthorizationFailed)
                }
                RESOURCE_BROKER | RESOURCE_CLIENT_METRICS
                    if !broker.authorized_cluster(ctx, AclOperation::DescribeConfigs) =>
                {
                    Some(ResponseError::ClusterAuthorizationFailed)
                }
                _ => None,
            };
            if let Some(error) = denied {
                return result.with_error_code(error.code()).with_error_message(Some(str_bytes(error.to_string())));
            }
            match resource.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = broker.replicas.topics.get(resource.resource_name.as_str()) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Topic '{}' does not exist.",
                                resource.resource_name.as_str()
                            ))));
                    };
                    let config = broker.replicas.effective_config();
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .filter(|def| wanted(&resource.configuration_keys, def.name))
                        .map(|def| {
                            let effective = topic_config::effective(def, &topic.record.configs, &config);
                            let described = entry(def.name, effective.value, effective.source, def.config_type, false);
                            if request.include_synonyms {
                                described.with_synonyms(synonyms(def, &topic.record.configs, &config))
                            } else {
                                described
                            }
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = resource.resource_name.as_str();
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return result.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(
                            str_bytes(format!(
                                "Unexpected broker id, expected {} or empty string, but received {name}",
                                broker.config.node_id
                            )),
                        ));
                    }
                    if name.is_empty() {
                        // The cluster-wide default entity: its dynamic configs only, as Kafka.
                        let defaults = broker.replicas.dynamic_configs().remove("").unwrap_or_default();
                        let configs = defaults
                            .into_iter()
                            .filter(|(key, _)| wanted(&resource.configuration_keys, key))
                            .map(|(key, value)| {
                                let config_type = broker_config_type(&key);
                                entry(&key, value, ConfigSource::DynamicDefaultBroker, config_type, false)
                            })
                            .collect();
                        return result.with_configs(configs);
                    }
                    let config = broker.replicas.effective_config();
                    let configs = config
                        .describe()
                        .into_iter()
                        .filter(|(key, _, _)| wanted(&resource.configuration_keys, key))
                        .map(|(key, value, explicit)| {
                            let source = if config.dynamic.contains_key(key) {
                                topic_config::broker_source(&config, key)
                            } else if explicit {
                                ConfigSource::StaticBroker
                            } else {
                                ConfigSource::Default
                            };
                            let read_only = !DYNAMIC_KEYS.contains(&key);
                            let synonym = DescribeConfigsSynonym::default()
                                .with_name(str_bytes(key))
                                .with_value(Some(str_bytes(value.clone())))
                                .with_source(source as i8);
                            let described = entry(key, value, source, broker_config_type(key), read_only);
                            if request.include_synonyms {
                                described.with_synonyms(vec![synonym])
                            } else {
                                described
                            }
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_CLIENT_METRICS => {
                    let name = resource.resource_name.as_str();
                    if name.is_empty() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(str_bytes("Client metrics subscription name must not be empty")));
                    }
                    // Every config of the subscription: its own values, the defaults for
                    // the rest (an unknown name describes as defaults only, as in Kafka).
                    let stored = broker.telemetry.subscriptions().remove(name).unwrap_or_default();
                    let defaults = [
                        ("metrics", String::new(), ConfigType::List),
                        ("interval.ms", crate::telemetry::DEFAULT_INTERVAL_MS.to_string(), ConfigType::Int),
                        ("match", String::new(), ConfigType::List),
                    ];
                    let configs = defaults
                        .into_iter()
                        .filter(|(key, _, _)| wanted(&resource.configuration_keys, key))
                        .map(|(key, default, config_type)| match stored.get(key) {
                            Some(value) => entry(key, value.clone(), ConfigSource::ClientMetrics, config_type, false),
                            None => entry(key, default, ConfigSource::Default, config_type, false),
                        })
                        .collect();
                    result.with_configs(configs)
                }
                other => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!("Unsupported resource type {other}")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
