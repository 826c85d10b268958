//! DescribeTopicPartitions (key 75, v0, KIP-966): topics and their partitions a page at a
//! time, as `kafka-topics --describe` and Kafka 4's AdminClient ask for them, served as
//! Kafka's `DescribeTopicPartitionsRequestHandler`:
//!
//! * No topics named: every topic the principal may DESCRIBE; named topics: those, with
//!   TOPIC_AUTHORIZATION_FAILED (and no topic id) for the others and
//!   UNKNOWN_TOPIC_OR_PARTITION / INVALID_TOPIC_EXCEPTION for missing ones.
//! * Topics in name order from the cursor's topic (its partitions from the cursor's
//!   index); at most `min(response_partition_limit, max.request.partition.size.limit)`
//!   partitions, and `next_cursor` where the next page starts: inside a topic that did not
//!   fit, or at the start of the next topic when the page is full.
//! * A cursor whose topic is not among the named topics is INVALID_REQUEST.
//!
//! Partitions carry the leader (-1 when not live), epoch, replicas, ISR and offline
//! replicas; the eligible-leader-replica sets are empty (KIP-966's ELR is off, as by
//! default in Kafka 4; Kafka's clients expect the lists, not null).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use rivulet_protocol::ResponseError;
use uuid::Uuid;

use super::{code, str_bytes};
use crate::broker::{validate_topic_name, Broker};
use crate::replication::topics::Topic;
use crate::request_context::RequestContext;

fn error_topic(name: &str, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_name(Some(TopicName(str_bytes(name.to_string()))))
        .with_topic_id(Uuid::nil())
        .with_is_internal(name.starts_with("__"))
}

/// Partitions `start..` of `topic`, at most `limit`; and the index of the first one left
/// out, if any.
fn partitions(
    topic: &Topic,
    live: &HashSet<i32>,
    start: i32,
    limit: usize,
) -> (Vec<DescribeTopicPartitionsResponsePartition>, Option<i32>) {
    let ids = |ids: &[i32]| ids.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    let from = usize::try_from(start).unwrap_or(0);
    let end = topic.replicas.len().min(from.saturating_add(limit));
    let next = (end < topic.replicas.len()).then_some(i32::try_from(end).unwrap_or(i32::MAX));
    let described = topic
        .replicas
        .get(from..end)
        .unwrap_or_default()
        .iter()
        .map(|replica| {
            let view = replica.view();
            let leader = if view.leader >= 0 && live.contains(&view.leader) { view.leader } else { -1 };
            let offline: Vec<i32> = view.replicas.iter().copied().filter(|r| !live.contains(r)).collect();
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(replica.index)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(view.leader_epoch)
                .with_replica_nodes(ids(&view.replicas))
                .with_isr_nodes(ids(&view.isr))
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    (described, next)
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let all_topics = request.topics.is_empty();
    let cursor = request.cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map_or("", |(name, _)| name.as_str());
    let wanted: BTreeSet<String> = if all_topics {
        broker.replicas.topics.all().iter().map(|t| t.record.name.clone()).collect()
    } else {
        request.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    let wanted: BTreeSet<String> = wanted.into_iter().filter(|name| name.as_str() >= cursor_topic).collect();
    if !all_topics && cursor.is_some() && !wanted.contains(cursor_topic) {
        // Kafka's error response: the request's topics, each with the error.
        let topics = request.topics.iter().map(|t| error_topic(t.name.0.as_str(), ResponseError::InvalidRequest));
        return DescribeTopicPartitionsResponse::default().with_topics(topics.collect());
    }

    let mut unauthorized = Vec::new();
    let authorized: Vec<String> = wanted
        .into_iter()
        .filter(|name| {
            let allowed = if all_topics {
                broker.may(ctx, AclOperation::Describe, ResourceType::Topic, name)
            } else {
                broker.authorized(ctx, AclOperation::Describe, ResourceType::Topic, name)
            };
            if !allowed && !all_topics {
                unauthorized.push(error_topic(name, ResponseError::TopicAuthorizationFailed));
            }
            allowed
        })
        .collect();
    // The cursor's partition only applies if its topic may be described.
    let first_partition = match &cursor {
        Some((name, index)) if broker.may(ctx, AclOperation::Describe, ResourceType::Topic, name) => *index,
        _ => 0,
    };

    let live: HashSet<i32> = broker.brokers_for(&ctx.listener_name).iter().map(|b| b.node_id).collect();
    let limit = request.response_partition_limit.min(broker.config.max_request_partition_size_limit).max(0);
    let mut remaining = usize::try_from(limit).unwrap_or(0);
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in authorized {
        if remaining == 0 {
            // The page is full: the next one starts at this topic.
            response.next_cursor = Some(Cursor::default().with_topic_name(TopicName(str_bytes(name))));
            break;
        }
        let Some(topic) = broker.replicas.topics.get(&name) else {
            if !all_topics {
                let error = if validate_topic_name(&name).is_ok() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::InvalidTopicException
                };
                response.topics.push(error_topic(&name, error));
            }
            continue;
        };
        let start = if name == cursor_topic { first_partition } else { 0 };
        let (described, next) = partitions(&topic, &live, start, remaining);
        remaining -= described.len();
        response.topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(code(None))
                .with_name(Some(TopicName(str_bytes(name.clone()))))
                .with_topic_id(topic.record.topic_id)
                .with_is_internal(topic.record.internal)
                .with_partitions(described)
                .with_topic_authorized_operations(broker.authorized_operations(ctx, ResourceType::Topic, &name)),
        );
        if let Some(next) = next {
            response.next_cursor =
                Some(Cursor::default().with_topic_name(TopicName(str_bytes(name))).with_partition_index(next));
            break;
        }
    }
    response.topics.extend(unauthorized);
    response
}
