//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::code;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, _ctx: &RequestContext, request: HeartbeatRequest) -> HeartbeatResponse {
    let error = broker.groups.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code(error))
}
