//! The console's JSON documents, built from the broker's own state: the membership
//! (brokers, controller), the topic registry and its logs (partitions, leaders, ISR,
//! sizes, retention), the group coordinator (groups, committed offsets) and the
//! transaction coordinator. Each document says which broker answered, because in a
//! cluster a broker knows log sizes and offsets only of the partitions it holds and
//! coordinates only its share of the groups and transactional ids.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::broker::Broker;
use crate::replication::topics::Topic;
use crate::topic_config::TopicSettings;

/// Who answered: every document starts with it.
#[derive(Debug, Serialize)]
pub struct Answerer {
    pub node_id: i32,
    pub cluster_id: String,
}

fn answerer(broker: &Broker) -> Answerer {
    Answerer { node_id: broker.config.node_id, cluster_id: broker.cluster_id.clone() }
}

#[derive(Debug, Serialize)]
pub struct ClusterView {
    pub answered_by: Answerer,
    pub version: &'static str,
    /// The elected controller (DescribeQuorum's leader), if known.
    pub controller: Option<i32>,
    pub controller_epoch: i32,
    pub brokers: Vec<BrokerView>,
}

#[derive(Debug, Serialize)]
pub struct BrokerView {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub listeners: Vec<String>,
    pub is_controller: bool,
    /// The broker serving this console.
    pub is_this_broker: bool,
    /// Partitions it leads and holds replicas of, as this broker sees the metadata.
    pub leader_partitions: usize,
    pub replica_partitions: usize,
}

pub fn cluster(broker: &Broker) -> ClusterView {
    let quorum = broker.membership.quorum();
    let controller = broker.membership.controller_id().or(quorum.controller);
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    let mut replicas: BTreeMap<i32, usize> = BTreeMap::new();
    for topic in broker.replicas.topics.all() {
        for replica in &topic.replicas {
            let view = replica.view();
            *leaders.entry(view.leader).or_default() += 1;
            for node in &view.replicas {
                *replicas.entry(*node).or_default() += 1;
            }
        }
    }
    let mut brokers: Vec<BrokerView> = broker
        .membership
        .brokers()
        .into_iter()
        .map(|b| BrokerView {
            node_id: b.node_id,
            listeners: b.listeners.iter().map(|l| format!("{}://{}:{}", l.name, l.host, l.port)).collect(),
            is_controller: controller == Some(b.node_id),
            is_this_broker: b.node_id == broker.config.node_id,
            leader_partitions: leaders.get(&b.node_id).copied().unwrap_or(0),
            replica_partitions: replicas.get(&b.node_id).copied().unwrap_or(0),
            host: b.host,
            port: b.port,
            rack: b.rack,
        })
        .collect();
    brokers.sort_by_key(|b| b.node_id);
    ClusterView {
        answered_by: answerer(broker),
        version: env!("CARGO_PKG_VERSION"),
        controller,
        controller_epoch: quorum.controller_epoch,
        brokers,
    }
}

#[derive(Debug, Serialize)]
pub struct TopicsView {
    pub answered_by: Answerer,
    pub topics: Vec<TopicView>,
}

#[derive(Debug, Serialize)]
pub struct TopicView {
    pub name: String,
    pub topic_id: String,
    pub internal: bool,
    pub replication_factor: i16,
    pub cleanup_policy: String,
    /// `retention.ms` in force (the override or the broker default); -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes` per partition in force; -1 = no limit.
    pub retention_bytes: i64,
    /// The topic's overrides, as DescribeConfigs lists them with source TOPIC.
    pub configs: BTreeMap<String, String>,
    /// Bytes of the partitions held here.
    pub local_size_bytes: i64,
    pub partitions: Vec<PartitionView>,
}

#[derive(Debug, Serialize)]
pub struct PartitionView {
    pub partition: i32,
    /// -1 while the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Whether this broker holds a replica; the log fields are known only then.
    pub local: bool,
    pub log_start_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub high_watermark: Option<i64>,
    pub size_bytes: Option<i64>,
}

/// `cleanup.policy` as configured: the override, else Kafka's default.
fn cleanup_policy(topic: &Topic) -> String {
    topic.record.configs.get("cleanup.policy").cloned().unwrap_or_else(|| match topic.settings {
        TopicSettings { compacted: true, delete_retention: true, .. } => "compact,delete".to_string(),
        TopicSettings { compacted: true, .. } => "compact".to_string(),
        _ => "delete".to_string(),
    })
}

pub fn topics(broker: &Broker) -> TopicsView {
    let topics = broker
        .replicas
        .topics
        .all()
        .iter()
        .map(|topic| {
            let partitions: Vec<PartitionView> = topic
                .replicas
                .iter()
                .map(|replica| {
                    let view = replica.view();
                    let local = replica.is_local();
                    let log = local.then_some(&replica.log);
                    PartitionView {
                        partition: replica.index,
                        leader: view.leader,
                        leader_epoch: view.leader_epoch,
                        replicas: view.replicas,
                        isr: view.isr,
                        local,
                        log_start_offset: log.map(|l| l.log_start_offset()),
                        log_end_offset: log.map(|l| l.log_end_offset()),
                        high_watermark: log.map(|l| l.high_watermark()),
                        size_bytes: log.map(|l| l.size_bytes()),
                    }
                })
                .collect();
            TopicView {
                name: topic.record.name.clone(),
                topic_id: topic.record.topic_id.to_string(),
                internal: topic.record.internal,
                replication_factor: topic.record.replication_factor,
                cleanup_policy: cleanup_policy(topic),
                retention_ms: topic.settings.retention_ms.max(-1),
                retention_bytes: topic.settings.retention_bytes.max(-1),
                configs: topic.record.configs.clone(),
                local_size_bytes: partitions.iter().filter_map(|p| p.size_bytes).sum(),
                partitions,
            }
        })
        .collect();
    TopicsView { answered_by: answerer(broker), topics }
}

