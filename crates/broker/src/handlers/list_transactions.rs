//! ListTransactions (key 66): transactional ids, filtered by state, producer id and
//! (v1, KIP-994) by how long they have been open (`kafka-transactions --list`).
//! Lists only the transactional ids the principal may DESCRIBE.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::list_transactions_response::TransactionState;
use rivulet_protocol::kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::txn::persist::TxnState;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut unknown_filters = Vec::new();
    let mut states = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(state) => states.push(state),
            None => unknown_filters.push(name.clone()),
        }
    }
    let listed = broker
        .txns
        .list()
        .into_iter()
        .filter(|t| request.state_filters.is_empty() || states.contains(&t.value.state))
        // Only the transactional ids the principal may DESCRIBE, as Kafka lists them.
        .filter(|t| broker.may(ctx, AclOperation::Describe, ResourceType::TransactionalId, &t.transactional_id))
        .filter(|t| {
            request.producer_id_filters.is_empty()
                || request.producer_id_filters.contains(&ProducerId(t.value.producer_id))
        })
        .filter(|t| {
            // -1: no filter; otherwise only transactions open for longer than this.
            request.duration_filter < 0
                || (t.value.state == TxnState::Ongoing && now_ms - t.value.txn_start_ms > request.duration_filter)
        })
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(t.transactional_id)))
                .with_producer_id(ProducerId(t.value.producer_id))
                .with_transaction_state(str_bytes(t.value.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown_filters).with_transaction_states(listed)
}
