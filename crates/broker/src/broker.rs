//! The broker's shared state: configuration, storage, metadata and the topic registry.

use std::sync::Arc;
use std::time::Duration;

use rivulet_metadata::assignment::{assign_replicas, BrokerPlacement};
use rivulet_metadata::{
    BrokerConfigs, BrokerRegistration, EmbeddedMetadataStore, EtcdMetadataStore, MetadataError, MetadataStore,
    NewTopic, TopicRecord,
};
use rivulet_protocol::ResponseError;
use rivulet_storage::{LogClass, LogId, StorageError, Store, StoreOptions};
use tokio::sync::{watch, Mutex};

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::group::persist::OFFSETS_TOPIC;
use crate::group::{GroupCoordinator, GroupSettings};
use crate::replica::{Replica, ReplicaView, Transition};
use crate::topic_config::TopicSettings;
use crate::topics::{Topic, TopicRegistry};
use crate::txn::{MarkerError, MarkerSink, TransactionCoordinator, TxnSettings, TRANSACTION_STATE_TOPIC};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create log directory {path}: {reason}")]
    LogDir { path: String, reason: String },
    #[error("cannot open storage: {0}")]
    Storage(#[from] rivulet_storage::StorageError),
    #[error("cannot load metadata: {0}")]
    Metadata(#[from] MetadataError),
    #[error("cannot load consumer groups: {0}")]
    Groups(#[from] crate::group::PersistError),
    #[error("cannot load transactions: {0}")]
    Transactions(#[from] crate::txn::LoadError),
    #[error("invalid dynamic broker configuration: {0}")]
    DynamicConfig(#[from] crate::config::ConfigError),
}

/// Everything request handlers share.
pub struct Broker {
    /// The static configuration (`server.properties` and `--override`).
    pub config: BrokerConfig,
    /// The dynamic broker configs as the metadata store last said, and the static
    /// configuration with them laid over it: what topics resolve their settings from.
    dynamic: std::sync::RwLock<(BrokerConfigs, Arc<BrokerConfig>)>,
    pub store: Store,
    pub metadata: Arc<dyn MetadataStore>,
    pub topics: TopicRegistry,
    pub cluster_id: String,
    pub groups: GroupCoordinator,
    pub txns: TransactionCoordinator,
    /// With etcd metadata: this broker's membership of the cluster.
    pub cluster: Option<Arc<Cluster>>,
    /// Bumped after every append so long-polling fetches wake up.
    appended: watch::Sender<u64>,
    /// Serialises topic creation and deletion.
    admin: Mutex<()>,
}

/// Kafka's rule for topic names (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!("Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

pub(crate) fn class_of(internal: bool) -> LogClass {
    if internal {
        LogClass::Internal
    } else {
        LogClass::User
    }
}

impl Broker {
    /// Opens storage under the log dir, loads metadata and opens every partition log.
    pub async fn open(config: BrokerConfig) -> Result<Arc<Self>, StartError> {
        // Configuration validation guarantees exactly one directory.
        let dir = config.log_dirs[0].clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::LogDir { path: dir.display().to_string(), reason: e.to_string() })?;
        let mut options = StoreOptions::new(dir.join("rivulet-db"));
        options.flush = config.flush_policy;
        let store = Store::open(&options)?;
        let (metadata, cluster): (Arc<dyn MetadataStore>, _) = match &config.metadata_store {
            None => (Arc::new(EmbeddedMetadataStore::new(store.clone())?), None),
            Some(location) => {
                let connection_timeout = Duration::from_millis(config.metadata_store_connection_timeout_ms);
                tracing::info!(endpoints = ?location.endpoints, timeout_ms = config.metadata_store_connection_timeout_ms, "connecting to etcd");
                let etcd = Arc::new(EtcdMetadataStore::connect(location, connection_timeout).await?);
                let listener = config.advertised();
                let registration = BrokerRegistration {
                    node_id: config.node_id,
                    host: listener.host.clone(),
                    port: listener.port,
                    rack: config.broker_rack.clone(),
                };
                let ttl = Duration::from_millis(config.broker_session_timeout_ms);
                // After a crash the previous registration lives until its lease expires:
                // wait for that rather than fail, as a restarted broker would.
                let deadline = tokio::time::Instant::now() + ttl + Duration::from_secs(5);
                let lease = loop {
                    match etcd.register_broker(&registration, ttl).await {
                        Err(MetadataError::NodeExists(id)) if tokio::time::Instant::now() < deadline => {
                            tracing::info!(
                                node_id = id,
                                "previous registration still alive; waiting for its lease to expire"
                            );
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        other => break other?,
                    }
                };
                tracing::info!(endpoints = ?location.endpoints, root = %location.root, "metadata in etcd");
                let cluster = Arc::new(Cluster::new(etcd.clone(), registration, lease));
                (etcd as Arc<dyn MetadataStore>, Some(cluster))
            }
        };
        let cluster_id = metadata.cluster_id().await?;
        let settings = GroupSettings {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention: Duration::from_secs(config.offsets_retention_minutes * 60),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        };
        let groups = GroupCoordinator::new(settings, config.offsets_topic_num_partitions);
        let txn_settings = TxnSettings { max_timeout_ms: config.transaction_max_timeout_ms };
        let txns = TransactionCoordinator::new(txn_settings, config.transaction_state_log_num_partitions);
        let (appended, _) = watch::channel(0);
        let effective = Arc::new(config.clone());
        let broker = Arc::new(Broker {
            dynamic: std::sync::RwLock::new((BrokerConfigs::new(), effective)),
            config,
            store,
            metadata,
            topics: TopicRegistry::default(),
            cluster_id,
            groups,
            txns,
            cluster,
            appended,
            admin: Mutex::new(()),
        });
        match broker.cluster.clone() {
            // Partitions, leaders and coordinators come from the cluster's metadata; the
            // controller creates the internal topics once enough brokers are alive.
            Some(cluster) => {
                cluster.sync(&broker).await?;
            }
            None => {
                broker.apply_broker_configs(broker.metadata.broker_configs().await?)?;
                for record in broker.metadata.topics().await? {
                    let node = broker.config.node_id;
                    let (topic, _) = broker.build_topic(record, None, |_, _| ReplicaView::single(node, 0))?;
                    broker.topics.insert(Arc::new(topic));
                }
                for (name, partitions) in [
                    (OFFSETS_TOPIC, broker.config.offsets_topic_num_partitions),
                    (TRANSACTION_STATE_TOPIC, broker.config.transaction_state_log_num_partitions),
                ] {
                    if broker.topics.get(name).is_none() {
                        broker.create_internal_topic(name, partitions, 1).await?;
                    }
                }
                for topic in [OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC].iter().filter_map(|n| broker.topics.get(n)) {
                    for (index, log) in topic.logs.iter().enumerate() {
                        if topic.record.name == OFFSETS_TOPIC {
                            broker.groups.load_partition(index as i32, log.clone())?;
                        } else {
                            broker.txns.load_partition(index as i32, log.clone())?;
                        }
                    }
                }
                // Transactions whose outcome was decided before a crash get their markers now.
                broker.txns.recover(&*broker);
            }
        }
        tracing::info!(topics = broker.topics.all().len(), cluster_id = %broker.cluster_id, path = %options.path.display(), "storage opened");
        Ok(broker)
    }

    /// Creates an internal compacted topic (`__consumer_offsets`, `__transaction_state`).
    pub async fn create_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), MetadataError> {
        let new_topic = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
            internal: true,
            assignment: vec![],
        };
        match self.create_topic(new_topic).await {
            Ok(_) | Err(MetadataError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts the broker's timers: the group coordinator's tick every 100 ms and the
    /// transaction coordinator's timeout check every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub fn start_background_tasks(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let period = std::time::Duration::from_millis(self.config.transaction_abort_interval_ms);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                broker.txns.abort_timed_out(&*broker);
                broker.notify_append();
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_millis(100));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                broker.groups.tick();
            }
        });
        crate::retention::start(self);
        crate::cleaner::start(self);
        if self.cluster.is_some() {
            Cluster::start(self);
        }
    }

    /// The in-memory topic for `record`: logs opened, each partition's replica given its
    /// view (from `view_of(partition, replicas)`). Logs and replicas of `existing` (the same
    /// topic as loaded before) are kept. Returns what changed for each replica.
    #[allow(clippy::type_complexity)]
    pub(crate) fn build_topic(
        &self,
        record: TopicRecord,
        existing: Option<&Topic>,
        view_of: impl Fn(i32, &[i32]) -> ReplicaView,
    ) -> Result<(Topic, Vec<(Arc<Replica>, Transition)>), StorageError> {
        let class = class_of(record.internal);
        let mut logs = Vec::with_capacity(record.partitions.len());
        let mut replicas = Vec::with_capacity(record.partitions.len());
        let mut transitions = Vec::new();
        for partition in &record.partitions {
            let replica = match existing.and_then(|t| t.replica(partition.index)) {
                Some(replica) => replica.clone(),
                None => {
                    let log = Arc::new(self.store.open_log(LogId(partition.log_id), class)?);
                    Arc::new(Replica::new(&record.name, partition.index, log, self.config.node_id))
                }
            };
            let transition = replica.update(view_of(partition.index, &partition.replicas));
            transitions.push((replica.clone(), transition));
            logs.push(replica.log.clone());
            replicas.push(replica);
        }
        let settings = TopicSettings::resolve(&record.configs, &self.effective_config());
        Ok((Topic { record, logs, replicas, settings }, transitions))
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
    pub(crate) fn apply_broker_configs(&self, configs: BrokerConfigs) -> Result<(), crate::config::ConfigError> {
        if self.dynamic.read().unwrap_or_else(|p| p.into_inner()).0 == configs {
            return Ok(());
        }
        let effective = Arc::new(self.config.with_dynamic(&configs)?);
        tracing::info!(dynamic = ?configs, "dynamic broker configuration applied");
        *self.dynamic.write().unwrap_or_else(|p| p.into_inner()) = (configs, effective.clone());
        for topic in self.topics.all() {
            let settings = TopicSettings::resolve(&topic.record.configs, &effective);
            if settings != topic.settings {
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

    /// Stores the dynamic configs of one entity (`""` = the cluster default, else a node
    /// id) and waits until this broker applies them.
    pub async fn set_broker_configs(
        &self,
        entity: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let _admin = self.admin.lock().await;
        self.metadata.set_broker_configs(entity, configs.clone()).await?;
        match &self.cluster {
            None => {
                let all = self.metadata.broker_configs().await?;
                self.apply_broker_configs(all).map_err(|e| MetadataError::Corrupt {
                    key: format!("config/brokers/{}", rivulet_metadata::broker_config_entity_name(entity)),
                    reason: e.to_string(),
                })?;
            }
            Some(cluster) => {
                for _ in 0..500 {
                    let applied = self.dynamic_configs().get(entity).cloned().unwrap_or_default();
                    if applied == configs {
                        break;
                    }
                    cluster.request_sync();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Ok(())
    }

    /// Reacts to a partition's new role: coordinators load the internal partitions this
    /// broker now leads and forget those it stopped leading.
    pub(crate) fn on_transition(self: &Arc<Self>, replica: &Arc<Replica>, transition: Transition) {
        let internal = replica.topic == OFFSETS_TOPIC || replica.topic == TRANSACTION_STATE_TOPIC;
        if !internal {
            return;
        }
        match transition {
            Transition::BecameLeader => {
                let broker = self.clone();
                let replica = replica.clone();
                if replica.topic == OFFSETS_TOPIC {
                    self.groups.mark_loading(replica.index);
                } else {
                    self.txns.mark_loading(replica.index);
                }
                // Replaying a partition reads its whole log: off the async workers.
                tokio::task::spawn_blocking(move || {
                    // Only while still leading: leadership may have moved on meanwhile.
                    if !replica.is_leader() {
                        broker.groups.unload_partition(replica.index);
                        broker.txns.unload_partition(replica.index);
                        return;
                    }
                    let loaded = if replica.topic == OFFSETS_TOPIC {
                        broker.groups.load_partition(replica.index, replica.log.clone()).map_err(|e| e.to_string())
                    } else {
                        let loaded =
                            broker.txns.load_partition(replica.index, replica.log.clone()).map_err(|e| e.to_string());
                        broker.txns.recover(&*broker);
                        loaded
                    };
                    match loaded {
                        Ok(()) => {
                            tracing::debug!(topic = %replica.topic, partition = replica.index, "coordinator partition loaded")
                        }
                        Err(e) => {
                            tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "loading coordinator partition failed")
                        }
                    }
                });
            }
            Transition::BecameFollower | Transition::Removed => {
                if replica.topic == OFFSETS_TOPIC {
                    self.groups.unload_partition(replica.index);
                } else {
                    self.txns.unload_partition(replica.index);
                }
            }
            Transition::Unchanged | Transition::Updated => {}
        }
    }

    /// Forgets a topic another broker deleted, and removes its data here.
    pub(crate) fn drop_topic_locally(&self, name: &str) -> Result<(), StorageError> {
        if let Some(topic) = self.topics.remove(name) {
            let class = class_of(topic.record.internal);
            for partition in &topic.record.partitions {
                self.store.delete_log(LogId(partition.log_id), class)?;
            }
            tracing::info!(topic = %name, "topic deleted");
        }
        Ok(())
    }

    /// Where the replicas of `partitions` new partitions (numbered from `first`) go: none on
    /// a single node; Kafka's rack-aware spread over the live brokers in a cluster.
    async fn placement(
        &self,
        partitions: i32,
        replication_factor: i16,
        first: i32,
    ) -> Result<Vec<Vec<i32>>, MetadataError> {
        if self.cluster.is_none() {
            return Ok(vec![]);
        }
        let brokers: Vec<BrokerPlacement> = self
            .live_brokers()
            .await
            .into_iter()
            .map(|b| BrokerPlacement { node_id: b.node_id, rack: b.rack })
            .collect();
        let random = uuid::Uuid::new_v4().as_u128();
        let count = brokers.len().max(1);
        assign_replicas(
            &brokers,
            partitions,
            replication_factor,
            first,
            (random % count as u128) as usize,
            ((random >> 64) % count as u128) as usize,
        )
        .map_err(|e| MetadataError::InvalidReplication(e.to_string()))
    }

    /// Waits (briefly) until the cluster sync has applied a change this broker wrote.
    async fn await_applied(&self, done: impl Fn(Option<Arc<Topic>>) -> bool, name: &str) {
        let Some(cluster) = &self.cluster else { return };
        for _ in 0..500 {
            if done(self.topics.get(name)) {
                return;
            }
            cluster.request_sync();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(topic = %name, "metadata change not applied yet");
    }

    /// Creates a topic in the metadata store and opens its logs.
    pub async fn create_topic(&self, mut new_topic: NewTopic) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        if self.topics.get(&new_topic.name).is_some() {
            return Err(MetadataError::TopicExists(new_topic.name));
        }
        if new_topic.assignment.is_empty() {
            new_topic.assignment = self.placement(new_topic.partitions, new_topic.replication_factor, 0).await?;
        }
        let record = self.metadata.create_topic(new_topic).await?;
        let name = record.name.clone();
        let topic = if self.cluster.is_some() {
            self.await_applied(|t| t.is_some(), &name).await;
            self.topics.get(&name).ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?
        } else {
            let node = self.config.node_id;
            let (topic, _) = self.build_topic(record, None, |_, _| ReplicaView::single(node, 0))?;
            let topic = Arc::new(topic);
            self.topics.insert(topic.clone());
            topic
        };
        tracing::info!(topic = %topic.record.name, partitions = topic.logs.len(), topic_id = %topic.record.topic_id, "topic created");
        Ok(topic)
    }

    /// Grows a topic to `total` partitions; existing partitions keep their open logs.
    pub async fn add_partitions(&self, name: &str, total: i32) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        let existing = self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let current = existing.record.partitions.len() as i32;
        let assignment = if total > current {
            let factor = existing.record.partitions.first().map_or(1, |p| p.replicas.len().max(1)) as i16;
            self.placement(total - current, factor, current).await?
        } else {
            vec![]
        };
        let record = self.metadata.add_partitions(name, total, assignment).await?;
        let topic = if self.cluster.is_some() {
            self.await_applied(|t| t.is_some_and(|t| t.logs.len() >= total as usize), name).await;
            self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?
        } else {
            let node = self.config.node_id;
            let (topic, _) = self.build_topic(record, Some(&existing), |_, _| ReplicaView::single(node, 0))?;
            let topic = Arc::new(topic);
            self.topics.insert(topic.clone());
            topic
        };
        tracing::info!(topic = %name, partitions = total, "partitions added");
        Ok(topic)
    }

    /// Replaces a topic's configuration overrides. The topic's settings (retention, the
    /// produce path's limits) follow at once, here and — through the metadata store — on
    /// every broker of a cluster.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        let existing = self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let record = self.metadata.set_topic_configs(name, configs.clone()).await?;
        let topic = if self.cluster.is_some() {
            self.await_applied(|t| t.is_some_and(|t| t.record.configs == configs), name).await;
            self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?
        } else {
            let node = self.config.node_id;
            let (topic, _) = self.build_topic(record, Some(&existing), |_, _| ReplicaView::single(node, 0))?;
            let topic = Arc::new(topic);
            self.topics.insert(topic.clone());
            topic
        };
        tracing::info!(topic = %name, configs = ?topic.record.configs, "topic configuration changed");
        Ok(topic)
    }

    /// Deletes a topic: metadata first (so it stops being served), then its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), MetadataError> {
        let _admin = self.admin.lock().await;
        self.metadata.delete_topic(name).await?;
        if self.cluster.is_some() {
            self.await_applied(|t| t.is_none(), name).await;
        } else {
            self.drop_topic_locally(name)?;
        }
        Ok(())
    }

    /// The topic named `name`, creating it with the broker defaults when
    /// `auto.create.topics.enable` allows and the client asked for it.
    pub async fn get_or_create_topic(
        &self,
        name: &str,
        allow_auto_create: bool,
    ) -> Result<Option<Arc<Topic>>, MetadataError> {
        if let Some(topic) = self.topics.get(name) {
            return Ok(Some(topic));
        }
        if !allow_auto_create || !self.config.auto_create_topics_enable || validate_topic_name(name).is_err() {
            return Ok(None);
        }
        let new_topic = NewTopic {
            name: name.to_string(),
            partitions: self.config.num_partitions,
            replication_factor: self.config.default_replication_factor,
            configs: Default::default(),
            internal: false,
            assignment: vec![],
        };
        match self.create_topic(new_topic).await {
            Ok(topic) => Ok(Some(topic)),
            Err(MetadataError::TopicExists(_)) => Ok(self.topics.get(name)),
            Err(e) => Err(e),
        }
    }

    /// The brokers Metadata and DescribeCluster list: every live broker of the cluster, or
    /// this one.
    pub fn brokers(&self) -> Vec<BrokerRegistration> {
        match &self.cluster {
            Some(cluster) => cluster.live_brokers(),
            None => {
                let listener = self.config.advertised();
                vec![BrokerRegistration {
                    node_id: self.config.node_id,
                    host: listener.host.clone(),
                    port: listener.port,
                    rack: self.config.broker_rack.clone(),
                }]
            }
        }
    }

    /// The node id Metadata and DescribeCluster name as the controller: the elected one,
    /// or this broker while none is known (just started, or between two controllers).
    /// Clients send CreateTopics, DeleteTopics, CreatePartitions and ElectLeaders there,
    /// and every broker of a Rivulet cluster serves those itself; naming -1 instead leaves
    /// librdkafka's admin client waiting for a controller it never asks about again (as
    /// KRaft brokers, which also forward, name some live broker rather than -1).
    pub fn controller_id(&self) -> i32 {
        match &self.cluster {
            Some(cluster) => cluster.controller_id().unwrap_or(self.config.node_id),
            None => self.config.node_id,
        }
    }

    /// Brokers that can hold replicas now, read from etcd rather than the last sync (a
    /// broker that just registered counts): the live brokers of a cluster, or this one.
    pub async fn live_brokers(&self) -> Vec<BrokerRegistration> {
        match &self.cluster {
            Some(cluster) => match cluster.etcd.live_brokers().await {
                Ok(brokers) => brokers,
                Err(e) => {
                    tracing::warn!(error = %e, "reading live brokers failed; using the last known ones");
                    cluster.live_brokers()
                }
            },
            None => self.brokers(),
        }
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

    /// Waits until `transactional_id`'s state writes are replicated (Kafka's coordinator
    /// writes `__transaction_state` with acks=all), so a decision answered here survives a
    /// coordinator failover.
    pub async fn await_transaction_state(&self, transactional_id: &str) -> Result<(), ResponseError> {
        let partition = self.txns.partition_of(transactional_id);
        match self.await_replicated(TRANSACTION_STATE_TOPIC, partition, Duration::from_secs(5)).await {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    pub fn notify_append(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Makes every acknowledged write durable before exit.
    pub fn shutdown(&self) {
        if let Err(e) = self.store.flush_wal() {
            tracing::error!(error = %e, "flushing the WAL at shutdown failed");
        }
    }
}

impl MarkerSink for Broker {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: rivulet_protocol::record_batch::ControlType,
    ) -> Result<(), MarkerError> {
        let Some(found) = self.topics.get(topic) else {
            tracing::warn!(topic, partition, producer_id, "no marker written: the topic no longer exists");
            return Ok(());
        };
        let Some(replica) = found.replica(partition) else { return Ok(()) };
        if !replica.is_leader() {
            // Another broker leads it: WriteTxnMarkers. On failure the transaction stays
            // prepared and its markers are retried.
            let Some(cluster) = &self.cluster else {
                return Err(MarkerError::NoLeader { topic: topic.to_string(), partition });
            };
            let commit = control == rivulet_protocol::record_batch::ControlType::Commit;
            let leader = replica.view().leader;
            return cluster.write_remote_marker(leader, topic, partition, producer_id, producer_epoch, commit).map_err(
                |reason| MarkerError::Remote { leader, topic: topic.to_string(), partition, source: reason.into() },
            );
        }
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        replica
            .log
            .append_marker(producer_id, producer_epoch, control, 0, replica.leader_epoch(), now_ms)
            .map_err(|source| MarkerError::Append { topic: topic.to_string(), partition, source })?;
        replica.maybe_advance_high_watermark();
        if topic == OFFSETS_TOPIC {
            self.groups.complete_txn(producer_id, control == rivulet_protocol::record_batch::ControlType::Commit);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::validate_topic_name;

    #[test]
    fn topic_names_follow_kafka() {
        assert!(validate_topic_name("orders.v1_2-x").is_ok());
        for bad in ["", ".", "..", "a b", "ünicode", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
