//! AlterConfigs (key 33): replaces a topic's whole set of configuration overrides, or a
//! broker entity's dynamic configs, or a client-metrics subscription's (the legacy API; `kafka-configs` and current clients use
//! IncrementalAlterConfigs, which shares [`alter_topic`] and [`alter_broker`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use rivulet_metadata::MetadataError;
use rivulet_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use rivulet_protocol::kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::config::DYNAMIC_KEYS;
use crate::request_context::RequestContext;
use crate::topic_config::{self, AlterError};

/// Kafka's `ConfigResource.Type` codes.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;
pub(super) const RESOURCE_CLIENT_METRICS: i8 = 16;

/// The outcome of altering one resource: `None` on success, else the error and its message.
pub(super) type Outcome = Option<(ResponseError, String)>;

fn refused(error: AlterError) -> Outcome {
    Some(match error {
        AlterError::InvalidRequest(message) => (ResponseError::InvalidRequest, message),
        AlterError::InvalidConfig(message) => (ResponseError::InvalidConfig, message),
    })
}

/// Alters topic `name`: `next` computes the new overrides from the current ones; with
/// `validate_only` nothing is written.
pub(super) async fn alter_topic(
    broker: &Broker,
    name: &str,
    validate_only: bool,
    next: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AlterError>,
) -> Outcome {
    let Some(topic) = broker.replicas.topics.get(name) else {
        return Some((ResponseError::UnknownTopicOrPartition, format!("Topic {name} does not exist")));
    };
    let configs = match next(&topic.record.configs) {
        Ok(configs) => configs,
        Err(e) => return refused(e),
    };
    if validate_only || configs == topic.record.configs {
        return None;
    }
    match broker.set_topic_configs(name, configs).await {
        Ok(_) => None,
        Err(MetadataError::UnknownTopic(_)) => {
            Some((ResponseError::UnknownTopicOrPartition, format!("Topic {name} does not exist")))
        }
        Err(e) => {
            tracing::error!(topic = %name, error = %e, "storing topic configs failed");
            Some((ResponseError::UnknownServerError, e.to_string()))
        }
    }
}

/// Alters the dynamic configs of broker entity `name` (`""` = the cluster default, else
/// this broker's id): `next` computes the entity's new configs from its current ones. Keys
/// Kafka cannot change at run time, or that Rivulet does not apply at run time, are
/// refused with INVALID_CONFIG, as are values the static configuration would refuse.
pub(super) async fn alter_broker(
    broker: &Broker,
    name: &str,
    validate_only: bool,
    next: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AlterError>,
) -> Outcome {
    if !name.is_empty() && name != broker.config.node_id.to_string() {
        return Some((
            ResponseError::InvalidRequest,
            format!("Unexpected broker id, expected {} or empty string, but received {name}", broker.config.node_id),
        ));
    }
    let mut all = broker.replicas.dynamic_configs();
    let current = all.get(name).cloned().unwrap_or_default();
    let configs = match next(&current) {
        Ok(configs) => configs,
        Err(e) => return refused(e),
    };
    let fixed: Vec<&String> = configs.keys().filter(|k| !DYNAMIC_KEYS.contains(&k.as_str())).collect();
    if !fixed.is_empty() {
        return Some((ResponseError::InvalidConfig, format!("Cannot update these configs dynamically: {fixed:?}")));
    }
    all.insert(name.to_string(), configs.clone());
    if let Err(e) = broker.config.with_dynamic(&all) {
        return Some((ResponseError::InvalidConfig, e.to_string()));
    }
    if validate_only || configs == current {
        return None;
    }
    match broker.set_broker_configs(name, configs).await {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(entity = %name, error = %e, "storing broker configs failed");
            Some((ResponseError::UnknownServerError, e.to_string()))
        }
    }
}

/// Alters client-metrics subscription `name` (KIP-714): `next` computes its new configs
/// from the current ones; the result is checked as Kafka's `ClientMetricsConfigs.validate`
/// does. No configs left deletes the subscription.
pub(super) async fn alter_client_metrics(
    broker: &Broker,
    name: &str,
    validate_only: bool,
    next: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AlterError>,
) -> Outcome {
    let current = broker.telemetry.subscriptions().remove(name).unwrap_or_default();
    let configs = match next(&current) {
        Ok(configs) => configs,
        Err(e) => return refused(e),
    };
    if let Err(e) = crate::telemetry::validate(name, &configs) {
        return refused(e);
    }
    if validate_only || configs == current {
        return None;
    }
    match broker.set_client_metrics_configs(name, configs).await {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(subscription = %name, error = %e, "storing client metrics configs failed");
            Some((ResponseError::UnknownServerError, e.to_string()))
        }
    }
}

