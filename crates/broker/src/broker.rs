//! The broker's shared state: configuration, storage, metadata and the topic registry.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rivulet_metadata::{
    AclBinding, AclOperation, EmbeddedMetadataStore, MetadataError, MetadataStore, NewTopic, QuotaEntity, QuotaValues,
    ResourceType,
};
use rivulet_protocol::record_batch::ControlType;
use rivulet_protocol::ResponseError;
use rivulet_storage::{Store, StoreOptions};
use tokio::sync::Mutex;

use crate::config::BrokerConfig;
use crate::group::persist::OFFSETS_TOPIC;
use crate::group::{GroupCoordinator, GroupSettings};
use crate::membership::etcd::Cluster;
use crate::membership::{registration_of, JoinError, Membership, Node, SingleNode};
use crate::quota::{QuotaManager, QuotaWindow};
use crate::replication::replica::{Replica, Transition};
use crate::replication::topics::Topic;
use crate::replication::ReplicaManager;
use crate::request_context::RequestContext;
use crate::security::authorizer::{all_operations, Authorizer, CLUSTER_NAME};
use crate::telemetry::ClientTelemetry;
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
    #[error("cannot join: {0}")]
    Join(#[from] JoinError),
    #[error("cannot load consumer groups: {0}")]
    Groups(#[from] crate::group::PersistError),
    #[error("cannot load transactions: {0}")]
    Transactions(#[from] crate::txn::LoadError),
}

/// Everything request handlers share.
pub struct Broker {
    /// The static configuration (`server.properties` and `--override`).
    pub config: BrokerConfig,
    pub store: Store,
    pub metadata: Arc<dyn MetadataStore>,
    /// The partitions held here: topics, logs, replication state, dynamic configs.
    pub replicas: Arc<ReplicaManager>,
    /// This broker alone, or its part in an etcd cluster.
    pub membership: Arc<dyn Membership>,
    pub cluster_id: String,
    pub groups: GroupCoordinator,
    pub txns: TransactionCoordinator,
    /// The ACL authorizer (`authorizer.class.name`); none means every request is allowed.
    pub authorizer: Option<Arc<Authorizer>>,
    /// Client quotas and the usage measured against them.
    pub quotas: QuotaManager,
    /// Client-metrics subscriptions and what clients push (KIP-714).
    pub telemetry: ClientTelemetry,
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

impl Broker {
    /// Opens storage under the log dir, joins (alone or the etcd cluster), opens every
    /// partition log and loads the coordinator partitions led here.
    pub async fn open(config: BrokerConfig) -> Result<Arc<Self>, StartError> {
        // Configuration validation guarantees exactly one directory.
        let dir = config.log_dirs[0].clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::LogDir { path: dir.display().to_string(), reason: e.to_string() })?;
        let mut options = StoreOptions::new(dir.join("rivulet-db"));
        options.flush = config.flush_policy;
        let store = Store::open(&options)?;
        let replicas = Arc::new(ReplicaManager::new(config.clone(), store.clone()));
        let (metadata, membership): (Arc<dyn MetadataStore>, Arc<dyn Membership>) = match &config.metadata_store {
            None => {
                let metadata: Arc<dyn MetadataStore> = Arc::new(EmbeddedMetadataStore::new(store.clone())?);
                let me = registration_of(&config);
                (metadata.clone(), Arc::new(SingleNode::new(me, metadata, replicas.clone())))
            }
            Some(location) => {
                let cluster = Cluster::connect(&config, location, replicas.clone()).await?;
                (cluster.store(), cluster)
            }
        };
        let cluster_id = metadata.cluster_id().await?;
        let settings = GroupSettings {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention: Duration::from_secs(config.offsets_retention_minutes * 60),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
            consumer: config.group_consumer.clone(),
        };
        let groups = GroupCoordinator::new(settings, config.offsets_topic_num_partitions);
        let txn_settings = TxnSettings { max_timeout_ms: config.transaction_max_timeout_ms };
        let txns = TransactionCoordinator::new(txn_settings, config.transaction_state_log_num_partitions);
        let authorizer = config.security.authorizer.clone().map(|c| Arc::new(Authorizer::new(c)));
        let quotas = QuotaManager::new(QuotaWindow {
            samples: config.quota_window_num,
            sample: Duration::from_secs(u64::from(config.quota_window_size_seconds)),
        });
        let broker = Arc::new(Broker {
            authorizer,
            quotas,
            telemetry: ClientTelemetry::new(),
            config,
            store,
            metadata,
            replicas,
            membership,
            cluster_id,
            groups,
            txns,
            admin: Mutex::new(()),
        });
        let node: Weak<dyn Node> = Arc::downgrade(&broker) as Weak<Broker>;
        broker.membership.join(node).await?;
        if let Some(authorizer) = &broker.authorizer {
            // Before serving: requests are never checked against an empty ACL set by mistake.
            authorizer.replace_acls(broker.metadata.acls().await?);
        }
        broker.quotas.replace_quotas(broker.metadata.client_quotas().await?);
        broker.telemetry.replace_subscriptions(broker.metadata.client_metrics_configs().await?);
        broker.load_led_coordinator_partitions()?;
        tracing::info!(topics = broker.replicas.topics.all().len(), cluster_id = %broker.cluster_id, path = %options.path.display(), "storage opened");
        Ok(broker)
    }

    /// Loads, before the broker serves, the coordinator partitions it leads that no role
    /// change handed to the coordinators yet (on a single node: all of them), then writes
    /// the markers of transactions whose outcome was decided before a crash.
    fn load_led_coordinator_partitions(&self) -> Result<(), StartError> {
        let mut loaded_txns = false;
        for topic in [OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC].iter().filter_map(|n| self.replicas.topics.get(n)) {
            for replica in topic.replicas.iter().filter(|r| r.is_leader()) {
                let index = replica.index;
                if topic.record.name == OFFSETS_TOPIC {
                    if self.groups.partition_status(index) == Some(ResponseError::NotCoordinator) {
                        self.groups.load_partition(index, replica.log.clone())?;
                    }
                } else if self.txns.partition_status(index) == Some(ResponseError::NotCoordinator) {
                    self.txns.load_partition(index, replica.log.clone(), replica.leader_epoch())?;
                    loaded_txns = true;
                }
            }
        }
        if loaded_txns {
            self.txns.recover(self);
        }
        Ok(())
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
                broker.replicas.notify_append();
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
        crate::producer_expiry::start(self);
        self.membership.clone().start();
    }

    /// The brokers Metadata, FindCoordinator and DescribeCluster list to a client that came
    /// in on `listener`: each at its advertised listener of that name, as Kafka answers per
    /// listener (so a client of the SASL listeners stays on them), a broker without one at
    /// its registered endpoint.
    pub(crate) fn brokers_for(&self, listener: &str) -> Vec<rivulet_metadata::BrokerRegistration> {
        self.membership.brokers().into_iter().map(|b| b.for_listener(listener)).collect()
    }

    /// Stores the dynamic configs of one entity (`""` = the cluster default, else a node
    /// id) and waits until this broker applies them.
    pub async fn set_broker_configs(
        &self,
        entity: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let _admin = self.admin.lock().await;
        self.metadata.set_broker_configs(entity, configs.clone()).await?;
        self.membership.broker_configs_written(entity, &configs).await
    }

    /// Stores the configs of client-metrics subscription `name` (an empty map deletes it)
    /// and applies the store's subscriptions here; other brokers apply them at their next
    /// sync.
    pub async fn set_client_metrics_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let _admin = self.admin.lock().await;
        self.metadata.set_client_metrics_configs(name, configs).await?;
        self.telemetry.replace_subscriptions(self.metadata.client_metrics_configs().await?);
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
                        // Kafka's coordinator epoch: the leader epoch this broker loads the
                        // partition in, which a deposed coordinator's can never reach.
                        let loaded = broker
                            .txns
                            .load_partition(replica.index, replica.log.clone(), replica.leader_epoch())
                            .map_err(|e| e.to_string());
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

    /// Creates a topic in the metadata store and opens its logs.
    pub async fn create_topic(&self, mut new_topic: NewTopic) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        if self.replicas.topics.get(&new_topic.name).is_some() {
            return Err(MetadataError::TopicExists(new_topic.name));
        }
        if new_topic.assignment.is_empty() {
            new_topic.assignment =
                self.membership.placement(new_topic.partitions, new_topic.replication_factor, 0).await?;
        }
        let record = self.metadata.create_topic(new_topic).await?;
        let name = record.name.clone();
        let topic = self.written(&name, Some(record), &|t| t.is_some()).await?;
        tracing::info!(topic = %topic.record.name, partitions = topic.logs.len(), topic_id = %topic.record.topic_id, "topic created");
        Ok(topic)
    }

    /// Makes a topic this broker wrote to the metadata store visible here, and returns it.
    async fn written(
        &self,
        name: &str,
        record: Option<rivulet_metadata::TopicRecord>,
        done: &(dyn Fn(Option<Arc<Topic>>) -> bool + Send + Sync),
    ) -> Result<Arc<Topic>, MetadataError> {
        self.membership.topic_written(name, record, done).await?;
        self.replicas.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))
    }

    /// Grows a topic to `total` partitions; existing partitions keep their open logs.
    pub async fn add_partitions(&self, name: &str, total: i32) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        let existing = self.replicas.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let current = existing.record.partitions.len() as i32;
        let assignment = if total > current {
            let factor = existing.record.partitions.first().map_or(1, |p| p.replicas.len().max(1)) as i16;
            self.membership.placement(total - current, factor, current).await?
        } else {
            vec![]
        };
        let record = self.metadata.add_partitions(name, total, assignment).await?;
        let topic = self.written(name, Some(record), &|t| t.is_some_and(|t| t.logs.len() >= total as usize)).await?;
        tracing::info!(topic = %name, partitions = total, "partitions added");
        Ok(topic)
    }

    /// Replaces a topic's configuration overrides. The topic's settings (retention, the
    /// produce path's limits) follow at once, here and — through the metadata store — on
    /// every broker of a cluster.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, MetadataError> {
        let _admin = self.admin.lock().await;
        if self.replicas.topics.get(name).is_none() {
            return Err(MetadataError::UnknownTopic(name.to_string()));
        }
        let record = self.metadata.set_topic_configs(name, configs.clone()).await?;
        let topic = self.written(name, Some(record), &|t| t.is_some_and(|t| t.record.configs == configs)).await?;
        tracing::info!(topic = %name, configs = ?topic.record.configs, "topic configuration changed");
        Ok(topic)
    }

    /// Deletes a topic: metadata first (so it stops being served), then its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), MetadataError> {
        let _admin = self.admin.lock().await;
        self.metadata.delete_topic(name).await?;
        self.membership.topic_written(name, None, &|t| t.is_none()).await?;
        Ok(())
    }

    /// The topic named `name`, creating it with the broker defaults when
    /// `auto.create.topics.enable` allows and the client asked for it.
    pub async fn get_or_create_topic(
        &self,
        name: &str,
        allow_auto_create: bool,
    ) -> Result<Option<Arc<Topic>>, MetadataError> {
        if let Some(topic) = self.replicas.topics.get(name) {
            return Ok(Some(topic));
        }
        if !allow_auto_create || !self.config.auto_create_topics_enable || validate_topic_name(name).is_err() {
            return Ok(None);
        }
        // The coordinators' logs are created with their own partition counts and replication
        // (by the controller in a cluster, at start alone); one made here from the defaults
        // would take their place with one partition. A client asking early retries.
        if name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC {
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
            Err(MetadataError::TopicExists(_)) => Ok(self.replicas.topics.get(name)),
            Err(e) => Err(e),
        }
    }

    /// The node id Metadata and DescribeCluster name as the controller: this broker.
    /// Clients send the controller's requests there (CreateTopics, DeleteTopics,
    /// CreatePartitions, ElectLeaders, AlterPartitionReassignments, ...), and every broker
    /// of a Rivulet cluster serves those itself, as KRaft brokers (which forward) name some
    /// live broker. Naming the elected controller would leave admin clients waiting on it
    /// while it is paused or cut off and its lease has not yet expired; naming -1 leaves
    /// librdkafka's admin client waiting for a controller it never asks about again.
    /// `kafka-metadata-quorum` (DescribeQuorum) shows the elected one.
    pub fn controller_id(&self) -> i32 {
        self.config.node_id
    }

    /// Waits until `transactional_id`'s state writes are replicated (Kafka's coordinator
    /// writes `__transaction_state` with acks=all), so a decision answered here survives a
    /// coordinator failover.
    pub async fn await_transaction_state(&self, transactional_id: &str) -> Result<(), ResponseError> {
        let partition = self.txns.partition_of(transactional_id);
        match self.replicas.await_replicated(TRANSACTION_STATE_TOPIC, partition, Duration::from_secs(5)).await {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    /// Makes every acknowledged write durable before exit.
    pub fn shutdown(&self) {
        if let Err(e) = self.store.flush_wal() {
            tracing::error!(error = %e, "flushing the WAL at shutdown failed");
        }
    }
}

impl Node for Broker {
    fn role_changed(self: Arc<Self>, replica: &Arc<Replica>, transition: Transition) {
        self.on_transition(replica, transition);
    }

    fn acls_read(&self, acls: Vec<AclBinding>) {
        if let Some(authorizer) = &self.authorizer {
            authorizer.replace_acls(acls);
        }
    }

    fn quotas_read(&self, quotas: Vec<(QuotaEntity, QuotaValues)>) {
        self.quotas.replace_quotas(quotas);
    }

    fn client_metrics_read(&self, configs: rivulet_metadata::ClientMetricsConfigs) {
        self.telemetry.replace_subscriptions(configs);
    }
}

impl Broker {
    /// Whether the request's principal may perform `operation` on the resource `name` of
    /// type `kind`; always true without an authorizer. A denial is logged and counted.
    pub(crate) fn authorized(
        &self,
        ctx: &RequestContext,
        operation: AclOperation,
        kind: ResourceType,
        name: &str,
    ) -> bool {
        let Some(authorizer) = &self.authorizer else { return true };
        let allowed = authorizer.authorize(&ctx.principal, ctx.peer.ip(), operation, kind, name);
        if !allowed {
            self.denied(ctx, operation, kind, name);
        }
        allowed
    }

    /// [`Broker::authorized`] without the log line and count: for checks whose denial
    /// only narrows an answer (topics left out of a listing, a fallback check).
    pub(crate) fn may(&self, ctx: &RequestContext, operation: AclOperation, kind: ResourceType, name: &str) -> bool {
        self.authorizer.as_ref().is_none_or(|a| a.authorize(&ctx.principal, ctx.peer.ip(), operation, kind, name))
    }

    /// Whether the principal may create the topic `name`: CREATE on the cluster or on the
    /// topic, as Kafka checks for CreateTopics and auto-creation.
    pub(crate) fn may_create_topic(&self, ctx: &RequestContext, name: &str) -> bool {
        self.may(ctx, AclOperation::Create, ResourceType::Cluster, CLUSTER_NAME)
            || self.authorized(ctx, AclOperation::Create, ResourceType::Topic, name)
    }

    /// Whether the principal may perform `operation` on the cluster resource.
    pub(crate) fn authorized_cluster(&self, ctx: &RequestContext, operation: AclOperation) -> bool {
        self.authorized(ctx, operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether the principal may perform `operation` on some resource of type `kind`
    /// (KIP-679's check for idempotent producers).
    pub(crate) fn authorized_any(&self, ctx: &RequestContext, operation: AclOperation, kind: ResourceType) -> bool {
        self.authorizer.as_ref().is_none_or(|a| a.authorize_any(&ctx.principal, ctx.peer.ip(), operation, kind))
    }

    /// Kafka's `*_authorized_operations` bit field for a resource: every operation of its
    /// type without an authorizer.
    pub(crate) fn authorized_operations(&self, ctx: &RequestContext, kind: ResourceType, name: &str) -> i32 {
        match &self.authorizer {
            None => all_operations(kind),
            Some(a) => a.authorized_operations(&ctx.principal, ctx.peer.ip(), kind, name),
        }
    }

    /// After CreateAcls or DeleteAcls stored `acls` (`operation` = `create` / `delete`):
    /// audit events, the change counter, and the authorizer reloaded from the store. A
    /// failed reload only delays the change here until the next sync or restart.
    pub(crate) async fn acls_changed(
        &self,
        ctx: &RequestContext,
        authorizer: &Authorizer,
        operation: &str,
        acls: &[AclBinding],
    ) {
        for acl in acls {
            tracing::info!(target: "rivulet::audit", principal = %ctx.principal, host = %ctx.peer.ip(), operation, ?acl, "ACL changed");
        }
        crate::metrics::METRICS.acl_changes.with_label_values(&[operation]).inc_by(acls.len() as u64);
        match self.metadata.acls().await {
            Ok(stored) => authorizer.replace_acls(stored),
            Err(e) => tracing::warn!(error = %e, operation, "ACLs changed but not reloaded"),
        }
    }

    fn denied(&self, ctx: &RequestContext, operation: AclOperation, kind: ResourceType, name: &str) {
        tracing::info!(
            target: "rivulet::audit",
            principal = %ctx.principal,
            host = %ctx.peer.ip(),
            request = ?ctx.api_key,
            %operation,
            resource_type = %kind,
            resource = name,
            "authorization denied"
        );
        crate::metrics::METRICS
            .authorization_denied
            .with_label_values(&[&format!("{:?}", ctx.api_key), kind.name()])
            .inc();
    }
}

impl MarkerSink for Broker {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
    ) -> Result<(), MarkerError> {
        let Some(found) = self.replicas.topics.get(topic) else {
            tracing::warn!(topic, partition, producer_id, "no marker written: the topic no longer exists");
            return Ok(());
        };
        let Some(replica) = found.replica(partition) else { return Ok(()) };
        if !replica.is_leader() {
            // Another broker leads it: WriteTxnMarkers. On failure the transaction stays
            // prepared and its markers are retried.
            return self.membership.write_remote_marker(
                replica.view().leader,
                topic,
                partition,
                producer_id,
                producer_epoch,
                control,
                coordinator_epoch,
            );
        }
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        replica
            .log
            .append_marker(producer_id, producer_epoch, control, coordinator_epoch, replica.leader_epoch(), now_ms)
            .map_err(|source| MarkerError::Append { topic: topic.to_string(), partition, source })?;
        replica.maybe_advance_high_watermark();
        if topic == OFFSETS_TOPIC {
            self.groups.complete_txn(producer_id, control == ControlType::Commit);
        }
        Ok(())
    }

    fn decision_stored(&self, state_partition: i32) -> Result<(), MarkerError> {
        let undecided = |reason: String| MarkerError::Undecided { partition: state_partition, reason };
        if self.replicas.replicated_now(TRANSACTION_STATE_TOPIC, state_partition) {
            return Ok(());
        }
        // The coordinator calls this holding its lock, as it does a remote marker write;
        // waiting needs a runtime that can lend this thread.
        let handle = tokio::runtime::Handle::try_current().map_err(|e| undecided(e.to_string()))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(undecided("not replicated yet".to_string()));
        }
        let wait = self.replicas.await_replicated(TRANSACTION_STATE_TOPIC, state_partition, Duration::from_secs(5));
        match tokio::task::block_in_place(|| handle.block_on(wait)) {
            None => Ok(()),
            Some(error) => Err(undecided(format!("{error:?}"))),
        }
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
