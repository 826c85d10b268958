//! OffsetCommit (key 8): store a group's consumed positions.

use std::time::{SystemTime, UNIX_EPOCH};

use rivulet_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use rivulet_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::group::persist::OffsetValue;

pub fn handle(broker: &Broker, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    // Partitions of topics that do not exist fail on their own, as in Kafka.
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
    let outcome = broker.groups.commit_offsets(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        request.generation_id_or_member_epoch,
        &known,
    );
    let mut results = match &outcome {
        Ok(results) => results.iter().copied(),
        Err(_) => [].iter().copied(),
    };
    let group_error = outcome.as_ref().err().copied();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let t = broker.topics.get(topic.name.0.as_str());
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error: Option<ResponseError> =
                        if t.as_ref().and_then(|t| t.partition(p.partition_index)).is_none() {
                            Some(ResponseError::UnknownTopicOrPartition)
                        } else if let Some(e) = group_error {
                            Some(e)
                        } else {
                            results.next().flatten()
                        };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(error))
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
