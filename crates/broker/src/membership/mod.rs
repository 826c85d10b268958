//! How this broker takes part in a cluster: the one seam between "alone" and "one of many".
//!
//! * [`SingleNode`] — metadata in the embedded store; this broker holds and leads every
//!   partition, and a change it writes is applied here at once.
//! * [`etcd::Cluster`] — metadata in etcd shared by several brokers: registration with a
//!   lease, a controller elected among them, partition states written by compare-and-swap,
//!   followers fetching from leaders; changes are applied by a sync task watching etcd.
//!
//! The broker holds an `Arc<dyn Membership>` and never asks which one it has.
//! Dependencies point one way: the broker uses a membership, a membership drives
//! [`crate::replication`], and it reaches back into the broker only through [`Node`]
//! (so that coordinators learn which internal partitions this broker leads).

pub mod etcd;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use rivulet_metadata::{BrokerRegistration, MetadataError, MetadataStore, NewTopic, TopicRecord};
use rivulet_protocol::record_batch::ControlType;
use rivulet_protocol::ResponseError;
use rivulet_storage::StorageError;

use crate::config::ConfigError;
use crate::group::persist::OFFSETS_TOPIC;
use crate::replication::replica::{Replica, ReplicaView, Transition};
use crate::replication::topics::Topic;
use crate::replication::ReplicaManager;
use crate::txn::{MarkerError, TRANSACTION_STATE_TOPIC};
use etcd::controller::ElectionType;

/// Why joining failed at start.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("invalid dynamic broker configuration: {0}")]
    DynamicConfig(#[from] ConfigError),
}

/// What a membership may ask of the broker it serves.
pub trait Node: Send + Sync {
    /// A partition's replica took a new role: the coordinators load or drop its state.
    fn role_changed(self: Arc<Self>, replica: &Arc<Replica>, transition: Transition);
    /// The ACLs as the store holds them now (read at every sync in a cluster, so a change
    /// made through another broker applies here within a sync).
    fn acls_read(&self, acls: Vec<rivulet_metadata::AclBinding>);
    /// The client quotas as the store holds them now (read at every sync, as the ACLs).
    fn quotas_read(&self, quotas: Vec<(rivulet_metadata::QuotaEntity, rivulet_metadata::QuotaValues)>);
    /// The client-metrics subscriptions as the store holds them now (read at every sync).
    fn client_metrics_read(&self, configs: rivulet_metadata::ClientMetricsConfigs);
}

/// Who decides the cluster's metadata and how far this broker has applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    /// The controller, if one is elected.
    pub controller: Option<i32>,
    /// The controller's term: each election raises it.
    pub controller_epoch: i32,
    /// The metadata store's revision this broker applied last; `None` when the store is
    /// not a log (the embedded store of a single node).
    pub applied_revision: Option<i64>,
    /// The brokers as last seen.
    pub brokers: Vec<BrokerRegistration>,
}

/// This broker's part in a cluster (or its standing alone).
#[async_trait]
pub trait Membership: Send + Sync {
    /// Brings this broker's topics, partition roles and dynamic configs in line with the
    /// metadata store, before it serves.
    async fn join(&self, node: Weak<dyn Node>) -> Result<(), JoinError>;

    /// Starts the background tasks keeping this broker in step (none when alone).
    fn start(self: Arc<Self>);

    /// The brokers Metadata and DescribeCluster list, as last seen.
    fn brokers(&self) -> Vec<BrokerRegistration>;

    /// Brokers that can hold replicas now, read from the store (one that just registered
    /// counts).
    async fn live_brokers(&self) -> Vec<BrokerRegistration>;

    /// The elected controller, if one is known.
    fn controller_id(&self) -> Option<i32>;

    /// The metadata quorum as this broker last saw it (DescribeQuorum).
    fn quorum(&self) -> QuorumView;

    /// Whether this broker may acknowledge writes: not while its registration may have
    /// lapsed, since another broker may lead its partitions by now.
    fn may_acknowledge(&self) -> bool;

