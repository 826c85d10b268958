//! The controller (Kafka's `KafkaController` in ZooKeeper mode): one broker at a time,
//! elected through a leased etcd key, watches which brokers are alive and rewrites the
//! partition states that no longer fit — a new leader from the ISR when the leader's broker
//! is gone (bumping the leader epoch), dead brokers removed from ISRs, leadership moved back
//! to the preferred replica — each write a compare-and-swap fenced by its controller key.
//! It also creates the internal topics once enough brokers are alive for their
//! replication factor, and completes partition reassignments once their target replicas
//! are in sync.

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::time::{Duration, Instant};

use rivulet_metadata::{reassignment, ClusterSnapshot, ControllerLease, MetadataError, PartitionState};

use super::Cluster;
use crate::group::persist::OFFSETS_TOPIC;
use crate::txn::TRANSACTION_STATE_TOPIC;

/// The state `current` should move to, if any (Kafka's `PartitionLeaderElectionAlgorithms`
/// and `removeReplicasFromIsr`).
///
/// * Leader gone: the first replica (in preference order) that is alive and in the ISR
///   leads, with the live ISR; with `unclean` any live replica may lead, alone in its ISR;
///   otherwise the partition goes leaderless and keeps its ISR, so only a replica that has
///   every committed record can lead again.
/// * Leader alive: dead brokers leave the ISR; with `preferred`, leadership returns to the
///   first replica when it is alive and in sync.
pub fn decide(
    current: &PartitionState,
    replicas: &[i32],
    live: &HashSet<i32>,
    unclean: bool,
    preferred: bool,
    controller_epoch: i32,
) -> Option<PartitionState> {
    let live_isr: Vec<i32> = current.isr.iter().copied().filter(|r| live.contains(r)).collect();
    let leader_alive = current.leader >= 0 && live.contains(&current.leader);
    let next_epoch = current.leader_epoch.saturating_add(1);
    if !leader_alive {
        if let Some(&leader) = replicas.iter().find(|r| live_isr.contains(r)) {
            return Some(PartitionState { leader, leader_epoch: next_epoch, isr: live_isr, controller_epoch });
        }
        if unclean {
            if let Some(&leader) = replicas.iter().find(|r| live.contains(r)) {
                return Some(PartitionState { leader, leader_epoch: next_epoch, isr: vec![leader], controller_epoch });
            }
        }
        if current.leader != -1 {
            return Some(PartitionState {
                leader: -1,
                leader_epoch: next_epoch,
                isr: current.isr.clone(),
                controller_epoch,
            });
        }
        return None;
    }
    if live_isr.len() < current.isr.len() {
        return Some(PartitionState {
            leader: current.leader,
            leader_epoch: current.leader_epoch,
            isr: live_isr,
            controller_epoch,
        });
    }
    if preferred {
        if let Some(&first) = replicas.first() {
            if first != current.leader && live.contains(&first) && current.isr.contains(&first) {
                return Some(PartitionState {
                    leader: first,
                    leader_epoch: next_epoch,
                    isr: current.isr.clone(),
                    controller_epoch,
                });
            }
        }
    }
    None
}

/// The brokers that registered anew since `state` was written at `revision` (a restart,
/// an expired session): they no longer hold what the state grants them. As if they had
/// died, they lose the leadership (a new epoch) and leave the ISR, and rejoin as followers
/// (KRaft fences a broker's old epoch the same way). A leaderless partition may elect
/// them: its ISR is all there is.
pub fn restarted_since(state: &PartitionState, revision: i64, incarnations: &HashMap<i32, i64>) -> HashSet<i32> {
    if state.leader < 0 {
        return HashSet::new();
    }
    incarnations.iter().filter(|&(_, &registered)| registered > revision).map(|(&broker, _)| broker).collect()
}

