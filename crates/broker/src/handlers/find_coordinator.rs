//! FindCoordinator (key 10): this broker coordinates every group and transactional id
//! (single node). v0-v3 carry one key; v4+ a batch of `coordinator_keys`.

use rivulet_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use rivulet_protocol::kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// `Ok(())` when this broker coordinates keys of `key_type`.
fn check(key_type: i8, key: &str) -> Result<(), (ResponseError, String)> {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => Err((ResponseError::InvalidRequest, "Group id must not be empty".into())),
        KEY_TYPE_TRANSACTION if key.is_empty() => {
            Err((ResponseError::InvalidRequest, "Transactional id must not be empty".into()))
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => Ok(()),
        other => Err((ResponseError::InvalidRequest, format!("Unknown coordinator type {other}"))),
    }
}

pub fn handle(broker: &Broker, request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let listener = broker.config.advertised();
    let node = BrokerId(broker.config.node_id);
    let host = str_bytes(listener.host.clone());
    let port = i32::from(listener.port);
    if version < 4 {
        let response = FindCoordinatorResponse::default();
        return match check(request.key_type, request.key.as_str()) {
            Ok(()) => response.with_node_id(node).with_host(host).with_port(port),
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
            match check(request.key_type, key.as_str()) {
                Ok(()) => coordinator.with_node_id(node).with_host(host.clone()).with_port(port),
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