    /// Whether partitions have replica lists spread over brokers (a single node keeps none:
    /// it holds every partition).
    fn assigns_replicas(&self) -> bool;

    /// Where the replicas of `partitions` new partitions (numbered from `first`) go: none
    /// on a single node; Kafka's rack-aware spread over the live brokers in a cluster.
    async fn placement(
        &self,
        partitions: i32,
        replication_factor: i16,
        first: i32,
    ) -> Result<Vec<Vec<i32>>, MetadataError>;

    /// A topic change this broker wrote to the metadata store (`record` = the topic now,
    /// `None` = deleted), made visible here; waits (briefly) until `done` holds for the
    /// registry's topic of that name.
    async fn topic_written(
        &self,
        name: &str,
        record: Option<TopicRecord>,
        done: &(dyn Fn(Option<Arc<Topic>>) -> bool + Send + Sync),
    ) -> Result<(), StorageError>;

    /// Dynamic broker configs this broker wrote for `entity` (`""` = the cluster default),
    /// applied here before returning.
    async fn broker_configs_written(
        &self,
        entity: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), MetadataError>;

    /// A leader's decision to shrink or expand a partition's ISR.
    fn propose_isr(&self, replica: &Arc<Replica>, isr: Vec<i32>);

    /// ElectLeaders for `partitions` (every partition when `None`).
    async fn elect_leaders(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        election: ElectionType,
    ) -> Result<Vec<(String, i32, Option<ResponseError>)>, MetadataError>;

    /// Starts or changes (`Some(target)`) or cancels (`None`) the reassignment of a
    /// partition to other brokers (KIP-455); the controller completes it once the target
    /// replicas are in sync.
    async fn alter_reassignment(
        &self,
        topic: &str,
        partition: i32,
        target: Option<Vec<i32>>,
    ) -> Result<(), MetadataError>;

    /// Writes a transaction marker into a partition led by another broker, from a
    /// coordinator of `coordinator_epoch`.
    #[allow(clippy::too_many_arguments)]
    fn write_remote_marker(
        &self,
        leader: i32,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
    ) -> Result<(), MarkerError>;
}

/// The record of an internal compacted topic (`__consumer_offsets`,
/// `__transaction_state`) with the replicas in `assignment` (none on a single node).
pub fn internal_topic(name: &str, partitions: i32, replication_factor: i16, assignment: Vec<Vec<i32>>) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
        internal: true,
        assignment,
    }
}

/// What this broker registers as (and Metadata lists): its node id, its first advertised
/// listener (where other brokers reach it), every advertised listener, and its rack.
pub fn registration_of(config: &crate::config::BrokerConfig) -> BrokerRegistration {
    let listener = config.advertised();
    BrokerRegistration {
        node_id: config.node_id,
        host: listener.host.clone(),
        port: listener.port,
        rack: config.broker_rack.clone(),
        listeners: config
            .advertised_listeners
            .iter()
            .map(|l| rivulet_metadata::ListenerEndpoint { name: l.name.clone(), host: l.host.clone(), port: l.port })
            .collect(),
    }
}

/// A broker on its own: the embedded metadata store, every partition led here.
///
/// Roles never change after a partition appears (it is led here from the start), so
/// [`Node::role_changed`] is never called: the broker loads the coordinator partitions it
/// leads itself once joined.
pub struct SingleNode {
    me: BrokerRegistration,
    metadata: Arc<dyn MetadataStore>,
    replicas: Arc<ReplicaManager>,
}

impl SingleNode {
    pub fn new(me: BrokerRegistration, metadata: Arc<dyn MetadataStore>, replicas: Arc<ReplicaManager>) -> Self {
        Self { me, metadata, replicas }
    }

    fn install(&self, record: TopicRecord) -> Result<(), StorageError> {
        let node = self.me.node_id;
        self.replicas.install(record, |_, _| ReplicaView::single(node, 0)).map(|_| ())
    }
}

