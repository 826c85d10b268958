//! ListOffsets (key 2): earliest, latest, max-timestamp, or the first offset at or after a
//! timestamp, per partition. Needs DESCRIBE on each topic (TOPIC_AUTHORIZATION_FAILED).

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use rivulet_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use rivulet_protocol::ResponseError;
use rivulet_storage::{PartitionLog, StorageError, TimestampLookup};

use super::check_leader_epoch;
use crate::broker::Broker;
use crate::request_context::RequestContext;

/// Special timestamps of Kafka's `ListOffsetsRequest`.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;
const LATEST_TIERED: i64 = -6;

/// `isolation_level` of a read_committed consumer.
const READ_COMMITTED: i8 = 1;

fn lookup(log: &PartitionLog, timestamp: i64, read_committed: bool) -> Result<Option<TimestampLookup>, StorageError> {
    // A read_committed consumer may not be sent past the last stable offset
    // (Kafka's `fetchOffsetForTimestamp` with `isolationLevel`).
    let visible_end = if read_committed { log.last_stable_offset() } else { log.high_watermark() };
    Ok(match timestamp {
        LATEST => Some(TimestampLookup { offset: visible_end, timestamp: -1 }),
        EARLIEST | EARLIEST_LOCAL => Some(TimestampLookup { offset: log.log_start_offset(), timestamp: -1 }),
        MAX_TIMESTAMP => log.max_timestamp_record()?,
        // No tiered storage: nothing is pending upload or tiered.
        EARLIEST_PENDING_UPLOAD | LATEST_TIERED => None,
        t if t >= 0 => log.lookup_timestamp(t)?.filter(|found| found.offset < visible_end),
        _ => return Ok(None),
    })
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let version = ctx.api_version;
    let read_committed = request.isolation_level == READ_COMMITTED;
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.replicas.topics.get(wanted.name.0.as_str());
            let denied = !broker.authorized(ctx, AclOperation::Describe, ResourceType::Topic, wanted.name.0.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    if denied {
                        return response.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some((topic, log)) = topic.as_ref().and_then(|t| t.partition(p.partition_index).map(|l| (t, l))) else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if !topic.replica(p.partition_index).is_some_and(|r| r.is_leader()) {
                        return response.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    let epoch = topic.leader_epoch(p.partition_index);
                    // The leader epoch field exists from v4 on; the codec refuses it before.
                    let reported_epoch = if version >= 4 { epoch } else { -1 };
                    if let Some(error) = check_leader_epoch(p.current_leader_epoch, epoch) {
                        return response.with_error_code(error.code());
                    }
                    if p.timestamp < LATEST_TIERED {
                        return response.with_error_code(ResponseError::InvalidRequest.code());
                    }
                    match lookup(log, p.timestamp, read_committed) {
                        Ok(Some(found)) => response.with_offset(found.offset).with_timestamp(found.timestamp).with_leader_epoch(reported_epoch),
                        Ok(None) => response.with_offset(-1).with_timestamp(-1),
                        Err(e) => {
                            tracing::error!(topic = %topic.record.name, partition = p.partition_index, error = %e, "offset lookup failed");
                            response.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(wanted.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
