//! DescribeTransactions (key 65): the state of each named transactional id
//! (`kafka-transactions --describe`).
//! Needs DESCRIBE on each transactional id; topics without DESCRIBE are left out.

use std::collections::BTreeMap;
use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use rivulet_protocol::kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            if !broker.authorized(ctx, AclOperation::Describe, ResourceType::TransactionalId, id.0.as_str()) {
                return state
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                    .with_producer_id(ProducerId(-1));
            }
            let Some(value) = broker.txns.describe(id.0.as_str()) else {
                return state
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_producer_id(ProducerId(-1));
            };
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            // Topics the principal may not DESCRIBE are left out, as Kafka does.
            for (topic, partition) in
                value.partitions.iter().filter(|(t, _)| broker.may(ctx, AclOperation::Describe, ResourceType::Topic, t))
            {
                topics.entry(topic.as_str()).or_default().push(*partition);
            }
            let topics = topics
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicData::default().with_topic(TopicName(str_bytes(topic))).with_partitions(partitions)
                })
                .collect();
            state
                .with_transaction_state(str_bytes(value.state.name()))
                .with_transaction_timeout_ms(value.timeout_ms)
                .with_transaction_start_time_ms(value.txn_start_ms)
                .with_producer_id(ProducerId(value.producer_id))
                .with_producer_epoch(value.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
