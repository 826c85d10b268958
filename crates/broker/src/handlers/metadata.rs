//! Metadata (key 3): brokers, cluster id, controller, and topics with their partitions.
//! Topics asked for by name may be auto-created (`auto.create.topics.enable`).
//!
//! With an authorizer, as Kafka's `handleTopicMetadataRequest`: a listing of all topics
//! leaves out those the principal may not DESCRIBE; a topic asked for by name or id
//! without DESCRIBE is TOPIC_AUTHORIZATION_FAILED (so its existence is not revealed), as
//! is an auto-creation without CREATE on the cluster or the topic.

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use rivulet_protocol::ResponseError;
use std::collections::HashSet;

use uuid::Uuid;

use std::sync::Arc;
use std::time::Duration;

use super::{code, str_bytes, until_deadline};
use crate::broker::{validate_topic_name, Broker};
use crate::replication::topics::Topic;
use crate::request_context::RequestContext;

fn topic_response(topic: &Topic, live: &HashSet<i32>) -> MetadataResponseTopic {
    let ids = |ids: &[i32]| ids.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    let partitions = topic
        .replicas
        .iter()
        .map(|replica| {
            let view = replica.view();
            // A leader that is not (or no longer) a live broker cannot be reached.
            let leader = if view.leader >= 0 && live.contains(&view.leader) { view.leader } else { -1 };
            let offline: Vec<i32> = view.replicas.iter().copied().filter(|r| !live.contains(r)).collect();
            MetadataResponsePartition::default()
                .with_error_code(code((leader < 0).then_some(ResponseError::LeaderNotAvailable)))
                .with_partition_index(replica.index)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(view.leader_epoch)
                .with_replica_nodes(ids(&view.replicas))
                .with_isr_nodes(ids(&view.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.record.name.clone()))))
        .with_topic_id(topic.record.topic_id)
        .with_is_internal(topic.record.internal)
        .with_partitions(partitions)
}

fn error_topic(name: Option<String>, topic_id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(topic_id)
        .with_error_code(code(Some(error)))
}

/// How long a Metadata request waits for a topic it auto-creates; past it the topic is
/// LEADER_NOT_AVAILABLE (retriable) while the creation goes on, as Kafka answers during
/// an auto-creation.
const AUTO_CREATE_WAIT: Duration = Duration::from_secs(5);

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let version = ctx.api_version;
    let brokers = broker.brokers_for(&ctx.listener_name);
    let live: HashSet<i32> = brokers.iter().map(|b| b.node_id).collect();
    let mut response = MetadataResponse::default()
        .with_brokers(
            brokers
                .into_iter()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.node_id))
                        .with_host(str_bytes(b.host))
                        .with_port(i32::from(b.port))
                        .with_rack(b.rack.map(str_bytes))
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id()));

    // v0-v3 have no flag and always allow auto-creation.
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    let describable = |name: &str| broker.may(ctx, AclOperation::Describe, ResourceType::Topic, name);
    let all_topics = || -> Vec<MetadataResponseTopic> {
        broker
            .replicas
            .topics
            .all()
            .iter()
            .filter(|t| describable(&t.record.name))
            .map(|t| topic_response(t, &live))
            .collect()
    };
    response.topics = match request.topics {
        // v0 sends an empty list for "all topics"; v1+ sends null.
        None => all_topics(),
        Some(wanted) if wanted.is_empty() && version == 0 => all_topics(),
        Some(wanted) => {
            let mut topics = Vec::with_capacity(wanted.len());
            for item in wanted {
                let Some(name) = item.name.map(|n| n.0.to_string()) else {
                    // v10+: lookup by topic id.
                    topics.push(match broker.replicas.topics.get_by_id(&item.topic_id) {
                        Some(topic) if describable(&topic.record.name) => topic_response(&topic, &live),
                        Some(_) => error_topic(None, item.topic_id, ResponseError::TopicAuthorizationFailed),
                        None => error_topic(None, item.topic_id, ResponseError::UnknownTopicId),
                    });
                    continue;
                };
                if validate_topic_name(&name).is_err() {
                    topics.push(error_topic(Some(name), Uuid::nil(), ResponseError::InvalidTopicException));
                    continue;
                }
                if !broker.authorized(ctx, AclOperation::Describe, ResourceType::Topic, &name) {
                    topics.push(error_topic(Some(name), Uuid::nil(), ResponseError::TopicAuthorizationFailed));
                    continue;
                }
                if let Some(topic) = broker.replicas.topics.get(&name) {
                    topics.push(topic_response(&topic, &live));
                    continue;
                }
                if allow_auto_create && broker.config.auto_create_topics_enable && !broker.may_create_topic(ctx, &name)
                {
                    topics.push(error_topic(Some(name), Uuid::nil(), ResponseError::TopicAuthorizationFailed));
                    continue;
                }
                let (creating, subject) = (broker.clone(), name.clone());
                let deadline = tokio::time::Instant::now() + AUTO_CREATE_WAIT;
                let found = until_deadline(deadline, "Metadata auto-creation", &name, async move {
                    creating.get_or_create_topic(&subject, allow_auto_create).await
                })
                .await;
                topics.push(match found {
                    Ok(Ok(Some(topic))) => topic_response(&topic, &live),
                    Ok(Ok(None)) => error_topic(Some(name), Uuid::nil(), ResponseError::UnknownTopicOrPartition),
                    Err(_) => error_topic(Some(name), Uuid::nil(), ResponseError::LeaderNotAvailable),
                    Ok(Err(e)) => {
                        tracing::warn!(topic = %name, error = %e, "auto-creating topic failed");
                        error_topic(Some(name), Uuid::nil(), ResponseError::LeaderNotAvailable)
                    }
                });
            }
            topics
        }
    };
    if request.include_topic_authorized_operations && version >= 8 {
        for topic in response.topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &topic.name {
                topic.topic_authorized_operations =
                    broker.authorized_operations(ctx, ResourceType::Topic, name.0.as_str());
            }
        }
    }
    if request.include_cluster_authorized_operations && (8..=10).contains(&version) {
        response.cluster_authorized_operations =
            broker.authorized_operations(ctx, ResourceType::Cluster, crate::security::authorizer::CLUSTER_NAME);
    }
    response
}
