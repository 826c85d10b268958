//! One partition's replication state on this broker (Kafka's `Partition`): who leads it at
//! which leader epoch, which replicas are in sync, and — while this broker leads — how far
//! each follower has fetched, from which the high watermark and ISR changes follow.
//!
//! On a single node every partition has one replica, this broker, which always leads; the
//! same code then acknowledges at once because the ISR is just the leader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use rivulet_storage::PartitionLog;

/// Leadership and replicas of a partition as the metadata store last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    /// -1 while the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// Preferred leader first.
    pub replicas: Vec<i32>,
    /// The metadata revision of this state: the guard of the next compare-and-swap.
    pub revision: i64,
    pub controller_epoch: i32,
}

impl ReplicaView {
    /// A partition whose only replica is `node`.
    pub fn single(node: i32, leader_epoch: i32) -> Self {
        Self { leader: node, leader_epoch, isr: vec![node], replicas: vec![node], revision: 0, controller_epoch: 0 }
    }
}

/// What a new view means for this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    /// Same role, new ISR (or revision).
    Updated,
    BecameLeader,
    /// Follows a (new) leader, or has no leader to follow.
    BecameFollower,
    /// This broker no longer holds a replica.
    Removed,
}

/// A follower's fetch position as the leader tracks it (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    log_end_offset: i64,
    /// The follower's log start offset, as its last fetch reported it.
    log_start_offset: i64,
    last_caught_up: Instant,
    last_fetch: Instant,
    leader_end_at_last_fetch: i64,
}

/// One partition's replica on this broker.
pub struct Replica {
    pub topic: String,
    pub index: i32,
    pub log: Arc<PartitionLog>,
    local: i32,
    view: RwLock<ReplicaView>,
    followers: Mutex<HashMap<i32, FollowerProgress>>,
    /// An ISR change of this leader is being written to the metadata store.
    pub isr_change_pending: AtomicBool,
    /// As a follower: the log must be checked against the leader's epochs before the next
    /// fetch (KIP-279), because the leader changed.
    pub needs_truncation: AtomicBool,
    /// The topic's `min.insync.replicas`: below it the high watermark stands still.
    min_insync: AtomicUsize,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("topic", &self.topic).field("index", &self.index).finish()
    }
}

impl Replica {
    /// A replica that knows nothing yet; [`Self::update`] gives it its first view.
    pub fn new(topic: &str, index: i32, log: Arc<PartitionLog>, local: i32) -> Self {
        Self {
            topic: topic.to_string(),
            index,
            log,
            local,
            view: RwLock::new(ReplicaView {
                leader: -1,
                leader_epoch: -1,
                isr: vec![],
                replicas: vec![],
                revision: -1,
                controller_epoch: 0,
            }),
            followers: Mutex::new(HashMap::new()),
            isr_change_pending: AtomicBool::new(false),
            needs_truncation: AtomicBool::new(false),
            min_insync: AtomicUsize::new(1),
        }
    }

