//! FindCoordinator (key 10): the coordinator of a group or transactional id is the leader
//! of its partition of `__consumer_offsets` / `__transaction_state` (on a single node,
//! this broker). v0-v3 carry one key; v4+ a batch of `coordinator_keys`. Needs DESCRIBE
//! on the group (GROUP_AUTHORIZATION_FAILED) or transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use rivulet_protocol::kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::ResponseError;

use rivulet_metadata::{AclOperation, BrokerRegistration, ResourceType};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::persist::OFFSETS_TOPIC;
use crate::request_context::RequestContext;
use crate::txn::TRANSACTION_STATE_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The broker coordinating `key`, or why there is none.
fn check(
    broker: &Broker,
    ctx: &RequestContext,
    key_type: i8,
    key: &str,
) -> Result<BrokerRegistration, (ResponseError, String)> {
    let listener: &str = &ctx.listener_name;
    let (topic, partition) = match key_type {
        KEY_TYPE_GROUP if key.is_empty() => {
            return Err((ResponseError::InvalidRequest, "Group id must not be empty".into()))
        }
        KEY_TYPE_TRANSACTION if key.is_empty() => {
            return Err((ResponseError::InvalidRequest, "Transactional id must not be empty".into()))
        }
        KEY_TYPE_GROUP if !broker.authorized(ctx, AclOperation::Describe, ResourceType::Group, key) => {
            return Err((ResponseError::GroupAuthorizationFailed, "Group authorization failed.".into()))
        }
        KEY_TYPE_TRANSACTION if !broker.authorized(ctx, AclOperation::Describe, ResourceType::TransactionalId, key) => {
            return Err((
                ResponseError::TransactionalIdAuthorizationFailed,
                "Transactional Id authorization failed.".into(),
            ))
        }
        KEY_TYPE_GROUP => (OFFSETS_TOPIC, broker.groups.partition_of(key)),
        KEY_TYPE_TRANSACTION => (TRANSACTION_STATE_TOPIC, broker.txns.partition_of(key)),
        other => return Err((ResponseError::InvalidRequest, format!("Unknown coordinator type {other}"))),
    };
    let unavailable = || (ResponseError::CoordinatorNotAvailable, "The coordinator is not available.".to_string());
    let leader = broker
        .replicas
        .topics
        .get(topic)
        .and_then(|t| t.replica(partition).map(|r| r.view().leader))
        .ok_or_else(unavailable)?;
    broker.brokers_for(listener).into_iter().find(|b| b.node_id == leader).ok_or_else(unavailable)
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let version = ctx.api_version;
    if version < 4 {
        let response = FindCoordinatorResponse::default();
        return match check(broker, ctx, request.key_type, request.key.as_str()) {
            Ok(node) => response
                .with_node_id(BrokerId(node.node_id))
                .with_host(str_bytes(node.host))
                .with_port(i32::from(node.port)),
            Err((error, message)) => {
                let response = response.with_error_code(error.code()).with_node_id(BrokerId(-1)).with_port(-1);
                if version >= 1 {
                    response.with_error_message(Some(str_bytes(message)))
                } else {
                    response
                }
            }
        };
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key: StrBytes| {
            let coordinator = Coordinator::default().with_key(key.clone());
            match check(broker, ctx, request.key_type, key.as_str()) {
                Ok(node) => coordinator
                    .with_node_id(BrokerId(node.node_id))
                    .with_host(str_bytes(node.host))
                    .with_port(i32::from(node.port)),
                Err((error, message)) => coordinator
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
