//! DeleteRecords (key 21): moves partitions' log start offsets forward on request
//! (`kafka-delete-records`, `AdminClient.deleteRecords`, Kafka Streams purging its
//! repartition topics), as Kafka's `Partition.deleteRecordsOnLeader` and
//! `DelayedDeleteRecords` do.
//!
//! The leader moves its own log start at once; the answer waits, up to `timeout_ms`, until
//! every in-sync follower has followed (they learn the new start from their next fetch) and
//! reports the resulting low watermark. A partition whose followers did not follow in time
//! gets REQUEST_TIMED_OUT.
//!
//! Needs DELETE on each topic (TOPIC_AUTHORIZATION_FAILED).

use std::sync::Arc;
use std::time::Duration;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use rivulet_protocol::ResponseError;
use rivulet_storage::StorageError;

use crate::broker::Broker;
use crate::replication::class_of;
use crate::replication::replica::Replica;
use crate::request_context::RequestContext;

/// `DeleteRecordsRequest.HIGH_WATERMARK`: delete everything committed.
const HIGH_WATERMARK: i64 = -1;

/// A partition whose log start moved and whose followers may still have to follow.
struct Pending {
    topic: usize,
    partition: usize,
    replica: Arc<Replica>,
    offset: i64,
}

fn delete_on_leader(broker: &Broker, replica: &Replica, requested: i64, internal: bool) -> Result<i64, ResponseError> {
    let offset = if requested == HIGH_WATERMARK { replica.log.high_watermark() } else { requested };
    if offset < 0 {
        return Err(ResponseError::OffsetOutOfRange);
    }
    match replica.log.advance_log_start(offset) {
        Ok(Some(trimmed)) => {
            tracing::info!(topic = %replica.topic, partition = replica.index, log_start_offset = offset,
                batches = trimmed.removed_batches, bytes = trimmed.removed_bytes, "records deleted on request");
            crate::retention::reclaim(broker, replica, &trimmed, class_of(internal));
            Ok(offset)
        }
        Ok(None) => Ok(offset),
        Err(StorageError::OffsetOutOfRange { .. }) => Err(ResponseError::OffsetOutOfRange),
        Err(e) => {
            tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "deleting records failed");
            Err(ResponseError::KafkaStorageError)
        }
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut pending = Vec::new();
    let mut topics: Vec<DeleteRecordsTopicResult> = Vec::with_capacity(request.topics.len());
    for (t, wanted) in request.topics.into_iter().enumerate() {
        let topic = broker.replicas.topics.get(wanted.name.0.as_str());
        let denied = !broker.authorized(ctx, AclOperation::Delete, ResourceType::Topic, wanted.name.0.as_str());
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for (p, requested) in wanted.partitions.iter().enumerate() {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(requested.partition_index)
                .with_low_watermark(-1);
            let found = topic.as_ref().and_then(|t| t.replica(requested.partition_index).map(|r| (t, r)));
            let outcome = match found {
                _ if denied => Err(ResponseError::TopicAuthorizationFailed),
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some((topic, _)) if topic.record.internal => Err(ResponseError::InvalidTopicException),
                Some((_, replica)) if !replica.is_leader() => Err(ResponseError::NotLeaderOrFollower),
                // Kafka: "Records of partition ... can not be deleted due to the configured policy".
                Some((topic, _)) if !topic.settings.delete_retention => Err(ResponseError::PolicyViolation),
                Some((topic, replica)) => delete_on_leader(broker, replica, requested.offset, topic.record.internal)
                    .map(|offset| {
                        pending.push(Pending { topic: t, partition: p, replica: replica.clone(), offset });
                    }),
            };
            partitions.push(match outcome {
                Ok(()) => result.with_error_code(ResponseError::RequestTimedOut.code()),
                Err(error) => result.with_error_code(error.code()),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(wanted.name).with_partitions(partitions));
    }

    // Followers pick the new log start up from their next fetch response.
    broker.replicas.notify_append();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    loop {
        pending.retain(|done| {
            let low_watermark = done.replica.low_watermark();
            if low_watermark < done.offset {
                return true;
            }
            let result = &mut topics[done.topic].partitions[done.partition];
            result.low_watermark = low_watermark;
            result.error_code = 0;
            false
        });
        if pending.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
