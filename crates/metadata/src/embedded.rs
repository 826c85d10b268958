//! The single-node metadata store: JSON values in the broker's own RocksDB `meta` column
//! family, each change one fsynced atomic write.

use std::sync::Mutex;

use async_trait::async_trait;
use rivulet_storage::Store;
use uuid::Uuid;

use crate::{
    broker_config_entity_name, AclBinding, BrokerConfigs, MetadataError, MetadataStore, NewTopic, PartitionRecord,
    QuotaEntity, QuotaValues, ScramChange, StoredQuota, TopicRecord, UserScramCredentials,
};

const KEY_CLUSTER_ID: &str = "cluster/id";
const KEY_NEXT_LOG_ID: &str = "counters/next_log_id";
const KEY_PRODUCER_ID_BLOCK: &str = "counters/producer_id_block_end";
const TOPIC_PREFIX: &str = "topics/";
const BROKER_CONFIG_PREFIX: &str = "config/brokers/";
const CLIENT_METRICS_PREFIX: &str = "config/client-metrics/";
/// SCRAM credentials, one JSON map (mechanism → credential) per user.
const SCRAM_USER_PREFIX: &str = "config/users/";
/// Client quotas, one JSON object (`{"entity": ..., "values": ...}`) per entity.
const QUOTA_PREFIX: &str = "quotas/";
/// ACLs, one key per binding ([`AclBinding::storage_key`]).
const ACL_PREFIX: &str = "acls/";
/// Producer ids are reserved on disk a block at a time (as Kafka's `ProducerIdManager`),
/// so allocating one rarely costs a write and none is ever reused after a crash.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Metadata kept locally; the default when no etcd is configured.
pub struct EmbeddedMetadataStore {
    store: Store,
    /// Serialises read-modify-write of counters and topics.
    lock: Mutex<ProducerIds>,
}

struct ProducerIds {
    next: i64,
    block_end: i64,
}

fn topic_key(name: &str) -> String {
    format!("{TOPIC_PREFIX}{name}")
}

/// One user's SCRAM credentials as stored (empty when it has none).
fn read_scram_user(store: &Store, user: &str) -> Result<UserScramCredentials, MetadataError> {
    let key = format!("{SCRAM_USER_PREFIX}{user}");
    match store.meta_get(&key)? {
        None => Ok(UserScramCredentials::new()),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() })
        }
    }
}

fn read_counter(store: &Store, key: &str) -> Result<i64, MetadataError> {
    match store.meta_get(key)? {
        None => Ok(0),
        Some(bytes) => {
            let array: [u8; 8] = bytes.as_slice().try_into().map_err(|_| MetadataError::Corrupt {
                key: key.to_string(),
                reason: "counter is not 8 bytes".into(),
            })?;
            Ok(i64::from_be_bytes(array))
        }
    }
}

impl EmbeddedMetadataStore {
    pub fn new(store: Store) -> Result<Self, MetadataError> {
        let block_end = read_counter(&store, KEY_PRODUCER_ID_BLOCK)?;
        // Whatever was reserved before a restart may have been handed out: start after it.
        let ids = ProducerIds { next: block_end, block_end };
        if store.meta_get(KEY_CLUSTER_ID)?.is_none() {
            let id = Uuid::new_v4();
            // Kafka's cluster ids are a base64url UUID; any unique string works for clients.
            let cluster_id = id.simple().to_string();
            store.meta_apply(&[(KEY_CLUSTER_ID.to_string(), cluster_id.into_bytes())], &[])?;
        }
        Ok(Self { store, lock: Mutex::new(ids) })
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ProducerIds> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_topic(&self, name: &str) -> Result<Option<TopicRecord>, MetadataError> {
        let key = topic_key(name);
        match self.store.meta_get(&key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() }),
        }
    }
}

#[async_trait]
impl MetadataStore for EmbeddedMetadataStore {
    async fn cluster_id(&self) -> Result<String, MetadataError> {
        let bytes = self.store.meta_get(KEY_CLUSTER_ID)?.unwrap_or_default();
        String::from_utf8(bytes)
            .map_err(|e| MetadataError::Corrupt { key: KEY_CLUSTER_ID.into(), reason: e.to_string() })
    }

