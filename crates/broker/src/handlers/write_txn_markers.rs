//! WriteTxnMarkers (key 27): a transaction coordinator on another broker asks this one,
//! the leader of some of the transaction's partitions, to write their COMMIT / ABORT
//! markers. Each marker is acknowledged once the partition's in-sync replicas have it, as
//! Kafka appends markers with acks=all. Needs CLUSTER_ACTION (brokers only).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rivulet_protocol::kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use rivulet_protocol::record_batch::ControlType;
use rivulet_protocol::ResponseError;

use super::produce::append_error_code;
use crate::broker::Broker;
use crate::group::persist::OFFSETS_TOPIC;
use crate::request_context::RequestContext;

const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes one marker; `None` on success.
fn write(
    broker: &Broker,
    topic: &str,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Option<ResponseError> {
    let Some(replica) = broker.replicas.topics.get(topic).and_then(|t| t.replica(partition).cloned()) else {
        return Some(ResponseError::UnknownTopicOrPartition);
    };
    if !replica.is_leader() {
        return Some(ResponseError::NotLeaderOrFollower);
    }
    let control = if commit { ControlType::Commit } else { ControlType::Abort };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    if let Err(e) = replica.log.append_marker(
        producer_id,
        producer_epoch,
        control,
        coordinator_epoch,
        replica.leader_epoch(),
        now_ms,
    ) {
        tracing::warn!(topic, partition, producer_id, error = %e, "transaction marker refused");
        return Some(append_error_code(&e));
    }
    replica.maybe_advance_high_watermark();
    if topic == OFFSETS_TOPIC {
        broker.groups.complete_txn(producer_id, commit);
    }
    None
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::ClusterAction) {
        let markers = request
            .markers
            .iter()
            .map(|marker| {
                let topics = marker
                    .topics
                    .iter()
                    .map(|topic| {
                        let partitions = topic
                            .partition_indexes
                            .iter()
                            .map(|&p| {
                                WritableTxnMarkerPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                            })
                            .collect();
                        WritableTxnMarkerTopicResult::default()
                            .with_name(topic.name.clone())
                            .with_partitions(partitions)
                    })
                    .collect();
                WritableTxnMarkerResult::default().with_producer_id(marker.producer_id).with_topics(topics)
            })
            .collect();
        return WriteTxnMarkersResponse::default().with_markers(markers);
    }
    let mut markers = Vec::with_capacity(request.markers.len());
    let mut written: HashSet<(String, i32)> = HashSet::new();
    let mut results = Vec::with_capacity(request.markers.len());
    for marker in &request.markers {
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in &marker.topics {
            let name = topic.name.0.to_string();
            let partitions: Vec<(i32, Option<ResponseError>)> = topic
                .partition_indexes
                .iter()
                .map(|&partition| {
                    let error = write(
                        broker,
                        &name,
                        partition,
                        marker.producer_id.0,
                        marker.producer_epoch,
                        marker.transaction_result,
                        marker.coordinator_epoch,
                    );
                    if error.is_none() {
                        written.insert((name.clone(), partition));
                    }
                    (partition, error)
                })
                .collect();
            topics.push((topic.name.clone(), partitions));
        }
        results.push((marker.producer_id, topics));
    }
    // Acknowledged once replicated: a failover must not lose a decided outcome.
    let mut unreplicated: HashSet<(String, i32)> = HashSet::new();
    for (topic, partition) in &written {
        if broker.replicas.await_replicated(topic, *partition, REPLICATION_TIMEOUT).await.is_some() {
            unreplicated.insert((topic.clone(), *partition));
        }
    }
    for (producer_id, topics) in results {
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(partition, error)| {
                        let error = error.or_else(|| {
                            unreplicated
                                .contains(&(name.0.to_string(), partition))
                                .then_some(ResponseError::NotEnoughReplicasAfterAppend)
                        });
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(partition)
                            .with_error_code(error.map_or(0, |e| e.code()))
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default().with_name(name).with_partitions(partitions)
            })
            .collect();
        markers.push(WritableTxnMarkerResult::default().with_producer_id(producer_id).with_topics(topics));
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
