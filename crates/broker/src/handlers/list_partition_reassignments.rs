//! ListPartitionReassignments (key 46): the reassignments under way, as
//! `kafka-reassign-partitions --verify / --list` and `Admin.listPartitionReassignments`
//! ask: each partition's full replica list with the brokers being added and removed.
//! Answered from this broker's copy of the cluster metadata (Kafka's brokers forward to
//! the controller); a topic or partition that is unknown or not moving is left out, as in
//! Kafka.

use std::sync::Arc;

use rivulet_metadata::PartitionRecord;
use rivulet_protocol::kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use rivulet_protocol::kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().map(|&b| BrokerId(b)).collect()
}

fn ongoing(partition: &PartitionRecord) -> OngoingPartitionReassignment {
    OngoingPartitionReassignment::default()
        .with_partition_index(partition.index)
        .with_replicas(ids(&partition.replicas))
        .with_adding_replicas(ids(&partition.adding_replicas))
        .with_removing_replicas(ids(&partition.removing_replicas))
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    // DESCRIBE on the cluster, as Kafka checks.
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Describe) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(error.to_string())));
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> =
        request.topics.map(|topics| topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let topics = match wanted {
        None => broker.replicas.topics.all().into_iter().map(|t| (t.record.name.clone(), None)).collect(),
        Some(list) => list.into_iter().map(|(name, partitions)| (name, Some(partitions))).collect::<Vec<_>>(),
    };
    let mut answer = Vec::new();
    for (name, partitions) in topics {
        let Some(topic) = broker.replicas.topics.get(&name) else { continue };
        let moving: Vec<OngoingPartitionReassignment> = topic
            .record
            .partitions
            .iter()
            .filter(|p| p.is_reassigning() && partitions.as_ref().is_none_or(|wanted| wanted.contains(&p.index)))
            .map(ongoing)
            .collect();
        if !moving.is_empty() {
            answer.push(
                OngoingTopicReassignment::default()
                    .with_name(str_bytes(topic.record.name.clone()).into())
                    .with_partitions(moving),
            );
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(answer)
}
