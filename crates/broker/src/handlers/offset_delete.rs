//! OffsetDelete (key 47): forget committed offsets of partitions the group no longer uses.
//! Needs DELETE on the group (GROUP_AUTHORIZATION_FAILED) and READ on each topic
//! (TOPIC_AUTHORIZATION_FAILED for its partitions, whose offsets stay).

use std::sync::Arc;

use bytes::Bytes;
use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use rivulet_protocol::kafka_protocol::protocol::Decodable;
use rivulet_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::request_context::RequestContext;

/// Whether any consumer-protocol subscription names `topic`. Subscriptions are versioned
/// (`i16` version prefix) `ConsumerProtocolSubscription` messages.
fn subscribed(topic: &str, subscriptions: &[Bytes]) -> bool {
    subscriptions.iter().any(|raw| {
        let mut buf = raw.clone();
        if buf.len() < 2 {
            return false;
        }
        let version = i16::from_be_bytes([buf[0], buf[1]]);
        let _ = bytes::Buf::get_i16(&mut buf);
        ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3))
            .map(|s| s.topics.iter().any(|t| t.as_str() == topic))
            // Unreadable metadata (another protocol type): treat as using the topic.
            .unwrap_or(true)
    })
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if !broker.authorized(ctx, AclOperation::Delete, ResourceType::Group, request.group_id.0.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let readable: Vec<bool> = request
        .topics
        .iter()
        .map(|t| broker.authorized(ctx, AclOperation::Read, ResourceType::Topic, t.name.0.as_str()))
        .collect();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, &readable)| readable)
        .flat_map(|(t, _)| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    match broker.groups.delete_offsets(request.group_id.0.as_str(), &partitions, subscribed) {
        Err(error) => OffsetDeleteResponse::default().with_error_code(error.code()),
        Ok(results) => {
            let mut results = results.into_iter();
            let topics = request
                .topics
                .into_iter()
                .zip(readable)
                .map(|(t, readable)| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let error = if readable {
                                results.next().flatten()
                            } else {
                                Some(ResponseError::TopicAuthorizationFailed)
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(error))
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
