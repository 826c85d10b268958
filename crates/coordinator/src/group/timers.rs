//! The coordinator's timers, driven by [`GroupCoordinator::tick`]: the delayed initial
//! rebalance, join and sync timeouts, session expiry and offset retention.

use super::*;

/// How long a member id handed out with MEMBER_ID_REQUIRED stays reserved (KIP-394).
const PENDING_MEMBER_TIMEOUT_MS: i64 = 300_000;

impl GroupCoordinator {
    /// Expires sessions, completes joins and syncs that timed out, expires old offsets.
    pub fn tick(&self) {
        let now = self.now_ms();
        let mut groups = self.lock();
        let mut dead = Vec::new();
        for group in groups.values_mut() {
            self.expire_consumer_members(group, now);
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                        // Saturating: a wall clock stepped back never expires a session early.
                        && now.saturating_sub(m.last_seen_ms) > m.session_timeout_ms
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
            group.pending.retain(|_, issued| now.saturating_sub(*issued) < PENDING_MEMBER_TIMEOUT_MS);
            match group.state {
                GroupState::PreparingRebalance => self.maybe_complete_join(group, now),
                GroupState::CompletingRebalance if group.deadline_ms.is_some_and(|d| now >= d) => {
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
                // A consumer group keeps its offsets while it has members.
                GroupState::Empty if !group.has_members() => {
                    let retention = i64::try_from(self.settings.offsets_retention.as_millis()).unwrap_or(i64::MAX);
                    let expired: Vec<(String, i32)> = group
                        .offsets
                        .iter()
                        .filter(|(_, v)| {
                            v.commit_timestamp_ms.max(group.state_since_ms).saturating_add(retention) <= now
                        })
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
                        if group.modern.is_some() {
                            // A consumer group that emptied leaves no records behind to replay.
                            let tombstones = [
                                (RecordKey::ConsumerTargetEpoch { group: group.id.clone() }, None),
                                (RecordKey::ConsumerGroup { group: group.id.clone() }, None),
                            ];
                            if self.write(&group.id, &tombstones).is_err() {
                                continue;
                            }
                        }
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
