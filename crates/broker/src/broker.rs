//! The broker's shared state: configuration, storage, metadata and the topic registry.

use std::sync::Arc;

use rivulet_metadata::{
    BrokerLease, BrokerRegistration, EmbeddedMetadataStore, EtcdMetadataStore, MetadataError, MetadataStore, NewTopic,
};
use rivulet_storage::{LogClass, LogId, Store, StoreOptions};
use tokio::sync::{watch, Mutex};

use crate::config::BrokerConfig;
use crate::group::persist::OFFSETS_TOPIC;
use crate::group::{GroupCoordinator, GroupSettings};
use crate::topic_config::TopicSettings;
use crate::topics::{Topic, TopicRegistry};
use crate::txn::{MarkerSink, TransactionCoordinator, TxnSettings, TRANSACTION_STATE_TOPIC};

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
    #[error(
        "broker {0} is already registered in this etcd root; replication across brokers is not built yet, \
         so one root serves one broker"
    )]
    ClusterNotSupported(i32),
}

/// Everything request handlers share.
pub struct Broker {
    pub config: BrokerConfig,
    pub store: Store,
    pub metadata: Arc<dyn MetadataStore>,
    pub topics: TopicRegistry,
    pub cluster_id: String,
    pub groups: GroupCoordinator,
    pub txns: TransactionCoordinator,
    /// With etcd metadata: this broker's registration, alive while the broker is.
    _registration: Option<BrokerLease>,
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

fn class_of(internal: bool) -> LogClass {
    if internal {
        LogClass::Internal
    } else {
        LogClass::User
    }
}

impl Broker {
    /// Opens storage under the first log dir, loads metadata and opens every partition log.
    pub async fn open(config: BrokerConfig) -> Result<Arc<Self>, StartError> {
        let dir = config.log_dirs[0].clone();
        if config.log_dirs.len() > 1 {
            tracing::warn!(log_dirs = ?config.log_dirs, "only the first of log.dirs is used");
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::LogDir { path: dir.display().to_string(), reason: e.to_string() })?;
        let mut options = StoreOptions::new(dir.join("rivulet-db"));
        options.flush = config.flush_policy;
        let store = Store::open(&options)?;
        let (metadata, registration): (Arc<dyn MetadataStore>, _) = match &config.metadata_store {
            None => (Arc::new(EmbeddedMetadataStore::new(store.clone())?), None),
            Some(location) => {
                let etcd = EtcdMetadataStore::connect(location).await?;
                if let Some(other) = etcd.live_brokers().await?.into_iter().find(|b| b.node_id != config.node_id) {
                    return Err(StartError::ClusterNotSupported(other.node_id));
                }
                let listener = config.advertised();
                let registration = BrokerRegistration {
                    node_id: config.node_id,
                    host: listener.host.clone(),
                    port: listener.port,
                    rack: config.broker_rack.clone(),
                };
                let ttl = std::time::Duration::from_millis(config.broker_session_timeout_ms);
                // After a crash the previous registration lives until its lease expires:
                // wait for that rather than fail, as a restarted broker would.
                let deadline = tokio::time::Instant::now() + ttl + std::time::Duration::from_secs(5);
                let lease = loop {
                    match etcd.register_broker(&registration, ttl).await {
                        Err(MetadataError::NodeExists(id)) if tokio::time::Instant::now() < deadline => {
                            tracing::info!(
                                node_id = id,
                                "previous registration still alive; waiting for its lease to expire"
                            );
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        }
                        other => break other?,
                    }
                };
                tracing::info!(endpoints = ?location.endpoints, root = %location.root, "metadata in etcd");
                (Arc::new(etcd), Some(lease))
            }
        };
        let cluster_id = metadata.cluster_id().await?;
        let topics = TopicRegistry::default();
        for record in metadata.topics().await? {
            let topic = Self::open_topic(&store, &config, record)?;
            topics.insert(Arc::new(topic));
        }
        tracing::info!(topics = topics.all().len(), %cluster_id, path = %options.path.display(), "storage opened");
        let offsets_topic = Self::open_internal_topic(
            &store,
            &config,
            &*metadata,
            &topics,
            OFFSETS_TOPIC,
            config.offsets_topic_num_partitions,
        )
        .await?;
        let txn_topic = Self::open_internal_topic(
            &store,
            &config,
            &*metadata,
            &topics,
            TRANSACTION_STATE_TOPIC,
            config.transaction_state_log_num_partitions,
        )
        .await?;
        let settings = GroupSettings {
            initial_rebalance_delay: std::time::Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention: std::time::Duration::from_secs(config.offsets_retention_minutes * 60),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        };
        let groups = GroupCoordinator::load(settings, offsets_topic.logs.clone())?;
        let txn_settings = TxnSettings { max_timeout_ms: config.transaction_max_timeout_ms };
        let txns = TransactionCoordinator::load(txn_settings, txn_topic.logs.clone())?;
        let (appended, _) = watch::channel(0);
        let broker = Arc::new(Broker {
            config,
            store,
            metadata,
            topics,
            cluster_id,
            groups,
            txns,
            _registration: registration,
            appended,
            admin: Mutex::new(()),
        });
        // Transactions whose outcome was decided before a crash get their markers now.
        broker.txns.recover(&*broker);
        Ok(broker)
    }

