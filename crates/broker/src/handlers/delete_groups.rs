//! DeleteGroups (key 42): remove empty groups and their committed offsets.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use rivulet_protocol::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::code;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, _ctx: &RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .into_iter()
        .map(|group_id| {
            let error = broker.groups.delete_group(group_id.0.as_str());
            DeletableGroupResult::default().with_group_id(group_id).with_error_code(code(error))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
