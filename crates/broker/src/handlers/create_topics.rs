//! CreateTopics (key 19): validate each topic as Kafka's controller does, then create it
//! (or, with `validate_only`, only say whether it could be created).
//!
//! With an authorizer: CREATE on the cluster or the topic (TOPIC_AUTHORIZATION_FAILED);
//! the created topic's configs are returned only with DESCRIBE_CONFIGS on it.

use std::collections::{BTreeMap, HashSet};

use rivulet_metadata::{AclOperation, MetadataError, NewTopic, ResourceType};
use rivulet_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rivulet_protocol::kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use rivulet_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use rivulet_protocol::ResponseError;

use std::sync::Arc;

use super::{deadline_in, str_bytes, until_deadline};
use crate::broker::{validate_topic_name, Broker};
use crate::request_context::RequestContext;
use crate::topic_config::{self, TOPIC_CONFIGS};

struct Refusal {
    error: ResponseError,
    message: String,
}

fn refuse(error: ResponseError, message: impl Into<String>) -> Refusal {
    Refusal { error, message: message.into() }
}

/// Checks one topic and turns it into a [`NewTopic`].
fn validate(broker: &Broker, topic: &CreatableTopic, live: &[i32]) -> Result<NewTopic, Refusal> {
    let name = topic.name.0.to_string();
    validate_topic_name(&name).map_err(|m| refuse(ResponseError::InvalidTopicException, m))?;
    if broker.replicas.topics.get(&name).is_some() {
        return Err(refuse(ResponseError::TopicAlreadyExists, format!("Topic '{name}' already exists.")));
    }
    let (partitions, replication_factor) = if topic.assignments.is_empty() {
        let partitions = match topic.num_partitions {
            -1 => broker.config.num_partitions,
            n if n <= 0 => {
                return Err(refuse(ResponseError::InvalidPartitions, "Number of partitions must be larger than 0."))
            }
            n => n,
        };
        let replication_factor = match topic.replication_factor {
            -1 => broker.config.default_replication_factor,
            n if n <= 0 => {
                return Err(refuse(
                    ResponseError::InvalidReplicationFactor,
                    "Replication factor must be larger than 0.",
                ))
            }
            n => n,
        };
        (partitions, replication_factor)
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(refuse(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let mut indexes: Vec<i32> = topic.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
            return Err(refuse(
                ResponseError::InvalidReplicaAssignment,
                "Partitions should be a consecutive 0-based integer sequence",
            ));
        }
        let factor = topic.assignments.first().map_or(0, |a| a.broker_ids.len());
        for assignment in &topic.assignments {
            let ids: HashSet<i32> = assignment.broker_ids.iter().map(|b| b.0).collect();
            if ids.len() != assignment.broker_ids.len() {
                return Err(refuse(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Duplicate brokers not allowed in replica assignment: {:?}", assignment.broker_ids),
                ));
            }
            if ids.iter().any(|b| !live.contains(b)) {
                return Err(refuse(
                    ResponseError::InvalidReplicaAssignment,
                    "Replica assignment names a broker that is not registered",
                ));
            }
            if assignment.broker_ids.len() != factor || factor == 0 {
                return Err(refuse(
                    ResponseError::InvalidReplicaAssignment,
                    "All partitions should have the same number of replicas",
                ));
            }
        }
        (topic.assignments.len() as i32, factor as i16)
    };
    let live = live.len();
    if replication_factor as usize > live {
        return Err(refuse(
            ResponseError::InvalidReplicationFactor,
            format!("Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {live} broker(s) are registered."),
        ));
    }
    let mut assignments: Vec<_> = topic.assignments.iter().collect();
    assignments.sort_by_key(|a| a.partition_index);
    // A single node keeps no replica lists: it holds every partition itself.
    let assignment = if broker.membership.assigns_replicas() {
        assignments.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect()
    } else {
        vec![]
    };
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        let key = config.name.to_string();
        let Some(value) = config.value.as_ref().map(|v| v.to_string()) else {
            return Err(refuse(
                ResponseError::InvalidConfig,
                format!("Null value not supported for topic configs: {key}"),
            ));
        };
        topic_config::validate(&key, &value).map_err(|m| refuse(ResponseError::InvalidConfig, m))?;
        configs.insert(key, value);
    }
    Ok(NewTopic { name, partitions, replication_factor, configs, internal: false, assignment })
}