#[async_trait]
impl Membership for SingleNode {
    /// Opens the topics the embedded store holds and, on first start, creates the
    /// internal topics (in a cluster the controller does, once enough brokers are alive).
    async fn join(&self, _node: Weak<dyn Node>) -> Result<(), JoinError> {
        self.replicas.apply_broker_configs(self.metadata.broker_configs().await?)?;
        for record in self.metadata.topics().await? {
            self.install(record)?;
        }
        let config = self.replicas.config();
        for (name, partitions) in [
            (OFFSETS_TOPIC, config.offsets_topic_num_partitions),
            (TRANSACTION_STATE_TOPIC, config.transaction_state_log_num_partitions),
        ] {
            if self.replicas.topics.get(name).is_none() {
                let record = self.metadata.create_topic(internal_topic(name, partitions, 1, vec![])).await?;
                self.install(record)?;
            }
        }
        Ok(())
    }

    fn start(self: Arc<Self>) {}

    fn brokers(&self) -> Vec<BrokerRegistration> {
        vec![self.me.clone()]
    }

    async fn live_brokers(&self) -> Vec<BrokerRegistration> {
        self.brokers()
    }

    fn controller_id(&self) -> Option<i32> {
        Some(self.me.node_id)
    }

    fn quorum(&self) -> QuorumView {
        // Alone, the broker is its own controller for good, and the embedded store keeps
        // no log whose offset could be reported.
        QuorumView {
            controller: Some(self.me.node_id),
            controller_epoch: 0,
            applied_revision: None,
            brokers: self.brokers(),
        }
    }

    fn may_acknowledge(&self) -> bool {
        true
    }

    fn assigns_replicas(&self) -> bool {
        false
    }

    async fn placement(&self, _partitions: i32, _factor: i16, _first: i32) -> Result<Vec<Vec<i32>>, MetadataError> {
        Ok(vec![])
    }

    async fn topic_written(
        &self,
        name: &str,
        record: Option<TopicRecord>,
        _done: &(dyn Fn(Option<Arc<Topic>>) -> bool + Send + Sync),
    ) -> Result<(), StorageError> {
        match record {
            Some(record) => self.install(record),
            None => self.replicas.drop_topic(name),
        }
    }

    async fn broker_configs_written(
        &self,
        entity: &str,
        _configs: &BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let all = self.metadata.broker_configs().await?;
        self.replicas.apply_broker_configs(all).map_err(|e| MetadataError::Corrupt {
            key: format!("config/brokers/{}", rivulet_metadata::broker_config_entity_name(entity)),
            reason: e.to_string(),
        })
    }

    fn propose_isr(&self, _replica: &Arc<Replica>, _isr: Vec<i32>) {}

    async fn elect_leaders(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        _election: ElectionType,
    ) -> Result<Vec<(String, i32, Option<ResponseError>)>, MetadataError> {
        // Every partition is led by its only replica: no election is ever needed.
        Ok(partitions
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partition)| {
                let known = self.replicas.topics.get(&topic).is_some_and(|t| t.replica(partition).is_some());
                let error =
                    if known { ResponseError::ElectionNotNeeded } else { ResponseError::UnknownTopicOrPartition };
                (topic, partition, Some(error))
            })
            .collect())
    }

    /// The one broker holds every partition: a target of just this broker changes
    /// nothing, and no other broker is registered.
    async fn alter_reassignment(
        &self,
        _topic: &str,
        _partition: i32,
        target: Option<Vec<i32>>,
    ) -> Result<(), MetadataError> {
        let Some(target) = target else {
            return Err(MetadataError::NoReassignmentInProgress);
        };
        let registered: std::collections::HashSet<i32> = [self.me.node_id].into_iter().collect();
        rivulet_metadata::reassignment::validate_target(&target, &registered)
    }

    fn write_remote_marker(
        &self,
        _leader: i32,
        topic: &str,
        partition: i32,
        _producer_id: i64,
        _producer_epoch: i16,
        _control: ControlType,
        _coordinator_epoch: i32,
    ) -> Result<(), MarkerError> {
        Err(MarkerError::NoLeader { topic: topic.to_string(), partition })
    }
}
