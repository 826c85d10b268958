//! Heartbeat (key 12): keeps a member's session alive; tells it when to rejoin.
//! Needs READ on the group (GROUP_AUTHORIZATION_FAILED).

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use rivulet_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: HeartbeatRequest) -> HeartbeatResponse {
    if !broker.authorized(ctx, AclOperation::Read, ResourceType::Group, request.group_id.0.as_str()) {
        return HeartbeatResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let error = broker.groups.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code(error))
}
