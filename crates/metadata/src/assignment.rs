//! Where a new topic's replicas go: Kafka's replica placement (KIP-36), so leaders spread
//! evenly over the brokers and, when brokers name a rack (`broker.rack`), each partition's
//! replicas span as many racks as the replication factor allows.
//!
//! Brokers are first put in an order that alternates racks. Partition `p`'s first replica
//! (its preferred leader) is the broker at `(p + start) % n` in that order; the followers
//! are taken at a distance that grows with `shift` (bumped once every `n` partitions), so
//! the followers of one broker's partitions land on different brokers. A candidate is
//! skipped while its rack or itself already holds a replica of the partition, unless every
//! rack (or every broker) already does. Kafka draws `start` and `shift` at random; callers
//! pass them so that placement is reproducible in tests.

use std::collections::{BTreeMap, HashSet};

/// A live broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPlacement {
    pub node_id: i32,
    pub rack: Option<String>,
}

/// Why no placement exists (CreateTopics / CreatePartitions answer INVALID_REPLICATION_FACTOR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("Replication factor must be larger than 0.")]
    NotPositive,
    #[error("Replication factor: {requested} larger than available brokers: {available}.")]
    TooFewBrokers { requested: i16, available: usize },
    #[error("Not all brokers have rack information for replica rack aware assignment.")]
    MixedRackInformation,
}

