//! DescribeQuorum (key 55): the metadata quorum, as `kafka-metadata-quorum describe` and
//! `Admin.describeMetadataQuorum` ask.
//!
//! Kafka answers for its KRaft quorum, the `__cluster_metadata` partition 0. Rivulet's
//! metadata lives in the metadata store (etcd in a cluster, the embedded store alone) and
//! is decided by the controller the brokers elect there, so the answer maps onto Kafka's
//! shape like this:
//! * the leader is the controller, its epoch the controller epoch, and it is the one voter
//!   (etcd itself keeps the copies; the controller is the one member that writes);
//! * the other brokers are observers: they apply what the controller decides;
//! * the high watermark, and this broker's log end offset, is the etcd revision this broker
//!   applied last. Other brokers' positions are not known here and are -1, as Kafka reports
//!   a replica it has no fetch state for. A single node's embedded store has no log: -1.
//!
//! Every broker answers from its own view (Kafka's brokers forward to the controller).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rivulet_metadata::BrokerRegistration;
use rivulet_protocol::kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use rivulet_protocol::kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::membership::QuorumView;
use crate::request_context::RequestContext;

/// Kafka's metadata log, the one partition a quorum description is about.
const METADATA_TOPIC: &str = "__cluster_metadata";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn replica(id: i32, log_end_offset: i64, caught_up_at: i64) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(id))
        .with_log_end_offset(log_end_offset)
        .with_last_fetch_timestamp(caught_up_at)
        .with_last_caught_up_timestamp(caught_up_at)
}

/// The controller's endpoints (v2 `nodes`): every listener it registered.
fn node(broker: &BrokerRegistration, request_listener: &str) -> Node {
    let listeners = if broker.listeners.is_empty() {
        vec![Listener::default()
            .with_name(str_bytes(request_listener.to_string()))
            .with_host(str_bytes(broker.host.clone()))
            .with_port(broker.port)]
    } else {
        broker
            .listeners
            .iter()
            .map(|l| {
                Listener::default()
                    .with_name(str_bytes(l.name.clone()))
                    .with_host(str_bytes(l.host.clone()))
                    .with_port(l.port)
            })
            .collect()
    };
    Node::default().with_node_id(BrokerId(broker.node_id)).with_listeners(listeners)
}

/// The partition's description, or the error for it.
fn describe(quorum: &QuorumView, me: i32) -> Result<PartitionData, ResponseError> {
    let controller = quorum.controller.ok_or(ResponseError::NotLeaderOrFollower)?;
    let high_watermark = quorum.applied_revision.unwrap_or(-1);
    let now = now_ms();
    // The controller is caught up with what it decided; only this broker's own position
    // among the others is known.
    let voters = vec![replica(controller, high_watermark, now)];
    let observers = quorum
        .brokers
        .iter()
        .filter(|b| b.node_id != controller)
        .map(|b| if b.node_id == me { replica(me, high_watermark, now) } else { replica(b.node_id, -1, -1) })
        .collect();
    Ok(PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(controller))
        .with_leader_epoch(quorum.controller_epoch)
        .with_high_watermark(high_watermark)
        .with_current_voters(voters)
        .with_observers(observers))
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    // DESCRIBE on the cluster, as Kafka's controller checks.
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Describe) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return DescribeQuorumResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(error.to_string())));
    }
    let quorum = broker.membership.quorum();
    let me = broker.config.node_id;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let is_metadata = topic.topic_name.0.as_str() == METADATA_TOPIC;
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = if is_metadata && p.partition_index == 0 {
                        describe(&quorum, me)
                    } else {
                        Err(ResponseError::UnknownTopicOrPartition)
                    };
                    result.unwrap_or_else(|error| {
                        PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error.code())
                            .with_error_message(Some(str_bytes(error.to_string())))
                    })
                })
                .collect();
            TopicData::default().with_topic_name(topic.topic_name).with_partitions(partitions)
        })
        .collect();
    let nodes = quorum
        .controller
        .and_then(|id| quorum.brokers.iter().find(|b| b.node_id == id))
        .map(|b| vec![node(b, &ctx.listener_name)])
        .unwrap_or_default();
    DescribeQuorumResponse::default().with_topics(topics).with_nodes(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(node_id: i32) -> BrokerRegistration {
        BrokerRegistration { node_id, host: "127.0.0.1".into(), port: 9092, rack: None, listeners: vec![] }
    }

    fn view(controller: Option<i32>) -> QuorumView {
        QuorumView {
            controller,
            controller_epoch: 7,
            applied_revision: Some(42),
            brokers: vec![registration(1), registration(2), registration(3)],
        }
    }

    #[test]
    fn the_controller_is_the_one_voter_and_the_other_brokers_observe() {
        let described = describe(&view(Some(2)), 3).expect("a controller is known");
        assert_eq!((described.leader_id, described.leader_epoch, described.high_watermark), (BrokerId(2), 7, 42));
        let ids =
            |replicas: &[ReplicaState]| replicas.iter().map(|r| (r.replica_id.0, r.log_end_offset)).collect::<Vec<_>>();
        assert_eq!(ids(&described.current_voters), vec![(2, 42)]);
        // Only this broker's (3) own position is known.
        assert_eq!(ids(&described.observers), vec![(1, -1), (3, 42)]);
    }

    #[test]
    fn without_a_controller_the_partition_has_no_leader() {
        assert_eq!(describe(&view(None), 1).err(), Some(ResponseError::NotLeaderOrFollower));
    }

    #[test]
    fn a_store_without_a_log_reports_an_unknown_high_watermark() {
        let alone = QuorumView {
            controller: Some(1),
            controller_epoch: 0,
            applied_revision: None,
            brokers: vec![registration(1)],
        };
        let described = describe(&alone, 1).expect("alone, the broker is the controller");
        assert_eq!(described.high_watermark, -1);
        assert!(described.observers.is_empty());
    }
}
