//! OffsetCommit (key 8): store a group's consumed positions. Needs READ on the group
//! (GROUP_AUTHORIZATION_FAILED for every partition) and on each topic
//! (TOPIC_AUTHORIZATION_FAILED for its partitions, which are not committed).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use rivulet_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::group::persist::{OffsetValue, OFFSETS_TOPIC};
use crate::request_context::RequestContext;

/// How long a commit waits for its replicas (Kafka bounds it by `offsets.commit.timeout.ms`,
/// 5 s by default).
const COMMIT_REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// One requested partition's commit: topic, partition, offset, leader epoch, metadata.
pub(super) type RequestedOffset<'a> = (&'a str, i32, i64, i32, Option<&'a str>);

/// What a commit may not touch: `Err` fails every partition (the group, or the
/// transactional id, is not the principal's to commit for); `Ok` names the topics it may
/// not read.
pub(super) type Denials = Result<HashSet<String>, ResponseError>;

/// The authorization of a commit of `topics` for `group` (inside the transaction of
/// `transactional_id`, for TxnOffsetCommit), as Kafka's `handleOffsetCommitRequest` and
/// `handleTxnOffsetCommitRequest` check it.
pub(super) fn commit_denials<'a>(
    broker: &Broker,
    ctx: &RequestContext,
    group: &str,
    transactional_id: Option<&str>,
    topics: impl Iterator<Item = &'a str>,
) -> Denials {
    if broker.authorizer.is_none() {
        return Ok(HashSet::new());
    }
    if transactional_id
        .is_some_and(|id| !broker.authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, id))
    {
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    }
    if !broker.authorized(ctx, AclOperation::Read, ResourceType::Group, group) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let mut denied = HashSet::new();
    let mut checked = HashSet::new();
    for topic in topics {
        if checked.insert(topic) && !broker.authorized(ctx, AclOperation::Read, ResourceType::Topic, topic) {
            denied.insert(topic.to_string());
        }
    }
    Ok(denied)
}

/// The offsets of the requested partitions that exist and may be committed, as the
/// coordinator stores them. Partitions of unknown or denied topics fail on their own, as
/// in Kafka.
pub(super) fn known_offsets<'a>(
    broker: &Broker,
    requested: impl Iterator<Item = RequestedOffset<'a>>,
    denials: &Denials,
) -> Vec<(String, i32, OffsetValue)> {
    let Ok(denied) = denials else { return Vec::new() };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    requested
        .filter(|(topic, partition, ..)| {
            !denied.contains(*topic)
                && broker.replicas.topics.get(topic).is_some_and(|t| t.partition(*partition).is_some())
        })
        .map(|(topic, partition, offset, leader_epoch, metadata)| {
            let value = OffsetValue {
                offset,
                leader_epoch,
                metadata: metadata.unwrap_or_default().to_string(),
                commit_timestamp_ms: now_ms,
            };
            (topic.to_string(), partition, value)
        })
        .collect()
}

/// As Kafka's coordinator appends with acks=all: a commit that wrote anything is
/// acknowledged once the ISR of the group's `__consumer_offsets` partition has it, so a
/// coordinator failover keeps it (OffsetCommit and TxnOffsetCommit alike).
pub(super) async fn replicated(
    broker: &Broker,
    group: &str,
    outcome: Result<Vec<Option<ResponseError>>, ResponseError>,
) -> Result<Vec<Option<ResponseError>>, ResponseError> {
    match outcome {
        Ok(results) if results.iter().any(Option::is_none) => {
            let partition = broker.groups.partition_of(group);
            match broker.replicas.await_replicated(OFFSETS_TOPIC, partition, COMMIT_REPLICATION_TIMEOUT).await {
                None => Ok(results),
                Some(error) => Err(error),
            }
        }
        other => other,
    }
}

/// The error of every requested partition, in request order: unknown partitions fail alone,
/// the others share the group's error or take the coordinator's per-partition result.
pub(super) fn partition_errors<'a>(
    broker: &Broker,
    requested: impl Iterator<Item = (&'a str, i32)>,
    outcome: Result<Vec<Option<ResponseError>>, ResponseError>,
    denials: &Denials,
) -> Vec<Option<ResponseError>> {
    let group_error = outcome.as_ref().err().copied();
    let mut results = outcome.unwrap_or_default().into_iter();
    requested
        .map(|(topic, partition)| {
            if let Err(error) = denials {
                Some(*error)
            } else if denials.as_ref().is_ok_and(|d| d.contains(topic)) {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if broker.replicas.topics.get(topic).and_then(|t| t.partition(partition).cloned()).is_none() {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if group_error.is_some() {
                group_error
            } else {
                results.next().flatten()
            }
        })
        .collect()
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let requested = || {
        request.topics.iter().flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_ref().map(|m| m.as_str()),
                )
            })
        })
    };
    let denials = commit_denials(
        broker,
        ctx,
        request.group_id.0.as_str(),
        None,
        request.topics.iter().map(|t| t.name.0.as_str()),
    );
    let known = known_offsets(broker, requested(), &denials);
    let outcome = broker.groups.commit_offsets(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        request.generation_id_or_member_epoch,
        ctx.api_version,
        &known,
    );
    let outcome = replicated(broker, request.group_id.0.as_str(), outcome).await;
    let mut errors = partition_errors(broker, requested().map(|(t, p, ..)| (t, p)), outcome, &denials).into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(errors.next().flatten()))
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