    async fn topics(&self) -> Result<Vec<TopicRecord>, MetadataError> {
        self.store
            .meta_scan(TOPIC_PREFIX)?
            .into_iter()
            .map(|(key, bytes)| {
                serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() })
            })
            .collect()
    }

    async fn create_topic(&self, topic: NewTopic) -> Result<TopicRecord, MetadataError> {
        let _guard = self.guard();
        if self.read_topic(&topic.name)?.is_some() {
            return Err(MetadataError::TopicExists(topic.name));
        }
        let first_log_id = read_counter(&self.store, KEY_NEXT_LOG_ID)?.max(1);
        let partitions: Vec<PartitionRecord> = (0..topic.partitions)
            .map(|index| PartitionRecord {
                index,
                log_id: first_log_id as u64 + index as u64,
                leader_epoch: 0,
                replicas: topic.assignment.get(index as usize).cloned().unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        let record = TopicRecord {
            name: topic.name,
            topic_id: Uuid::new_v4(),
            partitions,
            replication_factor: topic.replication_factor,
            configs: topic.configs,
            internal: topic.internal,
        };
        let json = serde_json::to_vec(&record)
            .map_err(|e| MetadataError::Corrupt { key: topic_key(&record.name), reason: e.to_string() })?;
        let next_log_id = first_log_id + i64::from(topic.partitions);
        self.store.meta_apply(
            &[(topic_key(&record.name), json), (KEY_NEXT_LOG_ID.to_string(), next_log_id.to_be_bytes().to_vec())],
            &[],
        )?;
        Ok(record)
    }

    async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        assignment: Vec<Vec<i32>>,
    ) -> Result<TopicRecord, MetadataError> {
        let _guard = self.guard();
        let mut record = self.read_topic(name)?.ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let current = record.partitions.len() as i32;
        if total <= current {
            return Err(MetadataError::PartitionsNotIncreased { current, requested: total });
        }
        let first_log_id = read_counter(&self.store, KEY_NEXT_LOG_ID)?.max(1);
        for (i, index) in (current..total).enumerate() {
            record.partitions.push(PartitionRecord {
                index,
                log_id: first_log_id as u64 + i as u64,
                leader_epoch: 0,
                replicas: assignment.get(i).cloned().unwrap_or_default(),
                ..Default::default()
            });
        }
        let json = serde_json::to_vec(&record)
            .map_err(|e| MetadataError::Corrupt { key: topic_key(name), reason: e.to_string() })?;
        let next_log_id = first_log_id + i64::from(total - current);
        self.store.meta_apply(
            &[(topic_key(name), json), (KEY_NEXT_LOG_ID.to_string(), next_log_id.to_be_bytes().to_vec())],
            &[],
        )?;
        Ok(record)
    }

    async fn set_topic_configs(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<TopicRecord, MetadataError> {
        let _guard = self.guard();
        let mut record = self.read_topic(name)?.ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        record.configs = configs;
        let json = serde_json::to_vec(&record)
            .map_err(|e| MetadataError::Corrupt { key: topic_key(name), reason: e.to_string() })?;
        self.store.meta_apply(&[(topic_key(name), json)], &[])?;
        Ok(record)
    }

    async fn broker_configs(&self) -> Result<BrokerConfigs, MetadataError> {
        let mut out = BrokerConfigs::new();
        for (key, bytes) in self.store.meta_scan(BROKER_CONFIG_PREFIX)? {
            let entity = key.trim_start_matches(BROKER_CONFIG_PREFIX);
            let entity = if entity == "<default>" { "" } else { entity }.to_string();
            let configs =
                serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() })?;
            out.insert(entity, configs);
        }
        Ok(out)
    }

    async fn set_broker_configs(
        &self,
        entity: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let key = format!("{BROKER_CONFIG_PREFIX}{}", broker_config_entity_name(entity));
        if configs.is_empty() {
            self.store.meta_apply(&[], &[key])?;
        } else {
            let json = serde_json::to_vec(&configs)
                .map_err(|e| MetadataError::Corrupt { key: key.clone(), reason: e.to_string() })?;
            self.store.meta_apply(&[(key, json)], &[])?;
        }
        Ok(())
    }

    async fn client_metrics_configs(&self) -> Result<crate::ClientMetricsConfigs, MetadataError> {
        let mut out = crate::ClientMetricsConfigs::new();
        for (key, bytes) in self.store.meta_scan(CLIENT_METRICS_PREFIX)? {
            let name = key.trim_start_matches(CLIENT_METRICS_PREFIX).to_string();
            let configs =
                serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() })?;
            out.insert(name, configs);
        }
        Ok(out)
    }

    async fn set_client_metrics_configs(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let key = format!("{CLIENT_METRICS_PREFIX}{name}");
        if configs.is_empty() {
            self.store.meta_apply(&[], &[key])?;
        } else {
            let json = serde_json::to_vec(&configs)
                .map_err(|e| MetadataError::Corrupt { key: key.clone(), reason: e.to_string() })?;
            self.store.meta_apply(&[(key, json)], &[])?;
        }
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<TopicRecord, MetadataError> {
        let _guard = self.guard();
        let record = self.read_topic(name)?.ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.store.meta_apply(&[], &[topic_key(name)])?;
        Ok(record)
    }

    async fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        let mut ids = self.guard();
        if ids.next >= ids.block_end {
            let block_end = ids.next + PRODUCER_ID_BLOCK;
            self.store.meta_apply(&[(KEY_PRODUCER_ID_BLOCK.to_string(), block_end.to_be_bytes().to_vec())], &[])?;
            ids.block_end = block_end;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    async fn scram_users(&self) -> Result<std::collections::BTreeMap<String, UserScramCredentials>, MetadataError> {
        let mut out = std::collections::BTreeMap::new();
        for (key, bytes) in self.store.meta_scan(SCRAM_USER_PREFIX)? {
            let user = key.trim_start_matches(SCRAM_USER_PREFIX).to_string();
            let credentials =
                serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() })?;
            out.insert(user, credentials);
        }
        Ok(out)
    }

    async fn user_scram_credentials(&self, user: &str) -> Result<UserScramCredentials, MetadataError> {
        read_scram_user(&self.store, user)
    }

    async fn alter_user_scram_credentials(&self, user: &str, change: ScramChange) -> Result<bool, MetadataError> {
        // The embedded store has one writer, this process; the lock orders its callers.
        let _serialised = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut credentials = read_scram_user(&self.store, user)?;
        if !change.apply(&mut credentials) {
            return Ok(false);
        }
        let key = format!("{SCRAM_USER_PREFIX}{user}");
        if credentials.is_empty() {
            self.store.meta_apply(&[], &[key])?;
        } else {
            let json = serde_json::to_vec(&credentials)
                .map_err(|e| MetadataError::Corrupt { key: key.clone(), reason: e.to_string() })?;
            self.store.meta_apply(&[(key, json)], &[])?;
        }
        Ok(true)
    }

    async fn acls(&self) -> Result<Vec<AclBinding>, MetadataError> {
        let mut out = Vec::new();
        for (key, bytes) in self.store.meta_scan(ACL_PREFIX)? {
            out.push(
                serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() })?,
            );
        }
        out.sort();
        Ok(out)
    }

    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), MetadataError> {
        let mut puts = Vec::with_capacity(acls.len());
        for acl in acls {
            let key = format!("{ACL_PREFIX}{}", acl.storage_key());
            let json = serde_json::to_vec(acl)
                .map_err(|e| MetadataError::Corrupt { key: key.clone(), reason: e.to_string() })?;
            puts.push((key, json));
        }
        self.store.meta_apply(&puts, &[])?;
        Ok(())
    }

    async fn delete_acls(&self, acls: &[AclBinding]) -> Result<(), MetadataError> {
        let keys: Vec<String> = acls.iter().map(|acl| format!("{ACL_PREFIX}{}", acl.storage_key())).collect();
        self.store.meta_apply(&[], &keys)?;
        Ok(())
    }

    async fn client_quotas(&self) -> Result<Vec<(QuotaEntity, QuotaValues)>, MetadataError> {
        let mut out = Vec::new();
        for (key, bytes) in self.store.meta_scan(QUOTA_PREFIX)? {
            let stored: StoredQuota =
                serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt { key, reason: e.to_string() })?;
            out.push((stored.entity, stored.values));
        }
        Ok(out)
    }

    async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        changes: &[(String, Option<f64>)],
    ) -> Result<(), MetadataError> {
        let _serialised = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{QUOTA_PREFIX}{}", entity.storage_key());
        let mut values = match self.store.meta_get(&key)? {
            None => QuotaValues::new(),
            Some(bytes) => {
                serde_json::from_slice::<StoredQuota>(&bytes)
                    .map_err(|e| MetadataError::Corrupt { key: key.clone(), reason: e.to_string() })?
                    .values
            }
        };
        crate::model::apply_quota_changes(&mut values, changes);
        if values.is_empty() {
            self.store.meta_apply(&[], &[key])?;
        } else {
            let json = serde_json::to_vec(&StoredQuota { entity: entity.clone(), values })
                .map_err(|e| MetadataError::Corrupt { key: key.clone(), reason: e.to_string() })?;
            self.store.meta_apply(&[(key, json)], &[])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_storage::StoreOptions;

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: 1,
            configs: Default::default(),
            internal: false,
            assignment: vec![],
        }
    }

    #[tokio::test]
    async fn broker_configs_by_entity_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::new(dir.path());
        let one = |k: &str, v: &str| -> std::collections::BTreeMap<String, String> {
            [(k.to_string(), v.to_string())].into_iter().collect()
        };
        {
            let meta = EmbeddedMetadataStore::new(Store::open(&options).unwrap()).unwrap();
            meta.set_broker_configs("", one("log.retention.ms", "1000")).await.unwrap();
            meta.set_broker_configs("1", one("message.max.bytes", "2000")).await.unwrap();
            meta.set_broker_configs("2", one("message.max.bytes", "3000")).await.unwrap();
            meta.set_broker_configs("2", Default::default()).await.unwrap();
        }
        let meta = EmbeddedMetadataStore::new(Store::open(&options).unwrap()).unwrap();
        let configs = meta.broker_configs().await.unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[""], one("log.retention.ms", "1000"));
        assert_eq!(configs["1"], one("message.max.bytes", "2000"));
    }

    #[tokio::test]
    async fn topic_configs_are_replaced_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::new(dir.path());
        {
            let meta = EmbeddedMetadataStore::new(Store::open(&options).unwrap()).unwrap();
            meta.create_topic(new_topic("t", 1)).await.unwrap();
            let configs = [("retention.ms".to_string(), "1000".to_string())].into_iter().collect();
            let updated = meta.set_topic_configs("t", configs).await.unwrap();
            assert_eq!(updated.configs.get("retention.ms").map(String::as_str), Some("1000"));
            assert!(matches!(
                meta.set_topic_configs("missing", Default::default()).await,
                Err(MetadataError::UnknownTopic(_))
            ));
        }
        let meta = EmbeddedMetadataStore::new(Store::open(&options).unwrap()).unwrap();
        let topics = meta.topics().await.unwrap();
        assert_eq!(topics[0].configs.get("retention.ms").map(String::as_str), Some("1000"));
    }

    #[tokio::test]
    async fn topics_ids_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::new(dir.path());
        let (cluster_id, topic, pid) = {
            let meta = EmbeddedMetadataStore::new(Store::open(&options).unwrap()).unwrap();
            let a = meta.create_topic(new_topic("a", 3)).await.unwrap();
            let b = meta.create_topic(new_topic("b", 2)).await.unwrap();
            assert!(matches!(meta.create_topic(new_topic("a", 1)).await, Err(MetadataError::TopicExists(_))));
            let ids: Vec<u64> = a.partitions.iter().chain(&b.partitions).map(|p| p.log_id).collect();
            let mut unique = ids.clone();
            unique.dedup();
            assert_eq!(ids, unique);
            let pid = meta.allocate_producer_id().await.unwrap();
            assert_eq!(meta.allocate_producer_id().await.unwrap(), pid + 1);
            (meta.cluster_id().await.unwrap(), a, pid)
        };
        let meta = EmbeddedMetadataStore::new(Store::open(&options).unwrap()).unwrap();
        assert_eq!(meta.cluster_id().await.unwrap(), cluster_id);
        let topics = meta.topics().await.unwrap();
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0], topic);
        assert!(meta.allocate_producer_id().await.unwrap() > pid + 1);
        let c = meta.create_topic(new_topic("c", 1)).await.unwrap();
        assert!(c.partitions[0].log_id > 5);
        let grown = meta.add_partitions("c", 3, vec![]).await.unwrap();
        assert_eq!(grown.partitions.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(
            grown.partitions[2].log_id > grown.partitions[1].log_id
                && grown.partitions[1].log_id > c.partitions[0].log_id
        );
        assert!(matches!(meta.add_partitions("c", 3, vec![]).await, Err(MetadataError::PartitionsNotIncreased { .. })));
        meta.delete_topic("a").await.unwrap();
        assert!(matches!(meta.delete_topic("a").await, Err(MetadataError::UnknownTopic(_))));
        assert_eq!(meta.topics().await.unwrap().len(), 2);
    }
}
