//! OffsetFetch (key 9): committed offsets of one group (v1-v7) or several (v8+).

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use rivulet_protocol::kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::group::persist::OffsetValue;
use crate::request_context::RequestContext;

type Entry = (String, i32, Option<OffsetValue>);
type TopicOffsets = (String, Vec<(i32, Option<OffsetValue>)>);

/// Groups entries by topic, keeping first-seen topic order.
fn by_topic(entries: Vec<Entry>) -> Vec<TopicOffsets> {
    let mut out: Vec<TopicOffsets> = Vec::new();
    for (topic, partition, value) in entries {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push((partition, value)),
            None => out.push((topic, vec![(partition, value)])),
        }
    }
    out
}

/// `(offset, leader_epoch, metadata)` as the response carries them; -1 when nothing is committed.
fn fields(value: &Option<OffsetValue>) -> (i64, i32, String) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata.clone()),
        None => (-1, -1, String::new()),
    }
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let version = ctx.api_version;
    // KIP-447 (v7+): with `require_stable`, a partition whose offset is part of a
    // transaction not yet ended answers UNSTABLE_OFFSET_COMMIT, and the consumer retries.
    let require_stable = request.require_stable;
    let unstable = |group: &str, topic: &str, partition: i32| {
        if require_stable && broker.groups.has_pending_offset(group, topic, partition) {
            ResponseError::UnstableOffsetCommit.code()
        } else {
            0
        }
    };
    if version < 8 {
        let group_id = request.group_id.0.to_string();
        if let Some(error) = broker.groups.status(&group_id) {
            // v1 has no top-level error: its client sees no offsets and asks again.
            let response = OffsetFetchResponse::default();
            return if version >= 2 { response.with_error_code(error.code()) } else { response };
        }
        let wanted: Option<Vec<(String, Vec<i32>)>> = request
            .topics
            .map(|topics| topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        let entries = broker.groups.fetch_offsets(request.group_id.0.as_str(), wanted.as_deref());
        let topics = by_topic(entries)
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(partition, value)| {
                        let (offset, epoch, metadata) = fields(&value);
                        OffsetFetchResponsePartition::default()
                            .with_error_code(unstable(&group_id, &topic, partition))
                            .with_partition_index(partition)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(metadata)))
                    })
                    .collect();
                OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(topic))).with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let groups = request
        .groups
        .into_iter()
        .map(|group| {
            if let Some(error) = broker.groups.status(group.group_id.0.as_str()) {
                return OffsetFetchResponseGroup::default().with_group_id(group.group_id).with_error_code(error.code());
            }
            let wanted: Option<Vec<(String, Vec<i32>)>> = group
                .topics
                .map(|topics| topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
            let entries = broker.groups.fetch_offsets(group.group_id.0.as_str(), wanted.as_deref());
            let topics = by_topic(entries)
                .into_iter()
                .map(|(topic, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|(partition, value)| {
                            let (offset, epoch, metadata) = fields(&value);
                            OffsetFetchResponsePartitions::default()
                                .with_error_code(unstable(group.group_id.0.as_str(), &topic, partition))
                                .with_partition_index(partition)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(str_bytes(metadata)))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponseGroup::default().with_group_id(group.group_id).with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}
