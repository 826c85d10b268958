//! The partitions this broker holds and their replication (Kafka's `ReplicaManager`).
//!
//! * [`topics`] — the in-memory registry of topics with their open logs, which the hot
//!   path reads without awaiting anything.
//! * [`replica`] — each partition's replication state: leader, epoch, ISR, follower
//!   progress, high watermark.
//! * [`fetcher`] — the follower side: one task per leader copies its logs.
//! * [`peer`] — a Kafka-protocol client connection to another broker.
//! * [`throttle`] — the bound on replication traffic while partitions are reassigned.
//! * [`ReplicaManager`] — builds and drops topics from metadata records, applies a
//!   cluster's partition states, resolves topic settings against the dynamic broker
//!   configs, and lets produce, fetch and coordinators wait for appends and for the high
//!   watermark.
//!
//! This module decides nothing about leadership: whoever reads the metadata store (the
//! [`crate::membership`] in use) hands it records and views, and it reports each replica's
//! [`replica::Transition`] back. It never reaches the broker, its handlers or coordinators.

pub mod fetcher;
pub mod peer;
pub mod replica;
pub mod throttle;
pub mod topics;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rivulet_metadata::{BrokerConfigs, ClusterSnapshot, TopicRecord};
use rivulet_protocol::ResponseError;
use rivulet_storage::{LogClass, LogId, StorageError, Store};
use tokio::sync::watch;

use crate::config::{BrokerConfig, ConfigError};
use crate::topic_config::TopicSettings;
use replica::{Replica, ReplicaView, Transition};
use topics::{Topic, TopicRegistry};

/// What a topic's replicas became when its record was applied.
pub type Transitions = Vec<(Arc<Replica>, Transition)>;

/// The log class of a topic: internal topics' logs are kept apart from users'.
pub(crate) fn class_of(internal: bool) -> LogClass {
    if internal {
        LogClass::Internal
    } else {
        LogClass::User
    }
}

/// The partitions held here, their logs and replication state.
pub struct ReplicaManager {
    /// The static configuration (`server.properties` and `--override`).
    config: BrokerConfig,
    store: Store,
    pub topics: TopicRegistry,
    /// The dynamic broker configs as the metadata store last said, and the static
    /// configuration with them laid over it: what topics resolve their settings from.
    dynamic: RwLock<(BrokerConfigs, Arc<BrokerConfig>)>,
    /// Bumped after every append so long-polling fetches wake up.
    appended: watch::Sender<u64>,
    /// `leader.replication.throttled.rate`, over what this leader sends to catching-up
    /// followers of throttled replicas.
    pub leader_throttle: throttle::ReplicationThrottle,
    /// `follower.replication.throttled.rate`, over what this follower fetches for
    /// throttled replicas it is catching up.
    pub follower_throttle: throttle::ReplicationThrottle,
}