/// Brokers ordered so that consecutive entries alternate racks: the first broker of each
/// rack (racks in name order), then the second of each, and so on.
fn rack_alternated(brokers: &[BrokerPlacement]) -> Vec<BrokerPlacement> {
    let mut by_rack: BTreeMap<&str, Vec<&BrokerPlacement>> = BTreeMap::new();
    for broker in brokers {
        by_rack.entry(broker.rack.as_deref().unwrap_or_default()).or_default().push(broker);
    }
    for members in by_rack.values_mut() {
        members.sort_by_key(|b| b.node_id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| by_rack.values().filter_map(move |members| members.get(i).map(|b| (*b).clone())))
        .collect()
}

/// The replicas of partitions `first_partition..first_partition + partitions`, leader first.
pub fn assign_replicas(
    brokers: &[BrokerPlacement],
    partitions: i32,
    replication_factor: i16,
    first_partition: i32,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, AssignmentError> {
    if replication_factor <= 0 {
        return Err(AssignmentError::NotPositive);
    }
    let factor = replication_factor as usize;
    if factor > brokers.len() {
        return Err(AssignmentError::TooFewBrokers { requested: replication_factor, available: brokers.len() });
    }
    let with_rack = brokers.iter().filter(|b| b.rack.is_some()).count();
    if with_rack != 0 && with_rack != brokers.len() {
        return Err(AssignmentError::MixedRackInformation);
    }
    let ordered = if with_rack == 0 {
        let mut plain = brokers.to_vec();
        plain.sort_by_key(|b| b.node_id);
        plain
    } else {
        rack_alternated(brokers)
    };
    let n = ordered.len();
    let racks = ordered.iter().map(|b| b.rack.as_deref()).collect::<HashSet<_>>().len();
    let start = start % n;
    let mut shift = shift % n;
    let mut assignment = Vec::with_capacity(usize::try_from(partitions).unwrap_or(0));
    for partition in first_partition.max(0)..first_partition.max(0) + partitions.max(0) {
        let p = partition as usize;
        // `is_multiple_of` is newer than the workspace's rust-version (1.85).
        #[allow(clippy::manual_is_multiple_of)]
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![ordered[first].node_id];
        let mut used_racks: HashSet<Option<&str>> = [ordered[first].rack.as_deref()].into_iter().collect();
        let mut used_brokers: HashSet<i32> = [ordered[first].node_id].into_iter().collect();
        let mut k = 0usize;
        while replicas.len() < factor {
            // Racks count only when brokers have them; the spread step skips whole racks.
            let step = if with_rack == 0 { shift } else { shift * racks };
            let candidate = &ordered[follower_index(first, step, k, n)];
            k += 1;
            let rack = candidate.rack.as_deref();
            let rack_ok = !used_racks.contains(&rack) || used_racks.len() == racks;
            let broker_ok = !used_brokers.contains(&candidate.node_id) || used_brokers.len() == n;
            if rack_ok && broker_ok {
                replicas.push(candidate.node_id);
                used_racks.insert(rack);
                used_brokers.insert(candidate.node_id);
            }
        }
        assignment.push(replicas);
    }
    Ok(assignment)
}

/// The position of the `k`-th follower candidate: never the leader's own position.
fn follower_index(first: usize, step: usize, k: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    (first + 1 + (step + k) % (n - 1)) % n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<BrokerPlacement> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| BrokerPlacement { node_id: i as i32 + 1, rack: r.map(str::to_string) })
            .collect()
    }

    fn leaders_per_broker(assignment: &[Vec<i32>]) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for replicas in assignment {
            *counts.entry(replicas[0]).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn twelve_partitions_on_three_brokers_spread_leaders_and_replicas() {
        let assignment = assign_replicas(&brokers(&[None, None, None]), 12, 3, 0, 1, 2).unwrap();
        assert_eq!(assignment.len(), 12);
        for replicas in &assignment {
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 2, 3]);
        }
        assert_eq!(leaders_per_broker(&assignment).values().copied().collect::<Vec<_>>(), vec![4, 4, 4]);
    }

    #[test]
    fn replicas_span_racks() {
        let six = brokers(&[Some("a"), Some("a"), Some("b"), Some("b"), Some("c"), Some("c")]);
        let assignment = assign_replicas(&six, 12, 3, 0, 0, 0).unwrap();
        for replicas in &assignment {
            let racks: HashSet<_> = replicas.iter().map(|id| six[(*id - 1) as usize].rack.clone()).collect();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
        assert!(leaders_per_broker(&assignment).values().all(|&n| n == 2));
    }

    #[test]
    fn refusals_match_kafka() {
        assert_eq!(
            assign_replicas(&brokers(&[None, None]), 1, 3, 0, 0, 0),
            Err(AssignmentError::TooFewBrokers { requested: 3, available: 2 })
        );
        assert_eq!(assign_replicas(&brokers(&[None]), 1, 0, 0, 0, 0), Err(AssignmentError::NotPositive));
        assert_eq!(
            assign_replicas(&brokers(&[Some("a"), None]), 1, 1, 0, 0, 0),
            Err(AssignmentError::MixedRackInformation)
        );
        assert_eq!(assign_replicas(&brokers(&[None]), 3, 1, 0, 5, 5).unwrap(), vec![vec![1], vec![1], vec![1]]);
    }

    proptest! {
        #[test]
        fn every_partition_gets_distinct_brokers_across_the_most_racks(
            racks in proptest::collection::vec(0u8..4, 1..9),
            use_racks in any::<bool>(),
            factor in 1i16..5,
            partitions in 1i32..40,
            start in 0usize..10,
            shift in 0usize..10,
        ) {
            let names = ["r0", "r1", "r2", "r3"];
            let all: Vec<Option<&str>> = racks.iter().map(|&r| use_racks.then(|| names[r as usize])).collect();
            let placement = brokers(&all);
            match assign_replicas(&placement, partitions, factor, 0, start, shift) {
                Err(AssignmentError::TooFewBrokers { .. }) => prop_assert!(factor as usize > placement.len()),
                Err(e) => prop_assert!(false, "{e}"),
                Ok(assignment) => {
                    let distinct_racks = all.iter().collect::<HashSet<_>>().len();
                    for replicas in assignment {
                        prop_assert_eq!(replicas.len(), factor as usize);
                        prop_assert_eq!(replicas.iter().collect::<HashSet<_>>().len(), factor as usize);
                        let covered = replicas.iter().map(|id| &all[(*id - 1) as usize]).collect::<HashSet<_>>().len();
                        prop_assert_eq!(covered, distinct_racks.min(factor as usize));
                    }
                }
            }
        }
    }
}