/// Which election an ElectLeaders request asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// The state an ElectLeaders request moves `current` to, or the error Kafka answers
/// (`ELECTION_NOT_NEEDED` when the outcome is already in place).
pub fn elect(
    current: &PartitionState,
    replicas: &[i32],
    live: &HashSet<i32>,
    election: ElectionType,
) -> Result<PartitionState, rivulet_protocol::ResponseError> {
    use rivulet_protocol::ResponseError;
    let next = |leader: i32, isr: Vec<i32>| PartitionState {
        leader,
        leader_epoch: current.leader_epoch.saturating_add(1),
        isr,
        controller_epoch: current.controller_epoch,
    };
    match election {
        ElectionType::Preferred => {
            let preferred = *replicas.first().ok_or(ResponseError::PreferredLeaderNotAvailable)?;
            if current.leader == preferred {
                return Err(ResponseError::ElectionNotNeeded);
            }
            if live.contains(&preferred) && current.isr.contains(&preferred) {
                Ok(next(preferred, current.isr.clone()))
            } else {
                Err(ResponseError::PreferredLeaderNotAvailable)
            }
        }
        ElectionType::Unclean => {
            if current.leader >= 0 && live.contains(&current.leader) {
                return Err(ResponseError::ElectionNotNeeded);
            }
            let live_isr: Vec<i32> = current.isr.iter().copied().filter(|r| live.contains(r)).collect();
            if let Some(&leader) = replicas.iter().find(|r| live_isr.contains(r)) {
                return Ok(next(leader, live_isr));
            }
            match replicas.iter().find(|r| live.contains(r)) {
                Some(&leader) => Ok(next(leader, vec![leader])),
                None => Err(ResponseError::EligibleLeadersNotAvailable),
            }
        }
    }
}