#[derive(Debug, Serialize)]
pub struct GroupsView {
    pub answered_by: Answerer,
    /// The groups whose coordinator is this broker (its `__consumer_offsets` partitions).
    pub groups: Vec<GroupView>,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    /// The assignor chosen (only while the group is stable, as DescribeGroups says).
    pub protocol: String,
    pub members: Vec<MemberView>,
    pub offsets: Vec<OffsetView>,
    /// Sum of the partitions' lag where known.
    pub total_lag: i64,
}

#[derive(Debug, Serialize)]
pub struct MemberView {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Serialize)]
pub struct OffsetView {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    /// The partition's high watermark, when this broker holds the partition.
    pub end_offset: Option<i64>,
    pub lag: Option<i64>,
}

/// A consumer's lag as `kafka-consumer-groups --describe` computes it: the high watermark
/// (what a read_uncommitted consumer can reach) minus the committed offset, never below 0.
pub fn lag(committed: i64, end_offset: Option<i64>) -> Option<i64> {
    end_offset.filter(|_| committed >= 0).map(|end| (end - committed).max(0))
}

fn end_offset(broker: &Broker, topic: &str, partition: i32) -> Option<i64> {
    let found = broker.replicas.topics.get(topic)?;
    let replica = found.replica(partition)?;
    replica.is_local().then(|| replica.log.high_watermark())
}

pub fn groups(broker: &Broker) -> GroupsView {
    let groups = broker
        .groups
        .list()
        .into_iter()
        .map(|(group_id, protocol_type, state, _group_type)| {
            let description = broker.groups.describe(&group_id);
            let offsets: Vec<OffsetView> = broker
                .groups
                .fetch_offsets(&group_id, None)
                .into_iter()
                .filter_map(|(topic, partition, value)| {
                    let committed = value?.offset;
                    let end_offset = end_offset(broker, &topic, partition);
                    Some(OffsetView {
                        lag: lag(committed, end_offset),
                        topic,
                        partition,
                        committed_offset: committed,
                        end_offset,
                    })
                })
                .collect();
            let (protocol, members) = description.map_or_else(Default::default, |d| {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| MemberView {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                    })
                    .collect();
                (d.protocol_name, members)
            });
            GroupView {
                group_id,
                state,
                protocol_type,
                protocol,
                members,
                total_lag: offsets.iter().filter_map(|o| o.lag).sum(),
                offsets,
            }
        })
        .collect();
    GroupsView { answered_by: answerer(broker), groups }
}

#[derive(Debug, Serialize)]
pub struct TransactionsView {
    pub answered_by: Answerer,
    /// The transactional ids this broker coordinates (its `__transaction_state` partitions).
    pub transactions: Vec<TransactionView>,
}

#[derive(Debug, Serialize)]
pub struct TransactionView {
    pub transactional_id: String,
    pub state: &'static str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the open transaction began; -1 when none is open.
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
    /// `topic-partition` of every partition in the open transaction.
    pub partitions: Vec<String>,
}

pub fn transactions(broker: &Broker) -> TransactionsView {
    let transactions = broker
        .txns
        .list()
        .into_iter()
        .map(|t| TransactionView {
            state: t.value.state.name(),
            producer_id: t.value.producer_id,
            producer_epoch: t.value.producer_epoch,
            timeout_ms: t.value.timeout_ms,
            txn_start_ms: t.value.txn_start_ms,
            last_update_ms: t.value.last_update_ms,
            partitions: t.value.partitions.iter().map(|(topic, p)| format!("{topic}-{p}")).collect(),
            transactional_id: t.transactional_id,
        })
        .collect();
    TransactionsView { answered_by: answerer(broker), transactions }
}

#[derive(Debug, Serialize)]
pub struct MetricsView {
    pub answered_by: Answerer,
    pub interval_ms: u64,
    pub samples: Vec<super::samples::Sample>,
}

pub fn metrics(broker: &Broker, samples: &super::samples::Samples) -> MetricsView {
    MetricsView {
        answered_by: answerer(broker),
        interval_ms: u64::try_from(super::samples::SAMPLE_INTERVAL.as_millis()).unwrap_or(u64::MAX),
        samples: samples.all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_distance_to_the_high_watermark() {
        assert_eq!(lag(40, Some(100)), Some(60));
        assert_eq!(lag(100, Some(100)), Some(0));
        // A committed offset past the high watermark (a truncated log) is no lag.
        assert_eq!(lag(120, Some(100)), Some(0));
        // Unknown here, or nothing committed: no number rather than a wrong one.
        assert_eq!(lag(40, None), None);
        assert_eq!(lag(-1, Some(100)), None);
    }
}
