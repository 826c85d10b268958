//! InitProducerId (key 22): a producer id for an idempotent producer, or — with a
//! transactional id — the id and a bumped epoch from the transaction coordinator, which
//! fences any older producer with the same transactional id.
//!
//! With an authorizer: WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
//! an idempotent producer needs IDEMPOTENT_WRITE on the cluster or, since KIP-679, WRITE
//! on any topic (CLUSTER_AUTHORIZATION_FAILED).

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use rivulet_protocol::ResponseError;

use super::fenced_error;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::security::authorizer::CLUSTER_NAME;
use crate::txn::ProducerIdAndEpoch;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let version = ctx.api_version;
    let error = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(fenced_error(e, version, 4).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.as_ref().is_some_and(|id| id.0.is_empty()) {
        // As Kafka's `TransactionCoordinator.handleInitProducerId`.
        return error(ResponseError::InvalidRequest);
    }
    match &request.transactional_id {
        Some(id) if !broker.authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, id.0.as_str()) => {
            return error(ResponseError::TransactionalIdAuthorizationFailed);
        }
        None if !broker.may(ctx, AclOperation::IdempotentWrite, ResourceType::Cluster, CLUSTER_NAME)
            && !broker.authorized_any(ctx, AclOperation::Write, ResourceType::Topic) =>
        {
            return error(ResponseError::ClusterAuthorizationFailed);
        }
        _ => {}
    }
    // A transactional id keeps its producer id across restarts; a fresh one is drawn in
    // case the id is new or its epoch is exhausted. Without a transactional id Kafka always
    // hands out a new id with epoch 0 (also for the KIP-360 epoch-bump form).
    let fresh = match broker.metadata.allocate_producer_id().await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            return error(ResponseError::UnknownServerError);
        }
    };
    let Some(transactional_id) = request.transactional_id else {
        return InitProducerIdResponse::default().with_producer_id(ProducerId(fresh)).with_producer_epoch(0);
    };
    let expected = (request.producer_id.0 >= 0)
        .then_some(ProducerIdAndEpoch { producer_id: request.producer_id.0, producer_epoch: request.producer_epoch });
    let outcome = broker.txns.init_producer_id(
        transactional_id.0.as_str(),
        request.transaction_timeout_ms,
        expected,
        fresh,
        &**broker,
    );
    // The new epoch is handed out once the transaction log's replicas have it, so a
    // coordinator failover cannot resurrect the fenced one.
    let outcome = match outcome {
        Ok(p) => broker.await_transaction_state(transactional_id.0.as_str()).await.map(|()| p),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(p) => {
            broker.replicas.notify_append();
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(p.producer_id))
                .with_producer_epoch(p.producer_epoch)
        }
        Err(e) => error(e),
    }
}
