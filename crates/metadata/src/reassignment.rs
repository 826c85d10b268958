//! Partition reassignment (KIP-455) as changes to a partition's record and state, the way
//! Kafka's controller computes them (`PartitionReassignmentReplicas`,
//! `PartitionReassignmentRevert`):
//!
//! 1. A request for target replicas `T` on a partition with replicas `R` stores
//!    `replicas = T ++ (R − T)`, `adding = T − R`, `removing = R − T`. The added brokers
//!    find themselves among the replicas and start fetching.
//! 2. Once every target replica is in the ISR, the controller completes it: the replicas
//!    become `T`, the removed brokers leave the ISR (and leadership, with a new leader
//!    epoch so they are fenced), and they delete their copies.
//! 3. A cancellation goes back to the original replicas `R − adding`.
//!
//! Everything here is pure; the metadata store applies the results by compare-and-swap.

use std::collections::HashSet;

use crate::{MetadataError, PartitionRecord, PartitionState};

impl PartitionRecord {
    /// Whether a reassignment of this partition is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas before the reassignment (Kafka's `originalReplicas`).
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.adding_replicas.contains(r)).collect()
    }

    /// The replicas the reassignment is moving to.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing_replicas.contains(r)).collect()
    }
}

/// Kafka's `validateManualPartitionAssignment`: not empty, no broker twice, every broker
/// registered (`registered`).
pub fn validate_target(target: &[i32], registered: &HashSet<i32>) -> Result<(), MetadataError> {
    if target.is_empty() {
        return Err(MetadataError::InvalidReplication(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            return Err(MetadataError::InvalidReplication(format!(
                "The manual partition assignment includes the broker {} more than once.",
                pair[0]
            )));
        }
    }
    if let Some(unknown) = sorted.iter().find(|b| !registered.contains(b)) {
        return Err(MetadataError::InvalidReplication(format!(
            "The manual partition assignment includes broker {unknown}, but no such broker is registered."
        )));
    }
    Ok(())
}

/// The record after a request to reassign it to `target`, or `None` when that changes
/// nothing (the target is the current replica list and nothing is under way).
pub fn start(record: &PartitionRecord, target: &[i32]) -> Option<PartitionRecord> {
    let removing: Vec<i32> = sorted_difference(&record.replicas, target);
    let adding: Vec<i32> = sorted_difference(target, &record.replicas);
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    let next = PartitionRecord { replicas, adding_replicas: adding, removing_replicas: removing, ..record.clone() };
    (next != *record).then_some(next)
}

/// `a − b` in ascending order (Kafka keeps these sets in a `TreeSet`).
fn sorted_difference(a: &[i32], b: &[i32]) -> Vec<i32> {
    let mut out: Vec<i32> = a.iter().copied().filter(|x| !b.contains(x)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A cancelled reassignment: the original replicas, the ISR without the brokers being
/// added, and a new leader from it when the leader was one of them. Refused when the ISR
/// holds only added brokers and `unclean` elections are not allowed for the topic.
pub fn cancel(
    record: &PartitionRecord,
    state: &PartitionState,
    live: &HashSet<i32>,
    unclean: bool,
) -> Result<(PartitionRecord, PartitionState), MetadataError> {
    if !record.is_reassigning() {
        return Err(MetadataError::NoReassignmentInProgress);
    }
    let replicas = record.original_replicas();
    let mut isr: Vec<i32> = state.isr.iter().copied().filter(|r| !record.adding_replicas.contains(r)).collect();
    if isr.is_empty() {
        let first = *replicas
            .first()
            .ok_or_else(|| MetadataError::InvalidReplication("addingReplicas contains all replicas.".into()))?;
        if !unclean {
            return Err(MetadataError::InvalidReplication(format!(
                "Unable to revert partition assignment for partition {} because it would require an unclean \
                 leader election.",
                record.index
            )));
        }
        isr.push(first);
    }
    let next = PartitionRecord {
        replicas: replicas.clone(),
        adding_replicas: vec![],
        removing_replicas: vec![],
        ..record.clone()
    };
    let state = with_leader_among(state, &replicas, isr, live, false);
    Ok((next, state))
}

/// The completed reassignment once every target replica is in the ISR (Kafka's
/// `maybeCompleteReassignment`), or `None` while it must wait.
pub fn complete(
    record: &PartitionRecord,
    state: &PartitionState,
    live: &HashSet<i32>,
) -> Option<(PartitionRecord, PartitionState)> {
    if !record.is_reassigning() {
        return None;
    }
    let removing = &record.removing_replicas;
    let isr: Vec<i32> = state.isr.iter().copied().filter(|r| !removing.contains(r)).collect();
    let replicas = record.target_replicas();
    if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
        return None;
    }
    let next = PartitionRecord {
        replicas: replicas.clone(),
        adding_replicas: vec![],
        removing_replicas: vec![],
        ..record.clone()
    };
    // A replica leaving gets a new leader epoch, so nothing it still sends is accepted
    // (Kafka bumps the epoch when replicas are removed).
    let state = with_leader_among(state, &replicas, isr, live, !removing.is_empty());
    Some((next, state))
}

/// `state` with `isr`, and a leader from it (in `replicas` order, alive) when the current
/// one is no longer a replica in sync; the leader epoch is bumped on a leader change or
/// when `bump` asks for it.
fn with_leader_among(
    state: &PartitionState,
    replicas: &[i32],
    isr: Vec<i32>,
    live: &HashSet<i32>,
    bump: bool,
) -> PartitionState {
    let leader = if state.leader >= 0 && isr.contains(&state.leader) && replicas.contains(&state.leader) {
        state.leader
    } else {
        replicas.iter().copied().find(|r| isr.contains(r) && live.contains(r)).unwrap_or(-1)
    };
    let changed = leader != state.leader || bump;
    PartitionState {
        leader,
        leader_epoch: if changed { state.leader_epoch.saturating_add(1) } else { state.leader_epoch },
        isr,
        controller_epoch: state.controller_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(replicas: &[i32]) -> PartitionRecord {
        PartitionRecord { index: 0, log_id: 7, leader_epoch: 0, replicas: replicas.to_vec(), ..Default::default() }
    }

    fn state(leader: i32, epoch: i32, isr: &[i32]) -> PartitionState {
        PartitionState { leader, leader_epoch: epoch, isr: isr.to_vec(), controller_epoch: 3 }
    }

    fn live(ids: &[i32]) -> HashSet<i32> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_move_lists_the_target_first_then_the_replicas_leaving() {
        let moving = start(&record(&[1, 2, 3]), &[4, 2, 1]).unwrap();
        assert_eq!(moving.replicas, vec![4, 2, 1, 3]);
        assert_eq!((moving.adding_replicas.clone(), moving.removing_replicas.clone()), (vec![4], vec![3]));
        assert_eq!(moving.original_replicas(), vec![2, 1, 3]);
        assert_eq!(moving.target_replicas(), vec![4, 2, 1]);
        assert_eq!(start(&record(&[1, 2, 3]), &[1, 2, 3]), None);
        // A reorder changes the list without adding or removing anyone.
        let reordered = start(&record(&[1, 2, 3]), &[3, 1, 2]).unwrap();
        assert!(!reordered.is_reassigning());
        // A second request composes with the first, as Kafka's does.
        let again = start(&moving, &[5, 6]).unwrap();
        assert_eq!((again.replicas.clone(), again.adding_replicas.clone()), (vec![5, 6, 1, 2, 3, 4], vec![5, 6]));
        assert_eq!(again.removing_replicas, vec![1, 2, 3, 4]);
    }

    #[test]
    fn completion_waits_for_every_target_replica_in_the_isr() {
        let moving = start(&record(&[1, 2, 3]), &[4, 2, 1]).unwrap();
        assert_eq!(complete(&moving, &state(1, 5, &[1, 2, 3]), &live(&[1, 2, 3, 4])), None);
        let (done, next) = complete(&moving, &state(1, 5, &[1, 2, 3, 4]), &live(&[1, 2, 3, 4])).unwrap();
        assert_eq!((done.replicas, done.adding_replicas, done.removing_replicas), (vec![4, 2, 1], vec![], vec![]));
        // The leader stays; its epoch moves on so broker 3 is fenced.
        assert_eq!((next.leader, next.leader_epoch, next.isr), (1, 6, vec![1, 2, 4]));
    }

    #[test]
    fn a_leader_being_removed_hands_over_to_a_target_replica() {
        let moving = start(&record(&[1, 2, 3]), &[2, 3, 4]).unwrap();
        let (_, next) = complete(&moving, &state(1, 5, &[1, 2, 3, 4]), &live(&[1, 2, 3, 4])).unwrap();
        assert_eq!((next.leader, next.leader_epoch, next.isr), (2, 6, vec![2, 3, 4]));
        // The first live one.
        let (_, next) = complete(&moving, &state(1, 5, &[1, 2, 3, 4]), &live(&[1, 3, 4])).unwrap();
        assert_eq!(next.leader, 3);
    }

    #[test]
    fn cancelling_returns_to_the_original_replicas() {
        let moving = start(&record(&[1, 2, 3]), &[4, 5, 6]).unwrap();
        let (back, next) = cancel(&moving, &state(1, 5, &[1, 2, 3, 4]), &live(&[1, 2, 3, 4]), false).unwrap();
        assert_eq!((back.replicas, back.adding_replicas, back.removing_replicas), (vec![1, 2, 3], vec![], vec![]));
        assert_eq!((next.leader, next.leader_epoch, next.isr), (1, 5, vec![1, 2, 3]));
        // A leader among the added brokers gives way.
        let (_, next) = cancel(&moving, &state(4, 5, &[2, 4]), &live(&[1, 2, 3, 4]), false).unwrap();
        assert_eq!((next.leader, next.leader_epoch, next.isr), (2, 6, vec![2]));
        assert!(matches!(
            cancel(&moving, &state(4, 5, &[4, 5]), &live(&[1, 2, 3, 4, 5]), false),
            Err(MetadataError::InvalidReplication(_))
        ));
        let (_, unclean) = cancel(&moving, &state(4, 5, &[4, 5]), &live(&[1, 2, 3, 4, 5]), true).unwrap();
        assert_eq!((unclean.leader, unclean.isr), (1, vec![1]));
        assert!(matches!(
            cancel(&record(&[1, 2]), &state(1, 0, &[1, 2]), &live(&[1, 2]), false),
            Err(MetadataError::NoReassignmentInProgress)
        ));
    }

    #[test]
    fn targets_are_validated_as_kafka_does() {
        let registered = live(&[1, 2, 3]);
        assert!(validate_target(&[1, 2], &registered).is_ok());
        for bad in [&[][..], &[1, 1][..], &[1, 9][..]] {
            assert!(matches!(validate_target(bad, &registered), Err(MetadataError::InvalidReplication(_))), "{bad:?}");
        }
    }
}
