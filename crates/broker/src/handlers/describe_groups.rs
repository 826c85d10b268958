//! DescribeGroups (key 15): state, protocol and members of classic groups. Needs DESCRIBE
//! on each group (GROUP_AUTHORIZATION_FAILED).

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use rivulet_protocol::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let version = ctx.api_version;
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let described = DescribedGroup::default().with_group_id(group_id.clone());
            if !broker.authorized(ctx, AclOperation::Describe, ResourceType::Group, group_id.0.as_str()) {
                return described.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            // v3+ may ask for the operations the principal may perform on the group.
            let described = if version >= 3 && request.include_authorized_operations {
                described.with_authorized_operations(broker.authorized_operations(
                    ctx,
                    ResourceType::Group,
                    group_id.0.as_str(),
                ))
            } else {
                described
            };
            if let Some(error) = broker.groups.status(group_id.0.as_str()) {
                return described.with_error_code(error.code());
            }
            let Some(group) = broker.groups.describe(group_id.0.as_str()) else {
                // Kafka reports an unknown group as Dead, with GROUP_ID_NOT_FOUND from v6.
                let dead = described.with_group_state(str_bytes("Dead"));
                return if version >= 6 {
                    dead.with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(format!("Group {} not found.", group_id.0.as_str()))))
                } else {
                    dead
                };
            };
            let members = group
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(if version >= 4 { m.group_instance_id.map(str_bytes) } else { None })
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            described
                .with_group_state(str_bytes(group.state.name()))
                .with_protocol_type(str_bytes(group.protocol_type))
                .with_protocol_data(str_bytes(group.protocol_name))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
