//! AlterPartitionReassignments (key 45): start, change or cancel moving partitions to
//! other brokers (KIP-455), as `kafka-reassign-partitions --execute / --cancel` and
//! `Admin.alterPartitionReassignments` ask. Answered once the new replica list is in the
//! metadata store; the added brokers then catch up by fetching, and the controller
//! completes the move once they are in sync (see `rivulet_metadata::reassignment`).
//!
//! Errors as Kafka's controller gives them: UNKNOWN_TOPIC_OR_PARTITION,
//! INVALID_REPLICA_ASSIGNMENT (empty, a broker twice, a broker not registered),
//! NO_REASSIGNMENT_IN_PROGRESS for a cancellation with nothing to cancel, and (v1,
//! KIP-860) INVALID_REPLICATION_FACTOR when the request forbids changing it.

use std::sync::Arc;

use rivulet_metadata::MetadataError;
use rivulet_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use rivulet_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use rivulet_protocol::ResponseError;

use super::{deadline_in, str_bytes, until_deadline};
use crate::broker::Broker;
use crate::request_context::RequestContext;

/// The error code and message Kafka answers for a failed alteration.
fn answer_for(error: &MetadataError) -> (ResponseError, String) {
    match error {
        MetadataError::InvalidReplication(message) => (ResponseError::InvalidReplicaAssignment, message.clone()),
        MetadataError::NoReassignmentInProgress => (ResponseError::NoReassignmentInProgress, error.to_string()),
        MetadataError::UnknownTopic(_) => (ResponseError::UnknownTopicOrPartition, error.to_string()),
        other => {
            tracing::warn!(error = %other, "partition reassignment failed");
            (ResponseError::UnknownServerError, other.to_string())
        }
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change);
    // ALTER on the cluster, as Kafka checks.
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Alter) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return response.with_error_code(error.code()).with_error_message(Some(str_bytes(error.to_string())));
    }
    let deadline = deadline_in(request.timeout_ms);
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let index = partition.partition_index;
            let target: Option<Vec<i32>> = partition.replicas.map(|ids| ids.into_iter().map(|b| b.0).collect());
            let record = broker
                .replicas
                .topics
                .get(&name)
                .and_then(|t| t.record.partitions.iter().find(|p| p.index == index).cloned());
            let outcome = match record {
                None => {
                    Err((ResponseError::UnknownTopicOrPartition, format!("Unable to find partition {name}:{index}.")))
                }
                Some(record)
                    if !request.allow_replication_factor_change
                        && target.as_ref().is_some_and(|t| {
                            !record.replicas.is_empty() && t.len() != record.original_replicas().len()
                        }) =>
                {
                    let from = record.original_replicas().len();
                    let to = target.as_ref().map_or(0, Vec::len);
                    Err((
                        ResponseError::InvalidReplicationFactor,
                        format!("The replication factor is changed from {from} to {to}"),
                    ))
                }
                Some(_) => {
                    let membership = broker.membership.clone();
                    let (topic_name, asked) = (name.clone(), target.clone());
                    let work = async move { membership.alter_reassignment(&topic_name, index, asked).await };
                    match until_deadline(deadline, "AlterPartitionReassignments", &name, work).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(answer_for(&e)),
                        Err(error) => Err((error, error.to_string())),
                    }
                }
            };
            let (code, message) = match outcome {
                Ok(()) => (0, None),
                Err((error, message)) => {
                    tracing::info!(topic = %name, partition = index, ?target, error = ?error, %message, "partition reassignment refused");
                    (error.code(), Some(str_bytes(message)))
                }
            };
            partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        responses.push(ReassignableTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    response.with_responses(responses)
}
