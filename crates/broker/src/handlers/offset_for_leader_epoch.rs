//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, which consumers use to
//! validate their position after a leader change (KIP-320) and followers to truncate.
//! Needs DESCRIBE on each topic from a consumer, CLUSTER_ACTION from a follower.

use std::sync::Arc;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use rivulet_protocol::ResponseError;

use super::check_leader_epoch;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // replica_id exists from v3 on; -1 (and -2 for debugging tools) are consumers.
    let follower_denied = request.replica_id.0 >= 0 && !broker.authorized_cluster(ctx, AclOperation::ClusterAction);
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.replicas.topics.get(wanted.topic.0.as_str());
            let denied = if follower_denied {
                Some(ResponseError::ClusterAuthorizationFailed)
            } else if request.replica_id.0 < 0
                && !broker.authorized(ctx, AclOperation::Describe, ResourceType::Topic, wanted.topic.0.as_str())
            {
                Some(ResponseError::TopicAuthorizationFailed)
            } else {
                None
            };
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| {
                    let response =
                        EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    if let Some(error) = denied {
                        return response.with_error_code(error.code());
                    }
                    let Some(replica) = topic.as_ref().and_then(|t| t.replica(p.partition)) else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if !replica.is_leader() {
                        return response.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    if let Some(error) = check_leader_epoch(p.current_leader_epoch, replica.leader_epoch()) {
                        return response.with_error_code(error.code());
                    }
                    // Where the requested epoch ends in this leader's history (the start of
                    // the next epoch), from the leader-epoch cache.
                    let (epoch, end_offset) = replica.log.end_offset_for_epoch(p.leader_epoch);
                    response.with_leader_epoch(epoch).with_end_offset(end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(wanted.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
