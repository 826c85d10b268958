//! EndTxn (key 26): commit or abort the producer's transaction. The coordinator writes
//! the markers to every partition of the transaction, and the answer waits until the
//! outcome is replicated in `__transaction_state`.
//! Needs WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use rivulet_protocol::ResponseError;

use super::{code, fenced_error};
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: EndTxnRequest) -> EndTxnResponse {
    let version = ctx.api_version;
    let transactional_id = request.transactional_id.0.as_str();
    if !broker.authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, transactional_id) {
        let response =
            EndTxnResponse::default().with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
        return if version >= 5 { response.with_producer_id(ProducerId(-1)).with_producer_epoch(-1) } else { response };
    }
    let outcome = broker.txns.end_txn(
        transactional_id,
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
        &**broker,
    );
    // A failed wait is retriable for the client, and a retry of a completed outcome
    // succeeds.
    let outcome = match outcome {
        Ok(p) => broker.await_transaction_state(transactional_id).await.map(|()| p),
        Err(e) => Err(e),
    };
    // Markers were appended: wake read_committed fetches waiting for the stable offset.
    broker.replicas.notify_append();
    let response = EndTxnResponse::default().with_error_code(code(outcome.err().map(|e| fenced_error(e, version, 2))));
    if version >= 5 {
        let (id, epoch) = outcome.map_or((-1, -1), |p| (p.producer_id, p.producer_epoch));
        response.with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
    } else {
        response
    }
}
