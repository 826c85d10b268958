//! The server-side assignors of KIP-848 consumer groups (`group.consumer.assignors`):
//! `uniform` (Kafka's default `UniformAssignor`) and `range` (`RangeAssignor`).
//!
//! Both compute a group's *target* assignment from its members' subscriptions and the
//! partition counts of the subscribed topics; the reconciliation in `consumer` then moves
//! each member towards it without ever giving a partition to two members at once.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// A member's partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignor names, in `group.consumer.assignors`' default order: the first is used when
/// a member names none.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// One subscribed topic as an assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub member_id: String,
    /// Ids of the subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
    /// The member's current target assignment (what stickiness tries to keep).
    pub current: Assignment,
}

/// Runs the assignor `name` (one of [`ASSIGNORS`]; anything else is uniform).
pub fn assign(name: &str, members: &[MemberSpec], topics: &[TopicSpec]) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// Kafka's `UniformAssignor` contract: every subscribed partition goes to exactly one of its
/// subscribers, the counts per member differ by at most one where subscriptions allow, and
/// a member keeps as many of its current partitions as balance permits (sticky), so a
/// member joining or leaving moves only the partitions it must.
pub fn uniform(members: &[MemberSpec], topics: &[TopicSpec]) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut load = vec![0usize; members.len()];
    let eligible = |topic: &Uuid| -> Vec<usize> {
        members.iter().enumerate().filter(|(_, m)| m.topics.contains(topic)).map(|(i, _)| i).collect()
    };
    // Partitions each member may keep: still subscribed and still existing. A partition
    // claimed twice (cannot happen through reconciliation, but a target is never trusted)
    // goes to the first claimant.
    let exists = |id: &Uuid, p: i32| topics.iter().any(|t| t.id == *id && (0..t.partitions).contains(&p));
    for (index, member) in members.iter().enumerate() {
        for (topic, partitions) in &member.current {
            if !member.topics.contains(topic) {
                continue;
            }
            for &p in partitions {
                if exists(topic, p) && !owner.contains_key(&(*topic, p)) {
                    owner.insert((*topic, p), index);
                    load[index] += 1;
                }
            }
        }
    }
    // Unowned partitions to the least-loaded subscriber (ties: member order).
    for topic in topics {
        let candidates = eligible(&topic.id);
        if candidates.is_empty() {
            continue;
        }
        for p in 0..topic.partitions {
            if owner.contains_key(&(topic.id, p)) {
                continue;
            }
            if let Some(&best) = candidates.iter().min_by_key(|&&i| (load[i], i)) {
                owner.insert((topic.id, p), best);
                load[best] += 1;
            }
        }
    }
    // Balance: move a partition from a member to a subscriber holding at least two fewer,
    // until none can move. Each move lowers the sum of squared loads, so this ends; the
    // bound only guards against a mistake turning it into a hang.
    let mut budget = owner.len().saturating_mul(members.len().max(1)).saturating_add(1);
    loop {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().copied().collect();
        for key in keys {
            let Some(&from) = owner.get(&key) else { continue };
            let target =
                eligible(&key.0).into_iter().filter(|&i| load[i] + 1 < load[from]).min_by_key(|&i| (load[i], i));
            if let Some(to) = target {
                owner.insert(key, to);
                load[from] -= 1;
                load[to] += 1;
                moved = true;
                budget = budget.saturating_sub(1);
            }
        }
        if !moved || budget == 0 {
            break;
        }
    }
    collect(members, owner)
}

/// Kafka's `RangeAssignor`: per topic, its subscribers in member-id order take contiguous
/// ranges of partitions, the first `partitions % subscribers` one more, so members
/// subscribed to co-partitioned topics get the same partition numbers of each.
pub fn range(members: &[MemberSpec], topics: &[TopicSpec]) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| members[a].member_id.cmp(&members[b].member_id));
    for topic in topics {
        let subscribers: Vec<usize> =
            order.iter().copied().filter(|&i| members[i].topics.contains(&topic.id)).collect();
        if subscribers.is_empty() || topic.partitions <= 0 {
            continue;
        }
        let count = subscribers.len() as i32;
        let (base, extra) = (topic.partitions / count, topic.partitions % count);
        let mut next = 0;
        for (rank, &member) in subscribers.iter().enumerate() {
            let size = base + i32::from((rank as i32) < extra);
            for p in next..next + size {
                owner.insert((topic.id, p), member);
            }
            next += size;
        }
    }
    collect(members, owner)
}

