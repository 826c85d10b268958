//! The coordinator's timers, driven by [`GroupCoordinator::tick`]: the delayed initial
//! rebalance, join and sync timeouts, session expiry and offset retention.

use super::*;

impl GroupCoordinator {
    /// Expires sessions, completes joins and syncs that timed out, expires old offsets.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut groups = self.lock();
        let mut dead = Vec::new();
        for group in groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                        && now.duration_since(m.last_seen) > m.session_timeout
                })
                .map(|m| m.id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(group = %group.id, member = %id, "member session expired");
                    self.remove_member(group, id);
                }
                self.on_membership_shrunk(group, now);
            }
            group.pending.retain(|_, issued| now.duration_since(*issued) < Duration::from_secs(300));
            match group.state {
                GroupState::PreparingRebalance => self.maybe_complete_join(group, now),
                GroupState::CompletingRebalance if group.deadline.is_some_and(|d| now >= d) => {
                    // The leader never sent its assignment: members that did not sync are
                    // dropped and the rest rebalance, as Kafka does.
                    let stale: Vec<String> =
                        group.members.values().filter(|m| m.sync_waiter.is_none()).map(|m| m.id.clone()).collect();
                    for id in stale {
                        self.remove_member(group, &id);
                    }
                    self.on_membership_shrunk(group, now);
                    if group.state == GroupState::CompletingRebalance {
                        self.prepare_rebalance(group, now);
                    }
                }
                GroupState::Empty => {
                    let retention = self.settings.offsets_retention.as_millis() as i64;
                    let now_ms = now_ms();
                    let expired: Vec<(String, i32)> = group
                        .offsets
                        .iter()
                        .filter(|(_, v)| v.commit_timestamp_ms.max(group.state_since_ms) + retention <= now_ms)
                        .map(|(k, _)| k.clone())
                        .collect();
                    if !expired.is_empty() {
                        let tombstones: Vec<_> = expired
                            .iter()
                            .map(|(topic, partition)| {
                                (
                                    RecordKey::Offset {
                                        group: group.id.clone(),
                                        topic: topic.clone(),
                                        partition: *partition,
                                    },
                                    None,
                                )
                            })
                            .collect();
                        if self.write(&group.id, &tombstones).is_ok() {
                            for key in &expired {
                                group.offsets.remove(key);
                            }
                            tracing::info!(group = %group.id, partitions = expired.len(), "expired committed offsets (offsets.retention.minutes)");
                        }
                    }
                    if group.offsets.is_empty() && group.members.is_empty() && group.pending.is_empty() {
                        dead.push(group.id.clone());
                    }
                }
                _ => {}
            }
        }
        for id in dead {
            groups.remove(&id);
        }
    }
}