/// IncrementalAlterConfigs on a client-metrics subscription: SET and DELETE, APPEND and
/// SUBTRACT on its list configs (`metrics`, `match`).
pub(super) fn apply_client_metrics_incremental(
    current: &BTreeMap<String, String>,
    changes: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, AlterError> {
    let mut next = current.clone();
    for (name, code, value) in changes {
        match topic_config::AlterOp::from_code(*code) {
            Some(topic_config::AlterOp::Set) => {
                let value = value
                    .clone()
                    .ok_or_else(|| AlterError::InvalidRequest(format!("Null value not supported for : {name}")))?;
                next.insert(name.clone(), value);
            }
            Some(topic_config::AlterOp::Delete) => {
                next.remove(name);
            }
            Some(op) if name == "metrics" || name == "match" => {
                let edited = topic_config::edit_list(next.get(name).map_or("", String::as_str), op, value.as_deref());
                next.insert(name.clone(), edited);
            }
            Some(_) => {
                return Err(AlterError::InvalidConfig(format!(
                    "Config value append/subtract is not allowed for config key: {name}"
                )))
            }
            None => return Err(AlterError::InvalidRequest(format!("Unknown alter config operation type {code}"))),
        }
    }
    Ok(next)
}

/// IncrementalAlterConfigs on a broker entity: SET and DELETE, APPEND / SUBTRACT on the one
/// list setting (`log.cleanup.policy`).
pub(super) fn apply_broker_incremental(
    current: &BTreeMap<String, String>,
    changes: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, AlterError> {
    let mut next = current.clone();
    for (name, code, value) in changes {
        match topic_config::AlterOp::from_code(*code) {
            Some(topic_config::AlterOp::Set) => {
                let value = value
                    .clone()
                    .ok_or_else(|| AlterError::InvalidRequest(format!("Null value not supported for : {name}")))?;
                next.insert(name.clone(), value);
            }
            Some(topic_config::AlterOp::Delete) => {
                next.remove(name);
            }
            Some(op) if name == "log.cleanup.policy" => {
                let edited =
                    topic_config::edit_list(next.get(name).map_or("delete", String::as_str), op, value.as_deref());
                next.insert(name.clone(), edited);
            }
            Some(_) => {
                return Err(AlterError::InvalidConfig(format!(
                    "Config value append/subtract is not allowed for config key: {name}"
                )))
            }
            None => return Err(AlterError::InvalidRequest(format!("Unknown alter config operation type {code}"))),
        }
    }
    Ok(next)
}

/// ALTER_CONFIGS on the topic, or on the cluster for broker configs, as Kafka checks
/// before anything else about the resource.
pub(super) fn alter_denied(broker: &Broker, ctx: &RequestContext, resource_type: i8, name: &str) -> Outcome {
    use rivulet_metadata::{AclOperation, ResourceType};
    match resource_type {
        RESOURCE_TOPIC if !broker.authorized(ctx, AclOperation::AlterConfigs, ResourceType::Topic, name) => {
            Some((ResponseError::TopicAuthorizationFailed, "Topic authorization failed.".to_string()))
        }
        RESOURCE_BROKER | RESOURCE_CLIENT_METRICS if !broker.authorized_cluster(ctx, AclOperation::AlterConfigs) => {
            Some((ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".to_string()))
        }
        _ => None,
    }
}

pub(super) fn unsupported_resource(resource_type: i8) -> Outcome {
    Some((ResponseError::InvalidRequest, format!("Unsupported resource type {resource_type}")))
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let denied = alter_denied(broker, ctx, resource.resource_type, &name);
        let outcome = match resource.resource_type {
            _ if denied.is_some() => denied,
            RESOURCE_TOPIC => {
                let mut configs = BTreeMap::new();
                let mut null = None;
                for config in &resource.configs {
                    match &config.value {
                        Some(value) => {
                            configs.insert(config.name.to_string(), value.to_string());
                        }
                        None => null = Some(config.name.to_string()),
                    }
                }
                alter_topic(broker, &name, request.validate_only, move |_| match null {
                    Some(key) => Err(AlterError::InvalidRequest(format!("Null value not supported for : {key}"))),
                    None => topic_config::validate_all(&configs).map(|()| configs),
                })
                .await
            }
            RESOURCE_BROKER => {
                let configs: BTreeMap<String, String> = resource
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect();
                alter_broker(broker, &name, request.validate_only, move |_| Ok(configs)).await
            }
            RESOURCE_CLIENT_METRICS => {
                let configs: BTreeMap<String, String> = resource
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect();
                alter_client_metrics(broker, &name, request.validate_only, move |_| Ok(configs)).await
            }
            other => unsupported_resource(other),
        };
        let (code, message) = outcome.map_or((0, None), |(error, message)| (error.code(), Some(str_bytes(message))));
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}
