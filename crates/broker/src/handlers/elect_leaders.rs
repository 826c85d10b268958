//! ElectLeaders (key 43): preferred or unclean leader election on request, as the
//! `kafka-leader-election` tool and `Admin.electLeaders` ask. On a single node the one
//! broker already leads everything, so no election is ever needed.

use std::collections::BTreeMap;

use rivulet_protocol::kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use rivulet_protocol::kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use rivulet_protocol::ResponseError;

use std::sync::Arc;

use super::{deadline_in, str_bytes, until_deadline};
use crate::broker::Broker;
use crate::membership::etcd::controller::ElectionType;
use crate::request_context::RequestContext;

/// `election_type` values (v1+; v0 always means preferred).
const UNCLEAN: i8 = 1;

fn message(error: ResponseError, topic: &str, partition: i32) -> String {
    match error {
        ResponseError::ElectionNotNeeded => "Leader election not needed for topic partition".to_string(),
        ResponseError::PreferredLeaderNotAvailable => {
            format!("Failed to elect leader for partition {topic}-{partition} under strategy PreferredReplicaPartitionLeaderElectionStrategy")
        }
        ResponseError::EligibleLeadersNotAvailable => {
            format!(
                "Failed to elect leader for partition {topic}-{partition} under strategy UncleanLeaderElectionStrategy"
            )
        }
        other => other.to_string(),
    }
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let version = ctx.api_version;
    let deadline = deadline_in(request.timeout_ms);
    // ALTER on the cluster, as Kafka checks.
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Alter) {
        let error = ResponseError::ClusterAuthorizationFailed;
        if version >= 1 {
            return ElectLeadersResponse::default().with_error_code(error.code());
        }
        let results = request
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|&p| PartitionResult::default().with_partition_id(p).with_error_code(error.code()))
                    .collect();
                ReplicaElectionResult::default().with_topic(t.topic).with_partition_result(partitions)
            })
            .collect();
        return ElectLeadersResponse::default().with_replica_election_results(results);
    }
    let election =
        if version >= 1 && request.election_type == UNCLEAN { ElectionType::Unclean } else { ElectionType::Preferred };
    let wanted: Option<Vec<(String, i32)>> = request.topic_partitions.map(|topics| {
        topics.iter().flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.0.to_string(), p))).collect()
    });
    let membership = broker.membership.clone();
    let asked = wanted.clone();
    let outcome =
        until_deadline(deadline, "ElectLeaders", "", async move { membership.elect_leaders(asked, election).await })
            .await;
    let outcome = outcome.and_then(|elected| {
        elected.map_err(|e| {
            tracing::warn!(error = %e, "leader election failed");
            ResponseError::CoordinatorNotAvailable
        })
    });
    let results = match outcome {
        Ok(results) => results,
        Err(error) if version >= 1 => return ElectLeadersResponse::default().with_error_code(error.code()),
        // v0 has no top-level error: each asked partition carries it.
        Err(error) => wanted.unwrap_or_default().into_iter().map(|(t, p)| (t, p, Some(error))).collect(),
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, error) in results {
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(error.map_or(0, |e| e.code()))
            .with_error_message(error.map(|e| str_bytes(message(e, &topic, partition))));
        by_topic.entry(topic).or_default().push(result);
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(partitions)
            })
            .collect(),
    )
}
