//! Which partitions of its internal topic a coordinator serves. The group coordinator
//! (`__consumer_offsets`) and the transaction coordinator (`__transaction_state`) each
//! serve exactly the partitions this broker leads — all of them on a single node — and
//! answer for keys hashing elsewhere as Kafka does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use rivulet_protocol::ResponseError;

use crate::runtime::Shard;

/// The loaded (served) and loading partitions of one internal topic.
pub struct CoordinatorPartitions {
    count: i32,
    loaded: RwLock<HashMap<i32, Arc<Shard>>>,
    loading: Mutex<HashSet<i32>>,
}

impl CoordinatorPartitions {
    /// `count` is the topic's partition count, which keys hash onto.
    pub fn new(count: i32) -> Self {
        Self { count: count.max(1), loaded: RwLock::new(HashMap::new()), loading: Mutex::new(HashSet::new()) }
    }

    pub fn count(&self) -> i32 {
        self.count
    }

    /// `partition` is being loaded: its keys get COORDINATOR_LOAD_IN_PROGRESS meanwhile.
    pub fn mark_loading(&self, partition: i32) {
        self.loading.lock().unwrap_or_else(|p| p.into_inner()).insert(partition);
    }

    /// `None` when `partition` is served here, else the error for its keys:
    /// COORDINATOR_LOAD_IN_PROGRESS while it loads, NOT_COORDINATOR otherwise.
    pub fn status(&self, partition: i32) -> Option<ResponseError> {
        if self.loaded.read().unwrap_or_else(|p| p.into_inner()).contains_key(&partition) {
            return None;
        }
        if self.loading.lock().unwrap_or_else(|p| p.into_inner()).contains(&partition) {
            return Some(ResponseError::CoordinatorLoadInProgress);
        }
        Some(ResponseError::NotCoordinator)
    }

    /// A served partition.
    pub fn shard(&self, partition: i32) -> Option<Arc<Shard>> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).get(&partition).cloned()
    }

    /// Loading ended: served from now on by `shard`, or (`None`) not at all.
    pub fn finish_loading(&self, partition: i32, shard: Option<Arc<Shard>>) {
        if let Some(shard) = shard {
            self.loaded.write().unwrap_or_else(|p| p.into_inner()).insert(partition, shard);
        }
        self.loading.lock().unwrap_or_else(|p| p.into_inner()).remove(&partition);
    }

    /// Stops serving `partition`; returns whether it was served.
    pub fn remove(&self, partition: i32) -> bool {
        self.loading.lock().unwrap_or_else(|p| p.into_inner()).remove(&partition);
        self.loaded.write().unwrap_or_else(|p| p.into_inner()).remove(&partition).is_some()
    }
}
