//! OffsetFetch (key 9): committed offsets of one group (v1-v7) or several (v8+).
//!
//! With an authorizer: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) and on each
//! topic: a topic asked for by name without it is TOPIC_AUTHORIZATION_FAILED, and a fetch
//! of all the group's offsets leaves such topics out, as Kafka does.

use std::collections::HashMap;
use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};

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
/// A topic's partitions with their offsets and error codes.
type TopicOffsets = (String, Vec<(i32, Option<OffsetValue>, i16)>);

/// Applies topic authorization to a group's offsets: without DESCRIBE on a topic, its
/// partitions are left out of an all-offsets fetch (`explicit` false) and fail with
/// TOPIC_AUTHORIZATION_FAILED when asked for by name.
fn authorize_entries(
    broker: &Broker,
    ctx: &RequestContext,
    entries: Vec<Entry>,
    explicit: bool,
) -> Vec<(Entry, Option<ResponseError>)> {
    if broker.authorizer.is_none() {
        return entries.into_iter().map(|e| (e, None)).collect();
    }
    let mut allowed: HashMap<String, bool> = HashMap::new();
    entries
        .into_iter()
        .filter_map(|entry| {
            let ok = *allowed
                .entry(entry.0.clone())
                .or_insert_with(|| broker.may(ctx, AclOperation::Describe, ResourceType::Topic, &entry.0));
            match (ok, explicit) {
                (true, _) => Some((entry, None)),
                (false, true) => Some(((entry.0, entry.1, None), Some(ResponseError::TopicAuthorizationFailed))),
                (false, false) => None,
            }
        })
        .collect()
}

/// Groups entries (with their errors) by topic, keeping first-seen topic order.
fn by_topic(entries: Vec<(Entry, Option<ResponseError>)>) -> Vec<TopicOffsets> {
    let mut out: Vec<TopicOffsets> = Vec::new();
    for ((topic, partition, value), error) in entries {
        let code = error.map_or(0, |e| e.code());
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push((partition, value, code)),
            None => out.push((topic, vec![(partition, value, code)])),
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
        let denied = (!broker.authorized(ctx, AclOperation::Describe, ResourceType::Group, &group_id))
            .then_some(ResponseError::GroupAuthorizationFailed);
        if let Some(error) = denied.or_else(|| broker.groups.status(&group_id)) {
            // v1 has no top-level error: its client sees no offsets and asks again.
            let response = OffsetFetchResponse::default();
            return if version >= 2 { response.with_error_code(error.code()) } else { response };
        }
        let wanted: Option<Vec<(String, Vec<i32>)>> = request
            .topics
            .map(|topics| topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        let entries = broker.groups.fetch_offsets(request.group_id.0.as_str(), wanted.as_deref());
        let entries = authorize_entries(broker, ctx, entries, wanted.is_some());
        let topics = by_topic(entries)
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(partition, value, error)| {
                        let (offset, epoch, metadata) = fields(&value);
                        let error = if error != 0 { error } else { unstable(&group_id, &topic, partition) };
                        OffsetFetchResponsePartition::default()
                            .with_error_code(error)
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
            let denied =
                (!broker.authorized(ctx, AclOperation::Describe, ResourceType::Group, group.group_id.0.as_str()))
                    .then_some(ResponseError::GroupAuthorizationFailed);
            // v9 (KIP-848): a consumer-group member's fetch is checked against its epoch.
            let member = (version >= 9).then(|| group.member_id.as_ref().map(|m| m.as_str())).flatten();
            let stale = || broker.groups.check_offset_fetch(group.group_id.0.as_str(), member, group.member_epoch);
            if let Some(error) = denied.or_else(|| broker.groups.status(group.group_id.0.as_str())).or_else(stale) {
                return OffsetFetchResponseGroup::default().with_group_id(group.group_id).with_error_code(error.code());
            }
            let wanted: Option<Vec<(String, Vec<i32>)>> = group
                .topics
                .map(|topics| topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
            let entries = broker.groups.fetch_offsets(group.group_id.0.as_str(), wanted.as_deref());
            let entries = authorize_entries(broker, ctx, entries, wanted.is_some());
            let topics = by_topic(entries)
                .into_iter()
                .map(|(topic, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|(partition, value, error)| {
                            let (offset, epoch, metadata) = fields(&value);
                            let error =
                                if error != 0 { error } else { unstable(group.group_id.0.as_str(), &topic, partition) };
                            OffsetFetchResponsePartitions::default()
                                .with_error_code(error)
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
