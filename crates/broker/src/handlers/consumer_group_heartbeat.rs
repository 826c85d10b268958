//! ConsumerGroupHeartbeat (key 68, KIP-848): a consumer-protocol member joins, keeps its
//! session, learns its assignment and acknowledges revocations, all in one request. v1
//! (KIP-1082) has the client generate its member id. Needs READ on the group
//! (GROUP_AUTHORIZATION_FAILED).

use std::collections::BTreeMap;
use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use rivulet_protocol::kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use rivulet_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::Broker;
use crate::group::consumer::{ConsumerHeartbeat, TopicMeta};
use crate::request_context::RequestContext;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    if !broker.authorized(ctx, AclOperation::Read, ResourceType::Group, &group_id) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_member_epoch(-1);
    }
    // Every topic by name: subscriptions (names or a regex) are resolved against them, and
    // a change in their partitions makes the group rebalance.
    let topics: BTreeMap<String, TopicMeta> = broker
        .replicas
        .topics
        .all()
        .into_iter()
        .map(|t| {
            let meta = TopicMeta { id: t.record.topic_id, partitions: t.record.partitions.len() as i32 };
            (t.record.name.clone(), meta)
        })
        .collect();
    let heartbeat = ConsumerHeartbeat {
        version: ctx.api_version,
        group_id,
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        client_id: ctx.client_id.to_string(),
        client_host: format!("/{}", ctx.peer.ip()),
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|n| n.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: request.server_assignor.map(|s| s.to_string()),
        owned: request.topic_partitions.map(|o| o.into_iter().map(|t| (t.topic_id, t.partitions)).collect()),
    };
    let group_id = heartbeat.group_id.clone();
    let mut outcome = broker.groups.consumer_heartbeat(heartbeat, &topics);
    // As Kafka's coordinator answers once its records are committed: what this heartbeat
    // wrote (a new epoch, an assignment) must be in the ISR of the group's partition, or a
    // coordinator failover could forget what the member was told.
    if outcome.error.is_none() {
        if let Some(error) = super::group_stored(broker, &group_id).await {
            outcome.error = Some((error, None));
        }
    }
    let response = ConsumerGroupHeartbeatResponse::default();
    if let Some((error, message)) = outcome.error {
        return response.with_error_code(error.code()).with_error_message(message.map(str_bytes)).with_member_epoch(-1);
    }
    let assignment = outcome.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(topic_id, partitions)| {
                    TopicPartitions::default().with_topic_id(topic_id).with_partitions(partitions.into_iter().collect())
                })
                .collect(),
        )
    });
    response
        .with_error_code(code(None))
        .with_member_id(Some(str_bytes(outcome.member_id)))
        .with_member_epoch(outcome.member_epoch)
        .with_heartbeat_interval_ms(outcome.heartbeat_interval_ms)
        .with_assignment(assignment)
}
