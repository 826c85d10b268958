//! LeaveGroup (key 13): one member (v0-v2) or a batch of members (v3+, KIP-345).
//! Needs READ on the group (GROUP_AUTHORIZATION_FAILED).
//!
//! Answered once what the coordinator stored (the group emptied by the last member leaving)
//! is in the ISR of the group's `__consumer_offsets` partition, as Kafka does; otherwise
//! the whole request gets COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR and the client
//! retries.

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use rivulet_protocol::kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use rivulet_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let version = ctx.api_version;
    let group_id = request.group_id.0.to_string();
    if !broker.authorized(ctx, AclOperation::Read, ResourceType::Group, &group_id) {
        return LeaveGroupResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if version < 3 {
        let errors = broker.groups.leave(&group_id, &[(request.member_id.to_string(), None)]);
        let error = match errors.into_iter().next().flatten() {
            None => super::group_stored(broker, &group_id).await,
            error => error,
        };
        return LeaveGroupResponse::default().with_error_code(code(error));
    }
    let leaving: Vec<(String, Option<String>)> = request
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
        .collect();
    let errors = broker.groups.leave(&group_id, &leaving);
    if errors.iter().any(Option::is_none) {
        if let Some(error) = super::group_stored(broker, &group_id).await {
            return LeaveGroupResponse::default().with_error_code(error.code());
        }
    }
    let members = request
        .members
        .into_iter()
        .zip(errors)
        .map(|(m, error)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code(error))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