/// Campaigns for the controller role forever; while holding it, runs its duties.
pub async fn run(cluster: Weak<Cluster>) {
    loop {
        let Some(strong) = cluster.upgrade() else { return };
        let node_id = strong.config.node_id;
        let ttl = Duration::from_millis(strong.config.broker_session_timeout_ms);
        let etcd = strong.etcd.clone();
        drop(strong);
        match etcd.try_become_controller(node_id, ttl).await {
            Ok(Some((_, lease))) => {
                duties(&cluster, &lease).await;
                tracing::warn!(node_id, controller_epoch = lease.epoch, "no longer the controller");
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "controller election attempt failed"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn duties(cluster: &Weak<Cluster>, lease: &ControllerLease) {
    let mut last_rebalance = Instant::now();
    while lease.is_alive() {
        let Some(strong) = cluster.upgrade() else { return };
        let etcd = strong.etcd.clone();
        let rebalance_every = Duration::from_secs(strong.config.leader_imbalance_check_interval_seconds);
        let preferred = strong.config.auto_leader_rebalance_enable && last_rebalance.elapsed() >= rebalance_every;
        if preferred {
            last_rebalance = Instant::now();
        }
        let revision = match pass(&strong, lease, preferred).await {
            Ok(Some(revision)) => revision,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "controller pass failed; retrying");
                drop(strong);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        drop(strong);
        tokio::select! {
            _ = etcd.wait_for_change(revision) => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One look at the cluster. Returns the revision seen, or `None` when another broker is
/// the controller now.
async fn pass(cluster: &Cluster, lease: &ControllerLease, preferred: bool) -> Result<Option<i64>, MetadataError> {
    let snapshot = cluster.etcd.snapshot().await?;
    if snapshot.controller != Some(cluster.config.node_id) {
        return Ok(None);
    }
    let live: HashSet<i32> = snapshot.brokers.iter().map(|b| b.node_id).collect();
    create_internal_topics(cluster, &snapshot).await;
    for topic in &snapshot.topics {
        let unclean = topic
            .configs
            .get("unclean.leader.election.enable")
            .map_or(cluster.config.unclean_leader_election_enable, |v| v.eq_ignore_ascii_case("true"));
        for partition in topic.partitions.iter().filter(|p| !p.replicas.is_empty()) {
            let Some(versioned) = snapshot.states.get(&(topic.name.clone(), partition.index)) else { continue };
            if reassignment::complete(partition, &versioned.state, &live).is_some() {
                let completed = cluster
                    .etcd
                    .update_partition(&topic.name, partition.index, Some(lease), |record, state| {
                        Ok(reassignment::complete(record, state, &live))
                    })
                    .await?;
                if completed {
                    tracing::info!(
                        topic = %topic.name,
                        partition = partition.index,
                        replicas = ?partition.target_replicas(),
                        removed = ?partition.removing_replicas,
                        "partition reassignment completed"
                    );
                }
                continue;
            }
            let fenced = restarted_since(&versioned.state, versioned.revision, &snapshot.incarnations);
            let live_here = if fenced.is_empty() { live.clone() } else { live.difference(&fenced).copied().collect() };
            let Some(next) = decide(&versioned.state, &partition.replicas, &live_here, unclean, preferred, lease.epoch)
            else {
                continue;
            };
            let written = cluster
                .etcd
                .update_partition_state(&topic.name, partition.index, versioned.revision, &next, Some(lease))
                .await?;
            if written.is_some() {
                tracing::info!(
                    topic = %topic.name,
                    partition = partition.index,
                    leader = next.leader,
                    leader_epoch = next.leader_epoch,
                    isr = ?next.isr,
                    controller_epoch = lease.epoch,
                    restarted = ?fenced,
                    "partition state changed"
                );
            }
        }
    }
    Ok(Some(snapshot.revision))
}

/// Creates `__consumer_offsets` and `__transaction_state` once enough brokers are alive
/// for their replication factors (Kafka creates them on first use and refuses until then).
async fn create_internal_topics(cluster: &Cluster, snapshot: &ClusterSnapshot) {
    let wanted = [
        (OFFSETS_TOPIC, cluster.config.offsets_topic_num_partitions, cluster.config.offsets_topic_replication_factor),
        (
            TRANSACTION_STATE_TOPIC,
            cluster.config.transaction_state_log_num_partitions,
            cluster.config.transaction_state_log_replication_factor,
        ),
    ];
    for (name, partitions, factor) in wanted {
        if snapshot.topics.iter().any(|t| t.name == name) || snapshot.brokers.len() < factor as usize {
            continue;
        }
        match cluster.create_internal_topic(&snapshot.brokers, name, partitions, factor).await {
            Ok(()) => tracing::info!(topic = name, partitions, replication_factor = factor, "internal topic created"),
            Err(e) => tracing::warn!(topic = name, error = %e, "creating internal topic failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(leader: i32, epoch: i32, isr: &[i32]) -> PartitionState {
        PartitionState { leader, leader_epoch: epoch, isr: isr.to_vec(), controller_epoch: 1 }
    }

    fn live(ids: &[i32]) -> HashSet<i32> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_broker_registered_after_the_state_was_written_is_fenced_from_it() {
        let incarnations = HashMap::from([(1, 10), (2, 50), (3, 20)]);
        let restarted = restarted_since(&state(2, 4, &[1, 2, 3]), 30, &incarnations);
        assert_eq!(restarted, live(&[2]));
        // Fenced, the restarted leader is replaced from the ISR under a new epoch...
        let next = decide(&state(2, 4, &[1, 2, 3]), &[2, 1, 3], &live(&[1, 3]), false, false, 7).unwrap();
        assert_eq!(next, PartitionState { leader: 1, leader_epoch: 5, isr: vec![1, 3], controller_epoch: 7 });
        // ...and once the partition is leaderless, its ISR may elect the restarted broker.
        assert!(restarted_since(&state(-1, 5, &[2]), 30, &incarnations).is_empty());
        assert!(restarted_since(&state(2, 4, &[1, 2, 3]), 60, &incarnations).is_empty());
    }

    #[test]
    fn a_dead_leader_is_replaced_from_the_isr_in_preference_order() {
        let next = decide(&state(1, 4, &[1, 2, 3]), &[1, 3, 2], &live(&[2, 3]), false, false, 7).unwrap();
        assert_eq!(next, PartitionState { leader: 3, leader_epoch: 5, isr: vec![2, 3], controller_epoch: 7 });
    }

    #[test]
    fn without_a_live_isr_member_the_partition_waits_unless_unclean() {
        let current = state(1, 4, &[1]);
        let offline = decide(&current, &[1, 2, 3], &live(&[2, 3]), false, false, 7).unwrap();
        assert_eq!((offline.leader, offline.leader_epoch, offline.isr.clone()), (-1, 5, vec![1]));
        // Already leaderless: nothing to write until an ISR member returns.
        assert_eq!(decide(&offline, &[1, 2, 3], &live(&[2, 3]), false, false, 7), None);
        let back = decide(&offline, &[1, 2, 3], &live(&[1, 2, 3]), false, false, 7).unwrap();
        assert_eq!((back.leader, back.leader_epoch), (1, 6));
        let unclean = decide(&current, &[1, 2, 3], &live(&[2, 3]), true, false, 7).unwrap();
        assert_eq!((unclean.leader, unclean.isr), (2, vec![2]));
    }

    #[test]
    fn dead_followers_leave_the_isr_without_an_epoch_bump() {
        let next = decide(&state(1, 4, &[1, 2, 3]), &[1, 2, 3], &live(&[1, 3]), false, false, 7).unwrap();
        assert_eq!((next.leader, next.leader_epoch, next.isr), (1, 4, vec![1, 3]));
        assert_eq!(decide(&state(1, 4, &[1, 3]), &[1, 2, 3], &live(&[1, 3]), false, false, 7), None);
    }

    #[test]
    fn elect_leaders_answers_as_kafka() {
        use rivulet_protocol::ResponseError;
        let all = live(&[1, 2, 3]);
        let moved = state(2, 5, &[1, 2, 3]);
        assert_eq!(
            elect(&moved, &[1, 2, 3], &all, ElectionType::Preferred).map(|s| (s.leader, s.leader_epoch)),
            Ok((1, 6))
        );
        assert_eq!(
            elect(&state(1, 5, &[1, 2]), &[1, 2, 3], &all, ElectionType::Preferred),
            Err(ResponseError::ElectionNotNeeded)
        );
        assert_eq!(
            elect(&state(2, 5, &[2, 3]), &[1, 2, 3], &all, ElectionType::Preferred),
            Err(ResponseError::PreferredLeaderNotAvailable)
        );
        assert_eq!(elect(&moved, &[1, 2, 3], &all, ElectionType::Unclean), Err(ResponseError::ElectionNotNeeded));
        let offline = state(-1, 6, &[1]);
        let unclean = elect(&offline, &[1, 2, 3], &live(&[3]), ElectionType::Unclean).unwrap();
        assert_eq!((unclean.leader, unclean.isr), (3, vec![3]));
        assert_eq!(
            elect(&offline, &[1, 2, 3], &live(&[]), ElectionType::Unclean),
            Err(ResponseError::EligibleLeadersNotAvailable)
        );
    }

    #[test]
    fn preferred_leader_returns_only_when_in_sync() {
        let current = state(2, 5, &[2, 3]);
        assert_eq!(decide(&current, &[1, 2, 3], &live(&[1, 2, 3]), false, true, 7), None);
        let synced = state(2, 5, &[1, 2, 3]);
        let next = decide(&synced, &[1, 2, 3], &live(&[1, 2, 3]), false, true, 7).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (1, 6));
        assert_eq!(decide(&synced, &[1, 2, 3], &live(&[1, 2, 3]), false, false, 7), None);
    }
}