impl ReplicaManager {
    pub fn new(config: BrokerConfig, store: Store) -> Self {
        let effective = Arc::new(config.clone());
        let (appended, _) = watch::channel(0);
        Self {
            config,
            store,
            topics: TopicRegistry::default(),
            dynamic: RwLock::new((BrokerConfigs::new(), effective)),
            appended,
            leader_throttle: Default::default(),
            follower_throttle: Default::default(),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The in-memory topic for `record`: logs opened, each partition's replica given its
    /// view (from `view_of(partition, replicas)`). Logs and replicas of `existing` (the same
    /// topic as loaded before) are kept. Returns what changed for each replica.
    pub fn build_topic(
        &self,
        record: TopicRecord,
        existing: Option<&Topic>,
        view_of: impl Fn(i32, &[i32]) -> ReplicaView,
    ) -> Result<(Topic, Transitions), StorageError> {
        let class = class_of(record.internal);
        let mut logs = Vec::with_capacity(record.partitions.len());
        let mut replicas = Vec::with_capacity(record.partitions.len());
        let mut transitions = Vec::new();
        let local = self.config.node_id;
        for partition in &record.partitions {
            let mut replica = match existing.and_then(|t| t.replica(partition.index)) {
                Some(replica) => replica.clone(),
                None => {
                    let log = Arc::new(self.store.open_log(LogId(partition.log_id), class)?);
                    Arc::new(Replica::new(&record.name, partition.index, log, local))
                }
            };
            let view = view_of(partition.index, &partition.replicas);
            let transition = replica.update(view.clone());
            // A broker a reassignment moved the partition away from keeps no copy (Kafka's
            // StopReplica with delete), also when it learns of the move after a restart.
            if !partition.replicas.is_empty()
                && !partition.replicas.contains(&local)
                && replica.log.log_end_offset() > 0
            {
                self.store.delete_log(LogId(partition.log_id), class)?;
                tracing::info!(topic = %record.name, partition = partition.index, "no longer a replica: local copy deleted");
                let log = Arc::new(self.store.open_log(LogId(partition.log_id), class)?);
                replica = Arc::new(Replica::new(&record.name, partition.index, log, local));
                replica.update(view);
            }
            transitions.push((replica.clone(), transition));
            logs.push(replica.log.clone());
            replicas.push(replica);
        }
        let settings = TopicSettings::resolve(&record.configs, &self.effective_config());
        for replica in &replicas {
            replica.set_min_insync(settings.min_insync_replicas);
        }
        Ok((Topic { record, logs, replicas, settings }, transitions))
    }

    /// Builds `record` (keeping the logs of the topic of that name held now) with every
    /// partition's view from `view_of`, and serves it from now on.
    pub fn install(
        &self,
        record: TopicRecord,
        view_of: impl Fn(i32, &[i32]) -> ReplicaView,
    ) -> Result<(Arc<Topic>, Transitions), StorageError> {
        let existing = self.topics.get(&record.name).filter(|t| t.record.topic_id == record.topic_id);
        let (topic, transitions) = self.build_topic(record, existing.as_deref(), view_of)?;
        let topic = Arc::new(topic);
        self.topics.insert(topic.clone());
        Ok((topic, transitions))
    }

    /// Applies the topics and partition states of a cluster snapshot: topics appear, grow
    /// and disappear, and each replica learns its leader, epoch and ISR. A topic deleted
    /// and created again under the same name gets a new log.
    pub fn apply_snapshot(&self, snapshot: &ClusterSnapshot) -> Result<Transitions, StorageError> {
        let names: HashSet<&str> = snapshot.topics.iter().map(|t| t.name.as_str()).collect();
        for existing in self.topics.all() {
            if !names.contains(existing.record.name.as_str()) {
                self.drop_topic(&existing.record.name)?;
            }
        }
        let mut transitions = Vec::new();
        for record in &snapshot.topics {
            if self.topics.get(&record.name).is_some_and(|t| t.record.topic_id != record.topic_id) {
                self.drop_topic(&record.name)?;
            }
            let view_of = |index: i32, replicas: &[i32]| match snapshot.states.get(&(record.name.clone(), index)) {
                Some(v) => ReplicaView {
                    leader: v.state.leader,
                    leader_epoch: v.state.leader_epoch,
                    isr: v.state.isr.clone(),
                    replicas: replicas.to_vec(),
                    revision: v.revision,
                    controller_epoch: v.state.controller_epoch,
                },
                None => ReplicaView {
                    leader: -1,
                    leader_epoch: 0,
                    isr: vec![],
                    replicas: replicas.to_vec(),
                    revision: 0,
                    controller_epoch: 0,
                },
            };
            let (_, changed) = self.install(record.clone(), view_of)?;
            transitions.extend(changed);
        }
        Ok(transitions)
    }

    /// Stops serving a topic and removes its data here.
    pub fn drop_topic(&self, name: &str) -> Result<(), StorageError> {
        if let Some(topic) = self.topics.remove(name) {
            let class = class_of(topic.record.internal);
            for partition in &topic.record.partitions {
                self.store.delete_log(LogId(partition.log_id), class)?;
            }
            tracing::info!(topic = %name, "topic deleted");
        }
        Ok(())
    }

    /// The static configuration with the dynamic broker configs laid over it.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.dynamic.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// The dynamic broker configs by entity (`""` = the cluster default).
    pub fn dynamic_configs(&self) -> BrokerConfigs {
        self.dynamic.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Takes the dynamic broker configs the metadata store holds: when they changed, every
    /// topic's settings are resolved again, so retention, cleaner and produce limits follow
    /// without a restart.
    pub fn apply_broker_configs(&self, configs: BrokerConfigs) -> Result<(), ConfigError> {
        if self.dynamic.read().unwrap_or_else(|p| p.into_inner()).0 == configs {
            return Ok(());
        }
        let effective = Arc::new(self.config.with_dynamic(&configs)?);
        tracing::info!(dynamic = ?configs, "dynamic broker configuration applied");
        *self.dynamic.write().unwrap_or_else(|p| p.into_inner()) = (configs, effective.clone());
        for topic in self.topics.all() {
            let settings = TopicSettings::resolve(&topic.record.configs, &effective);
            if settings != topic.settings {
                for replica in &topic.replicas {
                    replica.set_min_insync(settings.min_insync_replicas);
                }
                self.topics.insert(Arc::new(Topic {
                    record: topic.record.clone(),
                    logs: topic.logs.clone(),
                    replicas: topic.replicas.clone(),
                    settings,
                }));
            }
        }
        Ok(())
    }

    /// Every replica held here.
    pub fn replicas(&self) -> impl Iterator<Item = Arc<Replica>> {
        self.topics.all().into_iter().flat_map(|t| t.replicas.clone())
    }

    /// The leaders this broker follows some partition of.
    pub fn leaders_followed(&self) -> HashSet<i32> {
        let local = self.config.node_id;
        self.replicas()
            .map(|r| r.view())
            .filter(|v| v.leader >= 0 && v.leader != local && v.replicas.contains(&local))
            .map(|v| v.leader)
            .collect()
    }

    /// Partitions this broker holds a replica of and `leader` leads.
    pub fn followed_from(&self, leader: i32) -> Vec<Arc<Replica>> {
        let local = self.config.node_id;
        self.replicas()
            .filter(|r| {
                let view = r.view();
                view.leader == leader && view.replicas.contains(&local)
            })
            .collect()
    }

    pub fn notify_append(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Whether everything written so far to `topic`-`partition` (by this broker, its
    /// leader) is already in the ISR, without waiting. False when it is not led here.
    pub fn replicated_now(&self, topic: &str, partition: i32) -> bool {
        let Some(replica) = self.topics.get(topic).and_then(|t| t.replica(partition).cloned()) else {
            return false;
        };
        replica.maybe_advance_high_watermark();
        replica.is_leader() && replica.log.high_watermark() >= replica.log.log_end_offset()
    }

    /// Waits until everything written so far to `topic`-`partition` (by this broker, its
    /// leader) is replicated to the ISR. `None` on success; otherwise the error a
    /// coordinator answers: NOT_COORDINATOR when leadership moved, COORDINATOR_NOT_AVAILABLE
    /// when the replicas did not catch up within `timeout`.
    pub async fn await_replicated(&self, topic: &str, partition: i32, timeout: Duration) -> Option<ResponseError> {
        let replica = self.topics.get(topic).and_then(|t| t.replica(partition).cloned())?;
        let end = replica.log.log_end_offset();
        replica.maybe_advance_high_watermark();
        // Followers long-polling this partition fetch the new records now.
        self.notify_append();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.subscribe_appends();
        loop {
            if !replica.is_leader() {
                return Some(ResponseError::NotCoordinator);
            }
            if replica.log.high_watermark() >= end {
                return None;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Some(ResponseError::CoordinatorNotAvailable),
            }
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }
}