/// The effective configs of a topic, as CreateTopics v5+ returns them.
fn describe(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let effective = topic_config::effective(def, overrides, &broker.config);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(def.name))
                .with_value(Some(str_bytes(effective.value)))
                .with_config_source(effective.source as i8)
        })
        .collect()
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let version = ctx.api_version;
    let deadline = deadline_in(request.timeout_ms);
    tracing::debug!(
        topics = ?request.topics.iter().map(|t| t.name.0.as_str()).collect::<Vec<_>>(),
        timeout_ms = request.timeout_ms,
        validate_only = request.validate_only,
        "CreateTopics"
    );
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        request.topics.iter().map(|t| t.name.0.to_string()).filter(|n| !seen.insert(n.clone())).collect();
    let mut results = Vec::with_capacity(request.topics.len());
    let live: Vec<i32> = broker.membership.live_brokers().await.iter().map(|b| b.node_id).collect();
    for topic in &request.topics {
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let name = topic.name.0.to_string();
        let outcome = if duplicates.contains(&name) {
            Err(refuse(
                ResponseError::InvalidRequest,
                format!("Create topics request from client contains duplicate topic name {name}"),
            ))
        } else if !broker.may_create_topic(ctx, &name) {
            Err(refuse(ResponseError::TopicAuthorizationFailed, "Authorization failed."))
        } else {
            validate(broker, topic, &live)
        };
        let new_topic = match outcome {
            Ok(t) => t,
            Err(refusal) => {
                results.push(
                    result.with_error_code(refusal.error.code()).with_error_message(Some(str_bytes(refusal.message))),
                );
                continue;
            }
        };
        let configs_visible = broker.may(ctx, AclOperation::DescribeConfigs, ResourceType::Topic, &name);
        let configs = (version >= 5 && configs_visible).then(|| describe(broker, &new_topic.configs));
        let config_error = if configs_visible { 0 } else { ResponseError::TopicAuthorizationFailed.code() };
        let shape = |r: CreatableTopicResult, partitions: i32, rf: i16| {
            if version >= 5 {
                r.with_num_partitions(partitions)
                    .with_replication_factor(rf)
                    .with_configs(configs.clone())
                    .with_topic_config_error_code(config_error)
            } else {
                r
            }
        };
        if request.validate_only {
            results.push(shape(result, new_topic.partitions, new_topic.replication_factor));
            continue;
        }
        let (partitions, rf) = (new_topic.partitions, new_topic.replication_factor);
        let creating = broker.clone();
        match until_deadline(deadline, "CreateTopics", &name, async move { creating.create_topic(new_topic).await })
            .await
        {
            Err(error) => {
                results.push(result.with_error_code(error.code()).with_error_message(Some(str_bytes(format!(
                    "Topic '{name}' was not created within the request's timeout of {} ms; it may still be created.",
                    request.timeout_ms
                )))))
            }
            Ok(Ok(created)) => results.push(shape(result.with_topic_id(created.record.topic_id), partitions, rf)),
            Ok(Err(MetadataError::TopicExists(_))) => results.push(
                result
                    .with_error_code(ResponseError::TopicAlreadyExists.code())
                    .with_error_message(Some(str_bytes(format!("Topic '{name}' already exists.")))),
            ),
            Ok(Err(MetadataError::InvalidReplication(message))) => results.push(
                result
                    .with_error_code(ResponseError::InvalidReplicationFactor.code())
                    .with_error_message(Some(str_bytes(message))),
            ),
            Ok(Err(e)) => {
                tracing::error!(topic = %name, error = %e, "creating topic failed");
                results.push(
                    result
                        .with_error_code(ResponseError::UnknownServerError.code())
                        .with_error_message(Some(str_bytes(e.to_string()))),
                );
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
