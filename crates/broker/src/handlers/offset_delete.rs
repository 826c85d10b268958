//! OffsetDelete (key 47): forget committed offsets of partitions the group no longer uses.

use std::sync::Arc;

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use rivulet_protocol::kafka_protocol::protocol::Decodable;

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

pub fn handle(broker: &Arc<Broker>, _ctx: &RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    match broker.groups.delete_offsets(request.group_id.0.as_str(), &partitions, subscribed) {
        Err(error) => OffsetDeleteResponse::default().with_error_code(error.code()),
        Ok(results) => {
            let mut results = results.into_iter();
            let topics = request
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(results.next().flatten()))
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
