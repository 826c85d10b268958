//! The broker's in-memory view of its topics and their open logs.
//!
//! The metadata store is the source of truth; this registry is the copy the hot path reads
//! without awaiting anything. It changes only after the store accepted a change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rivulet_metadata::TopicRecord;
use rivulet_storage::PartitionLog;
use uuid::Uuid;

use super::replica::Replica;
use crate::topic_config::TopicSettings;

/// A topic with its partitions' logs open.
#[derive(Debug)]
pub struct Topic {
    pub record: TopicRecord,
    /// Indexed by partition number.
    pub logs: Vec<Arc<PartitionLog>>,
    /// Replication state, indexed by partition number.
    pub replicas: Vec<Arc<Replica>>,
    pub settings: TopicSettings,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<PartitionLog>> {
        usize::try_from(index).ok().and_then(|i| self.logs.get(i))
    }

    pub fn replica(&self, index: i32) -> Option<&Arc<Replica>> {
        usize::try_from(index).ok().and_then(|i| self.replicas.get(i))
    }

    pub fn leader_epoch(&self, index: i32) -> i32 {
        self.replica(index).map_or(0, |r| r.leader_epoch())
    }
}

#[derive(Default)]
struct Maps {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// Topics by name and by topic id.
#[derive(Default)]
pub struct TopicRegistry {
    maps: RwLock<Maps>,
}

impl TopicRegistry {
    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().by_name.get(name).cloned()
    }

    pub fn get_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.read().by_id.get(id).cloned()
    }

    /// All topics in name order.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.read().by_name.values().cloned().collect();
        topics.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        topics
    }

    pub fn insert(&self, topic: Arc<Topic>) {
        let mut maps = self.write();
        maps.by_id.insert(topic.record.topic_id, topic.clone());
        maps.by_name.insert(topic.record.name.clone(), topic);
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Topic>> {
        let mut maps = self.write();
        let topic = maps.by_name.remove(name)?;
        maps.by_id.remove(&topic.record.topic_id);
        Some(topic)
    }
}
