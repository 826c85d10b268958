//! ConsumerGroupDescribe (key 69, KIP-848): a consumer group's epochs, assignor and members
//! with their current and target assignments, as `kafka-consumer-groups --describe` and the
//! Admin client's `describeConsumerGroups` read them. Needs DESCRIBE on each group
//! (GROUP_AUTHORIZATION_FAILED); an unknown or classic group is GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use rivulet_protocol::kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::group::assignor;
use crate::request_context::RequestContext;

/// `authorized_operations` when not asked for.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

fn assignment(broker: &Broker, partitions: assignor::Assignment) -> Assignment {
    let topics = partitions
        .into_iter()
        .map(|(topic_id, partitions)| {
            // A topic deleted since it was assigned keeps its id with an empty name.
            let name = broker.replicas.topics.get_by_id(&topic_id).map(|t| t.record.name.clone()).unwrap_or_default();
            TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_topic_name(TopicName(str_bytes(name)))
                .with_partitions(partitions.into_iter().collect())
        })
        .collect();
    Assignment::default().with_topic_partitions(topics)
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let version = ctx.api_version;
    let groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            let id = group_id.0.to_string();
            let described =
                DescribedGroup::default().with_group_id(group_id).with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            if !broker.authorized(ctx, AclOperation::Describe, ResourceType::Group, &id) {
                return described.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if let Some(error) = broker.groups.status(&id) {
                return described.with_error_code(error.code());
            }
            let group = match broker.groups.describe_consumer_group(&id) {
                Ok(group) => group,
                Err(message) => {
                    return described
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(message)))
                }
            };
            let described = if request.include_authorized_operations {
                described.with_authorized_operations(broker.authorized_operations(ctx, ResourceType::Group, &id))
            } else {
                described
            };
            let members = group
                .members
                .into_iter()
                .map(|m| {
                    let member = Member::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_instance_id(m.instance_id.map(str_bytes))
                        .with_rack_id(m.rack_id.map(str_bytes))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed_topic_names.into_iter().map(|t| TopicName(str_bytes(t))).collect(),
                        )
                        .with_subscribed_topic_regex(m.subscribed_topic_regex.map(str_bytes))
                        .with_assignment(assignment(broker, m.assignment))
                        .with_target_assignment(assignment(broker, m.target_assignment));
                    // v1: 1 = a consumer-protocol member (no classic members join these groups).
                    if version >= 1 {
                        member.with_member_type(1)
                    } else {
                        member
                    }
                })
                .collect();
            described
                .with_group_state(str_bytes(group.state))
                .with_group_epoch(group.group_epoch)
                .with_assignment_epoch(group.assignment_epoch)
                .with_assignor_name(str_bytes(group.assignor_name))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
