//! SyncGroup (key 14): the leader hands out assignments; every member gets its own.
//! Needs READ on the group (GROUP_AUTHORIZATION_FAILED).
//!
//! As Kafka's coordinator stores the group with acks=all before answering, an assignment
//! is handed out once the ISR of the group's `__consumer_offsets` partition has it: a
//! coordinator failover then still knows the generation its members consume in. When the
//! replicas do not catch up, the members are told COORDINATOR_NOT_AVAILABLE (or
//! NOT_COORDINATOR when leadership moved) and join again.

use std::sync::Arc;
use std::time::Duration;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use rivulet_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::Broker;
use crate::group::{Pending, SyncResult};
use crate::request_context::RequestContext;

/// How long a member waits for the leader's assignment before being told to rejoin.
const SYNC_WAIT_LIMIT: Duration = Duration::from_secs(300);

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: SyncGroupRequest) -> SyncGroupResponse {
    let version = ctx.api_version;
    if !broker.authorized(ctx, AclOperation::Read, ResourceType::Group, request.group_id.0.as_str()) {
        return SyncGroupResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let assignments = request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect();
    let pending = broker.groups.sync(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|i| i.as_str()),
        request.generation_id,
        (request.protocol_type.as_ref().map(|p| p.as_str()), request.protocol_name.as_ref().map(|p| p.as_str())),
        assignments,
    );
    let result = match pending {
        Pending::Ready(result) => result,
        Pending::Wait(rx) => match tokio::time::timeout(SYNC_WAIT_LIMIT, rx).await {
            Ok(Ok(result)) => result,
            _ => SyncResult { error: Some(ResponseError::RebalanceInProgress), ..Default::default() },
        },
    };
    let result = match result.error {
        None => match super::group_stored(broker, request.group_id.0.as_str()).await {
            None => result,
            Some(error) => SyncResult { error: Some(error), ..Default::default() },
        },
        Some(_) => result,
    };
    let response = SyncGroupResponse::default().with_error_code(code(result.error)).with_assignment(result.assignment);
    if version >= 5 {
        response
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol_name.map(str_bytes))
    } else {
        response
    }
}
