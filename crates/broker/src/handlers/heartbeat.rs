//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin.

use rivulet_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::code;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: HeartbeatRequest) -> HeartbeatResponse {
    let error = broker.groups.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code(error))
}