    fn followers(&self) -> MutexGuard<'_, HashMap<i32, FollowerProgress>> {
        self.followers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self) -> ReplicaView {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_leader(&self) -> bool {
        self.view.read().unwrap_or_else(|p| p.into_inner()).leader == self.local
    }

    pub fn leader_epoch(&self) -> i32 {
        self.view.read().unwrap_or_else(|p| p.into_inner()).leader_epoch
    }

    /// Whether this broker holds a replica of the partition.
    pub fn is_local(&self) -> bool {
        self.view.read().unwrap_or_else(|p| p.into_inner()).replicas.contains(&self.local)
    }

    /// Installs a new view and says what changed for this broker. A leader starting an
    /// epoch records it in the log and starts tracking its followers afresh.
    pub fn update(&self, view: ReplicaView) -> Transition {
        let mut current = self.view.write().unwrap_or_else(|p| p.into_inner());
        if *current == view {
            return Transition::Unchanged;
        }
        let was_leader = current.leader == self.local;
        let epoch_changed = current.leader_epoch != view.leader_epoch;
        let is_leader = view.leader == self.local;
        let holds = view.replicas.contains(&self.local);
        let held = current.replicas.contains(&self.local);
        self.log.set_replicated(view.replicas.len() > 1);
        let transition = if !holds {
            if held {
                Transition::Removed
            } else {
                Transition::Updated
            }
        } else if is_leader && (!was_leader || epoch_changed) {
            if let Err(e) = self.log.begin_epoch(view.leader_epoch) {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "recording the leader epoch failed");
            }
            let now = Instant::now();
            let mut followers = self.followers();
            followers.clear();
            for &r in view.replicas.iter().filter(|&&r| r != self.local) {
                followers.insert(
                    r,
                    FollowerProgress {
                        log_end_offset: -1,
                        log_start_offset: -1,
                        last_caught_up: now,
                        last_fetch: now,
                        leader_end_at_last_fetch: -1,
                    },
                );
            }
            Transition::BecameLeader
        } else if !is_leader && (was_leader || epoch_changed || current.leader != view.leader) {
            self.needs_truncation.store(true, Ordering::SeqCst);
            Transition::BecameFollower
        } else {
            Transition::Updated
        };
        *current = view;
        transition
    }

    /// Changes the ISR after this leader's compare-and-swap succeeded.
    pub fn set_isr(&self, isr: Vec<i32>, revision: i64) {
        let mut current = self.view.write().unwrap_or_else(|p| p.into_inner());
        if revision > current.revision {
            current.isr = isr;
            current.revision = revision;
        }
    }

    /// A follower fetched from `fetch_offset` (Kafka's `Replica.updateFetchState`): it is
    /// caught up if it asked for the leader's log end, or for at least the end the leader
    /// had at its previous fetch. Returns the ISR to propose when it should rejoin.
    pub fn record_follower_fetch(&self, follower: i32, fetch_offset: i64, log_start_offset: i64) -> Option<Vec<i32>> {
        let leader_end = self.log.log_end_offset();
        let now = Instant::now();
        {
            let mut followers = self.followers();
            let progress = followers.entry(follower).or_insert(FollowerProgress {
                log_end_offset: -1,
                log_start_offset: -1,
                last_caught_up: now,
                last_fetch: now,
                leader_end_at_last_fetch: -1,
            });
            if fetch_offset >= leader_end {
                progress.last_caught_up = now;
            } else if fetch_offset >= progress.leader_end_at_last_fetch {
                progress.last_caught_up = progress.last_caught_up.max(progress.last_fetch);
            }
            progress.log_end_offset = fetch_offset;
            progress.log_start_offset = log_start_offset;
            progress.last_fetch = now;
            progress.leader_end_at_last_fetch = leader_end;
        }
        let view = self.view();
        if view.leader != self.local || view.isr.contains(&follower) || !view.replicas.contains(&follower) {
            return None;
        }
        // Kafka's `isFollowerInSync`: caught up to the high watermark and into this
        // leader's epoch.
        let epoch_start = self.log.epoch_start_offset(view.leader_epoch).unwrap_or(0);
        if fetch_offset >= self.log.high_watermark() && fetch_offset >= epoch_start {
            let mut isr = view.isr.clone();
            isr.push(follower);
            isr.sort_unstable();
            return Some(isr);
        }
        None
    }

    /// Takes the topic's `min.insync.replicas` (at start and when configs change).
    pub fn set_min_insync(&self, min_insync: usize) {
        self.min_insync.store(min_insync, Ordering::Relaxed);
    }

    /// Moves the high watermark to the smallest log end among the in-sync replicas
    /// (Kafka's `maybeIncrementLeaderHW`). Returns whether it moved.
    ///
    /// While the ISR is smaller than `min.insync.replicas` (at most the replication factor)
    /// it does not move, as in Kafka since KIP-966 (KAFKA-15583): a write that only the
    /// leader holds is neither visible to consumers nor taken as replicated by a
    /// coordinator, so losing that one broker cannot take back what was acknowledged or read.
    pub fn maybe_advance_high_watermark(&self) -> bool {
        let view = self.view();
        if view.leader != self.local {
            return false;
        }
        let min_insync = self.min_insync.load(Ordering::Relaxed).min(view.replicas.len().max(1));
        if view.isr.len() < min_insync {
            return false;
        }
        let mut hw = self.log.log_end_offset();
        {
            let followers = self.followers();
            for member in view.isr.iter().filter(|&&r| r != self.local) {
                hw = hw.min(followers.get(member).map_or(-1, |p| p.log_end_offset));
            }
        }
        match self.log.advance_high_watermark(hw) {
            Ok(moved) => moved,
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "checkpointing the high watermark failed");
                false
            }
        }
    }

    /// The smallest log start offset among this leader and its in-sync followers (Kafka's
    /// `lowWatermarkIfLeader`): what DeleteRecords reports, and waits to reach. -1 while an
    /// in-sync follower has not reported one yet.
    pub fn low_watermark(&self) -> i64 {
        let view = self.view();
        let followers = self.followers();
        view.isr
            .iter()
            .filter(|&&r| r != self.local)
            .map(|r| followers.get(r).map_or(-1, |p| p.log_start_offset))
            .fold(self.log.log_start_offset(), i64::min)
    }

    /// The ISR without the followers that have not caught up for `lag` (Kafka's
    /// `getOutOfSyncReplicas`), when that removes anyone.
    pub fn shrunk_isr(&self, lag: Duration) -> Option<Vec<i32>> {
        let view = self.view();
        if view.leader != self.local {
            return None;
        }
        let now = Instant::now();
        let followers = self.followers();
        let isr: Vec<i32> = view
            .isr
            .iter()
            .copied()
            .filter(|&r| {
                r == self.local || followers.get(&r).is_some_and(|p| now.duration_since(p.last_caught_up) <= lag)
            })
            .collect();
        (isr.len() < view.isr.len()).then_some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_protocol::record_batch::BatchBuilder;
    use rivulet_storage::{AppendOptions, LogClass, LogId, Store, StoreOptions};

    fn batch(records: i64) -> bytes::Bytes {
        let builder = (0..records)
            .fold(BatchBuilder::new(), |b, i| b.record(1_000 + i, None, Some(bytes::Bytes::from(format!("v{i}")))));
        builder.build().expect("encodes")
    }

    fn leader_of_three(dir: &std::path::Path) -> Replica {
        let store = Store::open(&StoreOptions::new(dir)).expect("store");
        let log = Arc::new(store.open_log(LogId(1), LogClass::User).expect("log"));
        let replica = Replica::new("t", 0, log, 1);
        let view = ReplicaView {
            leader: 1,
            leader_epoch: 3,
            isr: vec![1, 2, 3],
            replicas: vec![1, 2, 3],
            revision: 7,
            controller_epoch: 1,
        };
        assert_eq!(replica.update(view), Transition::BecameLeader);
        replica
    }

    fn append(replica: &Replica, records: i64) {
        let options = AppendOptions {
            leader_epoch: replica.leader_epoch(),
            max_batch_bytes: 1 << 20,
            log_append_time_ms: None,
            origin: Default::default(),
        };
        replica.log.append(&batch(records), &options).expect("append");
    }

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_in_the_isr() {
        let dir = tempfile::tempdir().expect("temp dir");
        let replica = leader_of_three(dir.path());
        append(&replica, 10);
        // Followers have not fetched yet: nothing is committed.
        assert!(!replica.maybe_advance_high_watermark());
        assert_eq!(replica.log.high_watermark(), 0);
        assert_eq!(replica.record_follower_fetch(2, 10, 0), None);
        assert!(!replica.maybe_advance_high_watermark());
        assert_eq!(replica.record_follower_fetch(3, 4, 0), None);
        assert!(replica.maybe_advance_high_watermark());
        assert_eq!(replica.log.high_watermark(), 4);
        replica.record_follower_fetch(3, 10, 0);
        replica.maybe_advance_high_watermark();
        assert_eq!(replica.log.high_watermark(), 10);
        // The epoch this leader started is in the log's epoch cache.
        assert_eq!(replica.log.end_offset_for_epoch(3), (3, 10));
    }

    #[test]
    fn the_high_watermark_stands_still_while_the_isr_is_under_min_insync() {
        let dir = tempfile::tempdir().expect("temp dir");
        let replica = leader_of_three(dir.path());
        replica.set_min_insync(2);
        append(&replica, 10);
        replica.record_follower_fetch(2, 10, 0);
        replica.record_follower_fetch(3, 10, 0);
        assert!(replica.maybe_advance_high_watermark());
        assert_eq!(replica.log.high_watermark(), 10);
        // Only the leader left in sync: new records stay above the high watermark.
        replica.set_isr(vec![1], 8);
        append(&replica, 5);
        assert!(!replica.maybe_advance_high_watermark());
        assert_eq!(replica.log.high_watermark(), 10);
        // A follower back in sync with them lets it move.
        replica.record_follower_fetch(2, 15, 0);
        replica.set_isr(vec![1, 2], 9);
        assert!(replica.maybe_advance_high_watermark());
        assert_eq!(replica.log.high_watermark(), 15);
        // A min.insync.replicas above the replication factor counts as the factor.
        replica.set_min_insync(5);
        replica.set_isr(vec![1, 2, 3], 10);
        append(&replica, 1);
        replica.record_follower_fetch(2, 16, 0);
        replica.record_follower_fetch(3, 16, 0);
        assert!(replica.maybe_advance_high_watermark());
        assert_eq!(replica.log.high_watermark(), 16);
    }

    #[test]
    fn a_lagging_follower_leaves_the_isr_and_rejoins_once_caught_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let replica = leader_of_three(dir.path());
        append(&replica, 5);
        replica.record_follower_fetch(2, 5, 0);
        replica.record_follower_fetch(3, 5, 0);
        replica.maybe_advance_high_watermark();
        append(&replica, 5);
        std::thread::sleep(Duration::from_millis(60));
        // Follower 2 keeps up; follower 3 has not fetched since.
        replica.record_follower_fetch(2, 10, 0);
        assert_eq!(replica.shrunk_isr(Duration::from_millis(50)), Some(vec![1, 2]));
        replica.set_isr(vec![1, 2], 8);
        assert!(replica.maybe_advance_high_watermark());
        assert_eq!(replica.log.high_watermark(), 10);
        // Follower 3 comes back below the high watermark: not yet in sync; at it: rejoins.
        assert_eq!(replica.record_follower_fetch(3, 7, 0), None);
        assert_eq!(replica.record_follower_fetch(3, 10, 0), Some(vec![1, 2, 3]));
        // A stale ISR (older revision) does not overwrite a newer one.
        replica.set_isr(vec![1], 5);
        assert_eq!(replica.view().isr, vec![1, 2]);
    }

    #[test]
    fn a_new_leader_elsewhere_makes_this_replica_a_follower_that_checks_its_history() {
        let dir = tempfile::tempdir().expect("temp dir");
        let replica = leader_of_three(dir.path());
        let followed = ReplicaView {
            leader: 2,
            leader_epoch: 4,
            isr: vec![2, 3],
            replicas: vec![1, 2, 3],
            revision: 9,
            controller_epoch: 2,
        };
        assert_eq!(replica.update(followed.clone()), Transition::BecameFollower);
        assert!(replica.needs_truncation.load(Ordering::SeqCst));
        assert!(!replica.is_leader());
        assert_eq!(replica.update(followed), Transition::Unchanged);
        assert_eq!(replica.shrunk_isr(Duration::ZERO), None, "only a leader shrinks the ISR");
    }
}
