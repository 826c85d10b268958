//! # rivulet-metadata
//!
//! The cluster metadata a broker needs — cluster id, topics with their ids, partitions,
//! configs, and producer-id allocation — behind one trait, [`MetadataStore`], so the broker
//! runs unchanged on a single node ([`EmbeddedMetadataStore`], which keeps everything in
//! the broker's own RocksDB) or with the metadata in etcd ([`EtcdMetadataStore`]), which
//! also registers brokers under leases and elects a controller.
//!
//! The store is the source of truth; the broker keeps an in-memory copy for the hot path
//! and changes it only after the store accepted a change.
//!
//! This crate never serves clients, never reads or writes partition logs (consumer offsets
//! and anything per message stay out of etcd), and never decides leadership itself: the
//! broker's controller does, through the compare-and-swap calls offered here.

pub mod assignment;
mod embedded;
mod etcd;
mod model;
pub mod reassignment;

pub use embedded::EmbeddedMetadataStore;
pub use etcd::{
    BrokerLease, BrokerRegistration, ClusterSnapshot, ControllerLease, EtcdCredentials, EtcdLocation,
    EtcdMetadataStore, EtcdTls, ListenerEndpoint, VersionedState, DEFAULT_CONNECTION_TIMEOUT,
};
pub use model::{
    AclBinding, AclOperation, NewTopic, PartitionRecord, PartitionState, PatternType, PermissionType, QuotaEntity,
    QuotaName, QuotaValues, ResourceType, ScramChange, ScramCredential, StoredQuota, TopicRecord, UserScramCredentials,
};

use async_trait::async_trait;

/// Why a metadata operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("topic currently has {current} partitions, which is not fewer than the requested {requested}")]
    PartitionsNotIncreased { current: i32, requested: i32 },
    #[error("metadata storage: {0}")]
    Storage(#[from] rivulet_storage::StorageError),
    #[error("corrupt metadata at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("etcd: {0}")]
    Etcd(String),
    #[error(
        "etcd at {endpoints} did not answer within {timeout_ms} ms (metadata.store.connection.timeout.ms): {reason}"
    )]
    Unreachable { endpoints: String, timeout_ms: u64, reason: String },
    #[error("node id {0} is already registered by a live broker")]
    NodeExists(i32),
    #[error("{0}")]
    InvalidReplication(String),
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
}

/// Dynamic broker configurations by entity: `""` (the cluster default) or a node id.
pub type BrokerConfigs = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

/// Client-metrics subscriptions (KIP-714 `CLIENT_METRICS` config resources, as
/// `kafka-client-metrics --alter` writes them) by subscription name: `metrics`,
/// `interval.ms` and `match`, each as its string value.
pub type ClientMetricsConfigs = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

/// The storage name of a broker-config entity (`<default>` for the cluster default).
pub fn broker_config_entity_name(entity: &str) -> &str {
    if entity.is_empty() {
        "<default>"
    } else {
        entity
    }
}

/// Where a broker reads and writes cluster metadata.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The cluster id (created on first start).
    async fn cluster_id(&self) -> Result<String, MetadataError>;
    /// Every topic, in name order.
    async fn topics(&self) -> Result<Vec<TopicRecord>, MetadataError>;
    /// Creates a topic, giving it a topic id and its partitions their log ids.
    async fn create_topic(&self, topic: NewTopic) -> Result<TopicRecord, MetadataError>;
    /// Grows a topic to `total` partitions, giving the new ones log ids and the replicas in
    /// `assignment` (one entry per new partition; empty on a single node).
    async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        assignment: Vec<Vec<i32>>,
    ) -> Result<TopicRecord, MetadataError>;
    /// Replaces a topic's configuration overrides with `configs` (IncrementalAlterConfigs
    /// and AlterConfigs compute the new set) and returns the updated topic.
    async fn set_topic_configs(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<TopicRecord, MetadataError>;
    /// Dynamic broker configurations (Kafka's `kafka-configs --entity-type brokers --alter`):
    /// entity `""` is the cluster-wide default (`<default>`), any other a node id.
    async fn broker_configs(&self) -> Result<BrokerConfigs, MetadataError>;
    /// Replaces the dynamic configurations of one entity (an empty map removes them).
    async fn set_broker_configs(
        &self,
        entity: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<(), MetadataError>;
    /// Every client-metrics subscription.
    async fn client_metrics_configs(&self) -> Result<ClientMetricsConfigs, MetadataError>;
    /// Replaces the configs of client-metrics subscription `name` (an empty map deletes it).
    async fn set_client_metrics_configs(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<(), MetadataError>;
    /// Deletes a topic and returns what it was.
    async fn delete_topic(&self, name: &str) -> Result<TopicRecord, MetadataError>;
    /// A producer id never handed out before in this cluster.
    async fn allocate_producer_id(&self) -> Result<i64, MetadataError>;
    /// The SCRAM credentials of every user that has one, by user name.
    async fn scram_users(&self) -> Result<std::collections::BTreeMap<String, UserScramCredentials>, MetadataError>;
    /// The SCRAM credentials of one user (empty when it has none), read at each
    /// authentication so a change applies to the next login on every broker.
    async fn user_scram_credentials(&self, user: &str) -> Result<UserScramCredentials, MetadataError>;
    /// Applies one change to a user's SCRAM credentials as a compare-and-swap, so two
    /// brokers changing the same user at once both take effect (a user left with none is
    /// removed). Returns false, changing nothing, for a deletion of a credential that does
    /// not exist.
    async fn alter_user_scram_credentials(&self, user: &str, change: ScramChange) -> Result<bool, MetadataError>;
    /// Every ACL, in binding order.
    async fn acls(&self) -> Result<Vec<AclBinding>, MetadataError>;
    /// Adds `acls` in one atomic write; a binding already stored stays stored once.
    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), MetadataError>;
    /// Removes `acls` in one atomic write; a binding not stored is ignored.
    async fn delete_acls(&self, acls: &[AclBinding]) -> Result<(), MetadataError>;
    /// Every client-quota entity with its values.
    async fn client_quotas(&self) -> Result<Vec<(QuotaEntity, QuotaValues)>, MetadataError>;
    /// Sets (`Some`) or removes (`None`) quota values of one entity as one read-modify-write
    /// (a compare-and-swap in etcd), so changes through two brokers at once are both kept;
    /// an entity left without values is removed.
    async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        changes: &[(String, Option<f64>)],
    ) -> Result<(), MetadataError>;
}
