//! TxnOffsetCommit (key 28): a consumer group's offsets written inside a transaction
//! (`sendOffsetsToTransaction`); they become visible when the transaction commits.

use std::time::{SystemTime, UNIX_EPOCH};

use rivulet_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use rivulet_protocol::ResponseError;

use super::{code, fenced_error};
use crate::broker::Broker;
use crate::group::persist::OffsetValue;
use crate::internal_topic::TxnProducer;

pub fn handle(broker: &Broker, request: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut known = Vec::new();
    for topic in &request.topics {
        let known_topic = broker.topics.get(topic.name.0.as_str());
        for p in &topic.partitions {
            if known_topic.as_ref().is_some_and(|t| t.partition(p.partition_index).is_some()) {
                let value = OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    commit_timestamp_ms: now_ms,
                };
                known.push((topic.name.0.to_string(), p.partition_index, value));
            }
        }
    }
    let producer = TxnProducer { producer_id: request.producer_id.0, producer_epoch: request.producer_epoch };
    let outcome = broker
        .txns
        .verify_offsets(request.transactional_id.0.as_str(), producer.producer_id, producer.producer_epoch)
        .and_then(|()| {
            broker.groups.txn_commit_offsets(
                request.group_id.0.as_str(),
                producer,
                request.member_id.as_str(),
                request.group_instance_id.as_ref().map(|i| i.as_str()),
                request.generation_id,
                &known,
            )
        });
    let group_error = outcome.as_ref().err().map(|&e| fenced_error(e, version, 3));
    let mut results = outcome.unwrap_or_default().into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let t = broker.topics.get(topic.name.0.as_str());
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = if t.as_ref().and_then(|t| t.partition(p.partition_index)).is_none() {
                        Some(ResponseError::UnknownTopicOrPartition)
                    } else if group_error.is_some() {
                        group_error
                    } else {
                        results.next().flatten()
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(error))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
