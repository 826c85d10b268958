//! The metadata records, stored as JSON so they stay readable with any tool.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a CreateTopics request asks for, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Internal topics (`__consumer_offsets`, ...) are stored apart from user logs.
    pub internal: bool,
    /// Replicas (broker ids, preferred leader first) of each partition; empty on a single
    /// node, where the one broker holds everything.
    pub assignment: Vec<Vec<i32>>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub index: i32,
    /// The storage log holding this partition's records.
    pub log_id: u64,
    pub leader_epoch: i32,
    /// The brokers holding a replica, preferred leader first (empty on a single node).
    #[serde(default)]
    pub replicas: Vec<i32>,
}

/// Who leads a partition and which replicas are in sync (Kafka's `LeaderAndIsr`, stored
/// at `brokers/topics/<t>/partitions/<p>/state` in ZooKeeper).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// -1 while no in-sync replica is alive.
    pub leader: i32,
    /// Bumped at every leader change; batches carry it and requests are fenced by it.
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// The epoch of the controller that last elected a leader.
    pub controller_epoch: i32,
}

/// A topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionRecord>,
    pub replication_factor: i16,
    /// Topic-level overrides only (`cleanup.policy`, `retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// One SCRAM credential of a user, as Kafka keeps it (KIP-554's `UserScramCredentialRecord`):
/// what the server needs to verify a client proof and prove itself, never the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    /// Keys stay out of logs: with them a server can be impersonated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

/// A user's SCRAM credentials by mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
pub type UserScramCredentials = BTreeMap<String, ScramCredential>;

/// One change to a user's SCRAM credentials (an AlterUserScramCredentials upsertion or
/// deletion), applied by the store as one read-modify-write.
#[derive(Debug, Clone)]
pub enum ScramChange {
    Upsert { mechanism: String, credential: ScramCredential },
    Delete { mechanism: String },
}

impl ScramChange {
    /// Applies the change to `credentials`; false for a deletion of a credential that is
    /// not there (nothing changes then).
    pub fn apply(&self, credentials: &mut UserScramCredentials) -> bool {
        match self {
            ScramChange::Upsert { mechanism, credential } => {
                credentials.insert(mechanism.clone(), credential.clone());
                true
            }
            ScramChange::Delete { mechanism } => credentials.remove(mechanism).is_some(),
        }
    }
}