    /// Opens an internal compacted topic, creating it on first start.
    async fn open_internal_topic(
        store: &Store,
        config: &BrokerConfig,
        metadata: &dyn MetadataStore,
        topics: &TopicRegistry,
        name: &str,
        partitions: i32,
    ) -> Result<Arc<Topic>, StartError> {
        if let Some(topic) = topics.get(name) {
            return Ok(topic);
        }
        let record = metadata
            .create_topic(NewTopic {
                name: name.to_string(),
                partitions,
                replication_factor: 1,
                configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
                internal: true,
            })
            .await?;
        let topic = Arc::new(Self::open_topic(store, config, record)?);
        topics.insert(topic.clone());
        Ok(topic)
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
    }

    fn open_topic(
        store: &Store,
        config: &BrokerConfig,
        record: rivulet_metadata::TopicRecord,
    ) -> Result<Topic, rivulet_storage::StorageError> {
        let class = class_of(record.internal);
        let logs = record
            .partitions
            .iter()
            .map(|p| store.open_log(LogId(p.log_id), class).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let settings = TopicSettings::resolve(&record.configs, config);
        Ok(Topic { record, logs, settings })
    }

    /// Creates a topic in the metadata store and opens its logs.
    pub async fn create_topic(&self, new_topic: NewTopic) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        if self.topics.get(&new_topic.name).is_some() {
            return Err(MetadataError::TopicExists(new_topic.name));
        }
        let record = self.metadata.create_topic(new_topic).await?;
        let topic = Arc::new(Self::open_topic(&self.store, &self.config, record)?);
        self.topics.insert(topic.clone());
        tracing::info!(topic = %topic.record.name, partitions = topic.logs.len(), topic_id = %topic.record.topic_id, "topic created");
        Ok(topic)
    }

    /// Grows a topic to `total` partitions; existing partitions keep their open logs.
    pub async fn add_partitions(&self, name: &str, total: i32) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        let record = self.metadata.add_partitions(name, total).await?;
        let existing = self.topics.get(name);
        let class = class_of(record.internal);
        let mut logs = existing.as_ref().map(|t| t.logs.clone()).unwrap_or_default();
        for partition in record.partitions.iter().skip(logs.len()) {
            logs.push(Arc::new(self.store.open_log(LogId(partition.log_id), class)?));
        }
        let settings = TopicSettings::resolve(&record.configs, &self.config);
        let topic = Arc::new(Topic { record, logs, settings });
        self.topics.insert(topic.clone());
        tracing::info!(topic = %name, partitions = total, "partitions added");
        Ok(topic)
    }

    /// Deletes a topic: metadata first (so it stops being served), then its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), MetadataError> {
        let _admin = self.admin.lock().await;
        let record = self.metadata.delete_topic(name).await?;
        self.topics.remove(name);
        let class = class_of(record.internal);
        for partition in &record.partitions {
            self.store.delete_log(LogId(partition.log_id), class)?;
        }
        tracing::info!(topic = %name, "topic deleted");
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
        };
        match self.create_topic(new_topic).await {
            Ok(topic) => Ok(Some(topic)),
            Err(MetadataError::TopicExists(_)) => Ok(self.topics.get(name)),
            Err(e) => Err(e),
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
    ) -> Result<(), String> {
        let Some(found) = self.topics.get(topic) else {
            tracing::warn!(topic, partition, producer_id, "no marker written: the topic no longer exists");
            return Ok(());
        };
        let Some(log) = found.partition(partition) else { return Ok(()) };
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        // The coordinator epoch of a single node never changes.
        log.append_marker(producer_id, producer_epoch, control, 0, found.leader_epoch(partition), now_ms)
            .map_err(|e| e.to_string())?;
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
