//! JoinGroup (key 11): join a group and wait until the rebalance's join phase completes.
//! Needs READ on the group (GROUP_AUTHORIZATION_FAILED).
//!
//! A join answered with a generation waits until what the coordinator stored for the group
//! (a static member's new id, an emptied group) is in the ISR of its `__consumer_offsets`
//! partition, as Kafka answers once the group's records are committed; otherwise the
//! member is told COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR and joins again.

use std::sync::Arc;
use std::time::Duration;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use rivulet_protocol::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use rivulet_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::Broker;
use crate::group::{JoinRequest, JoinResult, Pending};
use crate::request_context::RequestContext;

fn encode(result: JoinResult, version: i16) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|(member_id, instance_id, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(member_id))
                .with_group_instance_id(if version >= 5 { instance_id.map(str_bytes) } else { None })
                .with_metadata(metadata)
        })
        .collect();
    let response = JoinGroupResponse::default()
        .with_error_code(code(result.error))
        .with_generation_id(result.generation_id)
        .with_protocol_name(Some(str_bytes(result.protocol_name.unwrap_or_default())))
        .with_leader(str_bytes(result.leader))
        .with_member_id(str_bytes(result.member_id))
        .with_members(members);
    let response = if version >= 9 { response.with_skip_assignment(result.skip_assignment) } else { response };
    if version >= 7 {
        response.with_protocol_type(result.protocol_type.map(str_bytes))
    } else {
        response
    }
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.api_version;
    if !broker.authorized(ctx, AclOperation::Read, ResourceType::Group, request.group_id.0.as_str()) {
        let denied = JoinResult {
            error: Some(ResponseError::GroupAuthorizationFailed),
            generation_id: -1,
            member_id: request.member_id.to_string(),
            ..Default::default()
        };
        return encode(denied, version);
    }
    // v0 has no rebalance timeout: it is the session timeout.
    let rebalance_timeout_ms = if version == 0 { request.session_timeout_ms } else { request.rebalance_timeout_ms };
    let join = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: ctx.client_id.to_string(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = join.member_id.clone();
    let group_id = join.group_id.clone();
    let wait_limit = Duration::from_millis(rebalance_timeout_ms.max(0) as u64) + Duration::from_secs(10);
    let result = match broker.groups.join(join) {
        Pending::Ready(result) => result,
        Pending::Wait(rx) => match tokio::time::timeout(wait_limit, rx).await {
            Ok(Ok(result)) => result,
            // The coordinator dropped the waiter or never answered: the client rejoins.
            _ => JoinResult {
                error: Some(ResponseError::RebalanceInProgress),
                generation_id: -1,
                member_id,
                ..Default::default()
            },
        },
    };
    let result = match result.error {
        None => match super::group_stored(broker, &group_id).await {
            None => result,
            Some(error) => {
                JoinResult { error: Some(error), generation_id: -1, member_id: result.member_id, ..Default::default() }
            }
        },
        Some(_) => result,
    };
    encode(result, version)
}
