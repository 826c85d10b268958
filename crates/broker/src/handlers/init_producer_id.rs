//! InitProducerId (key 22): a fresh producer id for an idempotent producer.

use rivulet_protocol::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use rivulet_protocol::ResponseError;

use crate::broker::Broker;

pub async fn handle(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let error = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.as_ref().is_some_and(|id| id.0.is_empty()) {
        // As Kafka's `TransactionCoordinator.handleInitProducerId`.
        return error(ResponseError::InvalidRequest);
    }
    if request.transactional_id.is_some() {
        // Transactions need a transaction coordinator, which this broker does not run yet;
        // FindCoordinator is not advertised, so stock clients never get here.
        return error(ResponseError::CoordinatorNotAvailable);
    }
    // Without a transactional id Kafka always hands out a new id with epoch 0 (also for
    // the KIP-360 epoch-bump form, which only transactional ids keep their id through).
    match broker.metadata.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            error(ResponseError::UnknownServerError)
        }
    }
}
