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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub index: i32,
    /// The storage log holding this partition's records.
    pub log_id: u64,
    pub leader_epoch: i32,
    /// The brokers holding a replica, preferred leader first (empty on a single node);
    /// during a reassignment the target replicas first, then those being removed.
    #[serde(default)]
    pub replicas: Vec<i32>,
    /// Brokers a reassignment is adding (KIP-455); they fetch but lead only once it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// Brokers a reassignment is removing once the added ones are in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
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

/// Declares one of Kafka's ACL enums with its wire codes and names (`AclOperation`,
/// `ResourceType`, ...). Stored by name, so the JSON reads as `kafka-acls` prints it.
macro_rules! acl_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every value, in code order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),*];

            /// The value a request's code stands for; `None` for a code Kafka does not
            /// define (Kafka reads those as UNKNOWN).
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// The wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// Kafka's name (`TOPIC`, `LITERAL`, `READ`, ...).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

acl_enum! {
    /// What an ACL protects (Kafka's `ResourceType`). `Any` appears only in filters.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
}

acl_enum! {
    /// How an ACL's resource name matches (Kafka's `PatternType`). `Any` and `Match` appear
    /// only in filters.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
}

acl_enum! {
    /// What an ACL allows or denies (Kafka's `AclOperation`). `Any` appears only in filters.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
}

acl_enum! {
    /// Whether an ACL allows or denies (Kafka's `AclPermissionType`). `Any` appears only in
    /// filters.
    PermissionType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
}

/// One ACL, as Kafka's `AclBinding`: a resource pattern and an access control entry.
/// Only concrete values are stored (never ANY, MATCH or UNKNOWN): CreateAcls refuses them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// An IP address, or `*` for every host.
    pub host: String,
    pub operation: AclOperation,
    pub permission_type: PermissionType,
}

impl AclBinding {
    /// Where the binding is stored, below the store's ACL prefix: one key per binding, so
    /// adding or removing one never rewrites another, and a binding added twice is stored
    /// once. Readable: `TOPIC/PREFIXED/orders-/User:alice/*/READ/ALLOW`.
    pub fn storage_key(&self) -> String {
        fn escape(s: &str) -> String {
            s.replace('%', "%25").replace('/', "%2F")
        }
        format!(
            "{}/{}/{}/{}/{}/{}/{}",
            self.resource_type,
            self.pattern_type,
            escape(&self.resource_name),
            escape(&self.principal),
            escape(&self.host),
            self.operation,
            self.permission_type
        )
    }
}

/// One part of a client-quota entity (Kafka's `ClientQuotaEntity`): a named user or client
/// id, or the default one (`<default>` in `kafka-configs`, a null name on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QuotaName {
    Default,
    Named(String),
}

/// What a client quota applies to: a user, a client id, or a client id of a user (Kafka's
/// `/config/users/<user>/clients/<client-id>` and its shorter forms), or a client IP address
/// (`/config/ips/<ip>`, for `connection_creation_rate`; never combined with the others).
/// At least one is set.
///
/// `ip` is absent from what was stored before IP entities existed, and left out of what is
/// stored for user and client-id entities, so both read and write the same as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<QuotaName>,
    pub client_id: Option<QuotaName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<QuotaName>,
}

impl QuotaEntity {
    /// Where the entity's quotas are stored below the store's quota prefix, readable:
    /// `user=alice/client-id=<default>`, `ip=127.0.0.1`.
    pub fn storage_key(&self) -> String {
        fn part(kind: &str, name: &QuotaName) -> String {
            match name {
                QuotaName::Default => format!("{kind}=<default>"),
                QuotaName::Named(n) => format!("{kind}={}", n.replace('%', "%25").replace('/', "%2F")),
            }
        }
        let parts: Vec<String> = [
            self.user.as_ref().map(|u| part("user", u)),
            self.client_id.as_ref().map(|c| part("client-id", c)),
            self.ip.as_ref().map(|i| part("ip", i)),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join("/")
    }
}

/// An entity's quota values by Kafka's key (`producer_byte_rate`, `consumer_byte_rate`,
/// `request_percentage`, ...).
pub type QuotaValues = BTreeMap<String, f64>;

/// An entity's quotas as stored: the entity beside its values, so a reader needs no key
/// parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredQuota {
    pub entity: QuotaEntity,
    pub values: QuotaValues,
}

/// Applies AlterClientQuotas changes: `Some` sets a value, `None` removes it.
pub fn apply_quota_changes(values: &mut QuotaValues, changes: &[(String, Option<f64>)]) {
    for (key, value) in changes {
        match value {
            Some(v) => {
                values.insert(key.clone(), *v);
            }
            None => {
                values.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quotas stored before IP entities existed read as they were, and user and client-id
    /// entities are still written without an `ip` field.
    #[test]
    fn quota_entities_stored_without_ip_still_read_and_write_the_same() {
        let old =
            r#"{"entity":{"user":{"Named":"alice"},"client_id":"Default"},"values":{"producer_byte_rate":1024.0}}"#;
        let stored: StoredQuota = serde_json::from_str(old).unwrap();
        assert_eq!(
            stored.entity,
            QuotaEntity { user: Some(QuotaName::Named("alice".into())), client_id: Some(QuotaName::Default), ip: None }
        );
        assert_eq!(serde_json::to_string(&stored).unwrap(), old);
        assert_eq!(stored.entity.storage_key(), "user=alice/client-id=<default>");

        let ip = QuotaEntity { ip: Some(QuotaName::Named("127.0.0.1".into())), ..QuotaEntity::default() };
        let json = serde_json::to_string(&ip).unwrap();
        assert_eq!(json, r#"{"user":null,"client_id":null,"ip":{"Named":"127.0.0.1"}}"#);
        assert_eq!(serde_json::from_str::<QuotaEntity>(&json).unwrap(), ip);
        assert_eq!(ip.storage_key(), "ip=127.0.0.1");
        assert_eq!(
            QuotaEntity { ip: Some(QuotaName::Default), ..QuotaEntity::default() }.storage_key(),
            "ip=<default>"
        );
    }
}