fn collect(members: &[MemberSpec], owner: BTreeMap<(Uuid, i32), usize>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> =
        members.iter().map(|m| (m.member_id.clone(), Assignment::new())).collect();
    for ((topic, p), index) in owner {
        if let Some(assignment) = members.get(index).and_then(|m| out.get_mut(&m.member_id)) {
            assignment.entry(topic).or_default().insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicSpec {
        TopicSpec { name: name.into(), id: Uuid::new_v4(), partitions }
    }

    fn member(id: &str, topics: &[&TopicSpec], current: Assignment) -> MemberSpec {
        MemberSpec { member_id: id.into(), topics: topics.iter().map(|t| t.id).collect(), current }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Every partition of `topics` exactly once across the assignment.
    fn assert_exactly_once(result: &BTreeMap<String, Assignment>, topics: &[TopicSpec]) {
        let mut seen = BTreeSet::new();
        for assignment in result.values() {
            for (t, ps) in assignment {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "partition {t}/{p} assigned twice");
                }
            }
        }
        let total: i32 = topics.iter().map(|t| t.partitions).sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_balances_and_is_sticky() {
        let t = topic("t", 12);
        let topics = vec![t.clone()];
        let members: Vec<MemberSpec> = ["a", "b", "c"].iter().map(|id| member(id, &[&t], Assignment::new())).collect();
        let first = uniform(&members, &topics);
        assert_exactly_once(&first, &topics);
        assert!(first.values().all(|a| count(a) == 4));

        // A fourth member joins: each of the three gives up exactly one partition.
        let mut members: Vec<MemberSpec> =
            ["a", "b", "c"].iter().map(|id| member(id, &[&t], first[*id].clone())).collect();
        members.push(member("d", &[&t], Assignment::new()));
        let second = uniform(&members, &topics);
        assert_exactly_once(&second, &topics);
        for id in ["a", "b", "c"] {
            assert_eq!(count(&second[id]), 3);
            let kept = second[id][&t.id].intersection(&first[id][&t.id]).count();
            assert_eq!(kept, 3, "member {id} should keep 3 of its 4 partitions");
        }

        // "b" leaves: only its partitions move.
        let members: Vec<MemberSpec> =
            ["a", "c", "d"].iter().map(|id| member(id, &[&t], second[*id].clone())).collect();
        let third = uniform(&members, &topics);
        assert_exactly_once(&third, &topics);
        for id in ["a", "c", "d"] {
            assert_eq!(count(&third[id]), 4);
            assert!(second[id][&t.id].is_subset(&third[id][&t.id]));
        }
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let (x, y) = (topic("x", 4), topic("y", 2));
        let topics = vec![x.clone(), y.clone()];
        let members = vec![member("a", &[&x], Assignment::new()), member("b", &[&x, &y], Assignment::new())];
        let result = uniform(&members, &topics);
        assert_exactly_once(&result, &topics);
        assert!(!result["a"].contains_key(&y.id));
        assert_eq!(count(&result["a"]), 3);
        assert_eq!(count(&result["b"]), 3);
    }

    #[test]
    fn uniform_drops_unsubscribed_and_deleted_partitions() {
        let t = topic("t", 2);
        let gone = Uuid::new_v4();
        let current: Assignment = [(t.id, BTreeSet::from([0, 1, 7])), (gone, BTreeSet::from([0]))].into();
        let result = uniform(&[member("a", &[&t], current)], std::slice::from_ref(&t));
        assert_eq!(result["a"], Assignment::from([(t.id, BTreeSet::from([0, 1]))]));
    }

    #[test]
    fn range_gives_co_partitioned_ranges() {
        let (x, y) = (topic("x", 5), topic("y", 5));
        let topics = vec![x.clone(), y.clone()];
        let members = vec![member("b", &[&x, &y], Assignment::new()), member("a", &[&x, &y], Assignment::new())];
        let result = range(&members, &topics);
        assert_exactly_once(&result, &topics);
        assert_eq!(result["a"][&x.id], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&x.id], BTreeSet::from([3, 4]));
        assert_eq!(result["a"][&y.id], result["a"][&x.id]);
    }
}
