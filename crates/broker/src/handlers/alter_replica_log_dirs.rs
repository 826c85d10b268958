//! AlterReplicaLogDirs (key 34): move a replica to another of the broker's log directories,
//! as `kafka-reassign-partitions` (a plan with `log_dirs`) and `Admin.alterReplicaLogDirs`
//! ask.
//!
//! Rivulet keeps every partition in one RocksDB database under the one directory `log.dirs`
//! may name (a second directory stops the broker at start), so there is never anywhere to
//! move a replica to. The answers are the ones Kafka's `ReplicaManager.alterReplicaLogDirs`
//! gives a broker with a single log directory: the directory it already lives in is a
//! success with nothing to do, any other path is LOG_DIR_NOT_FOUND ("not found in the
//! config"), and a partition this broker does not hold is REPLICA_NOT_AVAILABLE (or
//! UNKNOWN_TOPIC_OR_PARTITION when the topic or partition does not exist).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, TopicName};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

/// Kafka names a replica's directory while it moves `<topic>-<partition>.<32 hex>-future`
/// and refuses a topic whose name makes that longer than a file name may be (KAFKA-4893).
fn future_dir_name_too_long(topic: &str, partition: i32) -> bool {
    const UNIQUE_ID_AND_SUFFIX: usize = 1 + 32 + "-future".len();
    topic.len() + 1 + partition.to_string().len() + UNIQUE_ID_AND_SUFFIX > 255
}

/// Whether `requested` names the broker's log directory. Kafka compares against each
/// directory's absolute path; the path as configured (what DescribeLogDirs reports) is
/// accepted too.
fn is_the_log_dir(log_dir: &Path, requested: &str) -> bool {
    let configured = log_dir.display().to_string();
    let absolute = std::path::absolute(log_dir).map(|p| p.display().to_string()).unwrap_or_default();
    requested == configured || requested == absolute
}

fn outcome(broker: &Broker, topic: &str, partition: i32, dir: &str) -> Option<ResponseError> {
    if future_dir_name_too_long(topic, partition) {
        return Some(ResponseError::InvalidTopicException);
    }
    if !is_the_log_dir(&broker.config.log_dirs[0], dir) {
        return Some(ResponseError::LogDirNotFound);
    }
    let Some(topic) = broker.replicas.topics.get(topic) else {
        return Some(ResponseError::UnknownTopicOrPartition);
    };
    match topic.replicas.iter().find(|r| r.index == partition) {
        None => Some(ResponseError::UnknownTopicOrPartition),
        Some(replica) if !replica.is_local() => Some(ResponseError::ReplicaNotAvailable),
        // Already in the only directory there is: nothing to move.
        Some(_) => None,
    }
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    // ALTER on the cluster, as Kafka checks; refused, every partition carries the error.
    let allowed = broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Alter);
    // The response groups partitions by topic, in topic order, as Kafka's does.
    let mut results: BTreeMap<String, Vec<AlterReplicaLogDirPartitionResult>> = BTreeMap::new();
    for dir in &request.dirs {
        for topic in &dir.topics {
            let name = topic.name.0.as_str();
            for &partition in &topic.partitions {
                let error = if allowed {
                    outcome(broker, name, partition, dir.path.as_str())
                } else {
                    Some(ResponseError::ClusterAuthorizationFailed)
                };
                if let Some(error) = error {
                    tracing::warn!(topic = name, partition, dir = dir.path.as_str(), %error, "AlterReplicaLogDirs refused");
                }
                results.entry(name.to_string()).or_default().push(
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(error.map_or(0, |e| e.code())),
                );
            }
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(
        results
            .into_iter()
            .map(|(topic, partitions)| {
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(TopicName(str_bytes(topic)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_name_that_makes_the_future_directory_name_too_long_is_refused() {
        // 249 characters is the longest topic name Kafka allows.
        assert!(future_dir_name_too_long(&"t".repeat(249), 0));
        // 255 - len(".<32 hex>-future") - len("-0") = 213.
        assert!(!future_dir_name_too_long(&"t".repeat(213), 0));
        assert!(future_dir_name_too_long(&"t".repeat(214), 0));
        assert!(future_dir_name_too_long(&"t".repeat(213), 10));
    }

    #[test]
    fn the_log_dir_is_recognised_as_configured_or_absolute() {
        let relative = Path::new("data/logs");
        let absolute = std::path::absolute(relative).expect("cwd").display().to_string();
        assert!(is_the_log_dir(relative, "data/logs"));
        assert!(is_the_log_dir(relative, &absolute));
        assert!(!is_the_log_dir(relative, "/elsewhere"));
        assert!(!is_the_log_dir(relative, ""));
    }
}
