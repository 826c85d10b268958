//! ListGroups (key 16), with the state (v4+) and type (v5+, `classic` or `consumer`) filters. With an authorizer,
//! DESCRIBE on the cluster lists every group; otherwise only groups the principal may
//! DESCRIBE are listed, as Kafka does.

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use rivulet_protocol::kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::security::authorizer::CLUSTER_NAME;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: ListGroupsRequest) -> ListGroupsResponse {
    let version = ctx.api_version;
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_ascii_lowercase()).collect();
    let all_visible = broker.may(ctx, AclOperation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(id, ..)| all_visible || broker.may(ctx, AclOperation::Describe, ResourceType::Group, id))
        .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_ascii_lowercase()))
        .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t == kind))
        .map(|(id, protocol_type, state, kind)| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type));
            let listed = if version >= 4 { listed.with_group_state(str_bytes(state)) } else { listed };
            if version >= 5 {
                listed.with_group_type(str_bytes(kind))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
