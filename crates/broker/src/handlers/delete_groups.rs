//! DeleteGroups (key 42): remove empty groups and their committed offsets. Needs DELETE
//! on each group (GROUP_AUTHORIZATION_FAILED).

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use rivulet_protocol::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use rivulet_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .into_iter()
        .map(|group_id| {
            let error = if broker.authorized(ctx, AclOperation::Delete, ResourceType::Group, group_id.0.as_str()) {
                broker.groups.delete_group(group_id.0.as_str())
            } else {
                Some(ResponseError::GroupAuthorizationFailed)
            };
            DeletableGroupResult::default().with_group_id(group_id).with_error_code(code(error))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
