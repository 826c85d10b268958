//! TxnOffsetCommit (key 28): a consumer group's offsets written inside a transaction
//! (`sendOffsetsToTransaction`); they become visible when the transaction commits.
//! Needs WRITE on the transactional id, READ on the group and on each topic.
//!
//! Answered once `__consumer_offsets`' in-sync replicas have the offsets, as OffsetCommit
//! is (Kafka appends both with acks=all).

use std::sync::Arc;

use super::offset_commit::{commit_denials, known_offsets, partition_errors, replicated};
use super::{code, fenced_error};
use crate::broker::Broker;
use crate::internal_topic::TxnProducer;
use crate::request_context::RequestContext;
use rivulet_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use rivulet_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = ctx.api_version;
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
        Some(request.transactional_id.0.as_str()),
        request.topics.iter().map(|t| t.name.0.as_str()),
    );
    let known = known_offsets(broker, requested(), &denials);
    let producer = TxnProducer { producer_id: request.producer_id.0, producer_epoch: request.producer_epoch };
    let transactional_id = request.transactional_id.0.as_str();
    // The producer is checked against its transaction when this broker also coordinates
    // it; in a cluster the transaction coordinator may be another broker, and the group
    // coordinator then accepts the offsets as Kafka's does before KIP-890's verification.
    let verified = if broker.txns.status(transactional_id).is_none() {
        broker.txns.verify_offsets(transactional_id, producer.producer_id, producer.producer_epoch)
    } else {
        Ok(())
    };
    let outcome = verified
        .and_then(|()| {
            broker.groups.txn_commit_offsets(
                request.group_id.0.as_str(),
                producer,
                request.member_id.as_str(),
                request.group_instance_id.as_ref().map(|i| i.as_str()),
                request.generation_id,
                &known,
            )
        })
        .map_err(|e| fenced_error(e, version, 3));
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
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(errors.next().flatten()))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
