//! AddPartitionsToTxn (key 24): partitions join a producer's transaction. v0–3 carry one
//! transaction (from clients); v4+ a batch of them (from brokers, KIP-890), each possibly
//! `verify_only`.
//!
//! With an authorizer, a client's request needs WRITE on the transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition) and on each topic
//! (TOPIC_AUTHORIZATION_FAILED; the others are then OPERATION_NOT_ATTEMPTED), and a
//! broker's batch needs CLUSTER_ACTION.
//!
//! Partitions added (not `verify_only`) are answered once `__transaction_state`'s in-sync
//! replicas have them, as Kafka's coordinator appends with acks=all: a coordinator
//! failover cannot forget a partition of an open transaction and leave it hanging.

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use rivulet_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use rivulet_protocol::ResponseError;

use super::{code, fenced_error};
use crate::broker::Broker;
use crate::request_context::RequestContext;

/// The outcome for every partition of one transaction: unknown partitions fail alone and
/// the rest are then not attempted, as in Kafka.
#[allow(clippy::too_many_arguments)]
async fn add(
    broker: &Broker,
    ctx: &RequestContext,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let unknown = |name: &str, p: i32| broker.replicas.topics.get(name).and_then(|t| t.partition(p).cloned()).is_none();
    let any_unknown = topics.iter().any(|t| t.partitions.iter().any(|&p| unknown(t.name.0.as_str(), p)));
    // Checked for clients (v0-3); a broker's batch was checked as a whole.
    let client = version <= 3;
    let id_denied =
        client && !broker.authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, transactional_id);
    let topic_denied: Vec<bool> = topics
        .iter()
        .map(|t| {
            client && !id_denied && !broker.authorized(ctx, AclOperation::Write, ResourceType::Topic, t.name.0.as_str())
        })
        .collect();
    let any_topic_denied = topic_denied.iter().any(|&d| d);
    let outcome = if id_denied {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else if any_unknown || any_topic_denied {
        Err(ResponseError::OperationNotAttempted)
    } else {
        let partitions: Vec<(String, i32)> =
            topics.iter().flat_map(|t| t.partitions.iter().map(move |&p| (t.name.0.to_string(), p))).collect();
        match broker.txns.add_partitions(transactional_id, producer_id, producer_epoch, &partitions, verify_only) {
            Ok(()) if !verify_only => broker.await_transaction_state(transactional_id).await,
            other => other,
        }
    };
    let outcome = outcome.map_err(|e| fenced_error(e, version, 2));
    topics
        .iter()
        .zip(topic_denied)
        .map(|(t, denied)| {
            let results = t
                .partitions
                .iter()
                .map(|&p| {
                    let error = if denied {
                        Some(ResponseError::TopicAuthorizationFailed)
                    } else if id_denied {
                        outcome.err()
                    } else if unknown(t.name.0.as_str(), p) {
                        Some(ResponseError::UnknownTopicOrPartition)
                    } else {
                        outcome.err()
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code(error))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(results)
        })
        .collect()
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let version = ctx.api_version;
    if version <= 3 {
        let results = add(
            broker,
            ctx,
            request.v3_and_below_transactional_id.0.as_str(),
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            false,
            &request.v3_and_below_topics,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    if !broker.authorized_cluster(ctx, AclOperation::ClusterAction) {
        return AddPartitionsToTxnResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for txn in &request.transactions {
        let topics = add(
            broker,
            ctx,
            txn.transactional_id.0.as_str(),
            txn.producer_id.0,
            txn.producer_epoch,
            txn.verify_only,
            &txn.topics,
            version,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}
