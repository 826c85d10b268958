//! DescribeLogDirs (key 35): the broker's log directory and the size of every partition
//! replica it holds, as `kafka-log-dirs --describe` and `AdminClient.describeLogDirs` ask.
//!
//! Rivulet keeps every partition in one RocksDB database under the first of `log.dirs`, so
//! there is one log directory. A partition's size is the bytes of its record batches (kept
//! with every append), what Kafka reports as the size of its segments. The volume's total
//! and usable bytes (v4, KIP-827) are the file system's, as `statvfs` gives them; -1
//! (unknown) if it cannot be read.

use std::collections::HashSet;
use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use rivulet_protocol::kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // DESCRIBE on the cluster, as Kafka checks (v3+ carries the error; older versions see
    // no log dirs).
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(rivulet_protocol::ResponseError::ClusterAuthorizationFailed.code());
    }
    // `None` asks for every partition.
    let wanted: Option<HashSet<(String, i32)>> = request.topics.map(|topics| {
        topics.iter().flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.0.to_string(), p))).collect()
    });
    let mut topics = Vec::new();
    for topic in broker.replicas.topics.all() {
        let partitions: Vec<DescribeLogDirsPartition> = topic
            .replicas
            .iter()
            .filter(|r| r.is_local())
            .filter(|r| wanted.as_ref().is_none_or(|w| w.contains(&(topic.record.name.clone(), r.index))))
            .map(|r| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(r.index)
                    .with_partition_size(r.log.size_bytes())
                    .with_offset_lag(0)
                    .with_is_future_key(false)
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.record.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    let dir = broker.config.log_dirs[0].display().to_string();
    let (total_bytes, usable_bytes) = match broker.store.volume_space() {
        Ok(space) => (space.total_bytes, space.usable_bytes),
        Err(e) => {
            tracing::warn!(error = %e, "DescribeLogDirs: volume size unknown");
            (-1, -1)
        }
    };
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(dir))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes);
    DescribeLogDirsResponse::default().with_results(vec![result])
}
