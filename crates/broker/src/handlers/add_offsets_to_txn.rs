//! AddOffsetsToTxn (key 25): the group's `__consumer_offsets` partition joins the
//! transaction, so its offsets commit or abort with it.
//! Needs WRITE on the transactional id and READ on the group.
//!
//! Answered once `__transaction_state`'s in-sync replicas have the change, as Kafka's
//! coordinator appends with acks=all: a coordinator failover cannot forget the partition.

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use rivulet_protocol::ResponseError;

use super::{code, fenced_error};
use crate::broker::Broker;
use crate::group::persist::OFFSETS_TOPIC;
use crate::request_context::RequestContext;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let version = ctx.api_version;
    if !broker.authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, request.transactional_id.0.as_str())
    {
        return AddOffsetsToTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !broker.authorized(ctx, AclOperation::Read, ResourceType::Group, request.group_id.0.as_str()) {
        return AddOffsetsToTxnResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let partition = broker.groups.partition_of(request.group_id.0.as_str());
    let outcome = broker.txns.add_partitions(
        request.transactional_id.0.as_str(),
        request.producer_id.0,
        request.producer_epoch,
        &[(OFFSETS_TOPIC.to_string(), partition)],
        false,
    );
    let outcome = match outcome {
        Ok(()) => broker.await_transaction_state(request.transactional_id.0.as_str()).await,
        Err(e) => Err(e),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code(outcome.err().map(|e| fenced_error(e, version, 2))))
}
