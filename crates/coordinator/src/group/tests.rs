use super::*;
use crate::clock::ManualClock;
use rivulet_storage::{LogClass, LogId, Store, StoreOptions};

/// A coordinator over three partitions in `dir`, reading time from the returned clock.
fn coordinator(dir: &std::path::Path, retention: Duration) -> (GroupCoordinator, Arc<ManualClock>) {
    let store = Store::open(&StoreOptions::new(dir)).unwrap();
    let settings = GroupSettings {
        initial_rebalance_delay: Duration::ZERO,
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        offsets_retention: retention,
        offset_metadata_max_bytes: 16,
        consumer: Default::default(),
    };
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let coordinator = GroupCoordinator::new(settings, 3).with_clock(clock.clone());
    for i in 0..3 {
        let log = Arc::new(store.open_log(LogId(100 + i), LogClass::Internal).unwrap());
        coordinator.load_partition(i as i32, log).unwrap();
    }
    (coordinator, clock)
}

fn join_request(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 200,
        rebalance_timeout_ms: 1_000,
        protocol_type: "consumer".into(),
        protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from_static(b"meta"))).collect(),
        require_known_member_id: true,
    }
}

fn ready<T>(pending: Pending<T>) -> T {
    match pending {
        Pending::Ready(v) => v,
        Pending::Wait(mut rx) => rx.try_recv().expect("answered synchronously"),
    }
}

#[test]
fn member_id_required_then_join_sync_commit_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = coordinator(dir.path(), Duration::from_millis(50));
    let first = ready(c.join(join_request("", &["range"])));
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    let joined = ready(c.join(join_request(&first.member_id, &["range", "roundrobin"])));
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, first.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    let id = joined.member_id.clone();
    let synced = ready(c.sync("g", &id, None, 1, (None, None), vec![(id.clone(), Bytes::from_static(b"a"))]));
    assert_eq!(synced.assignment, Bytes::from_static(b"a"));
    assert_eq!(c.heartbeat("g", &id, None, 0), Some(ResponseError::IllegalGeneration));
    assert_eq!(c.heartbeat("g", &id, None, 1), None);

    let value =
        |o| OffsetValue { offset: o, leader_epoch: 0, metadata: "m".into(), commit_timestamp_ms: clock.now_ms() };
    assert_eq!(c.commit_offsets("g", &id, None, 1, 9, &[("t".into(), 0, value(5))]).unwrap(), vec![None]);
    assert_eq!(
        c.commit_offsets("g", &id, None, 0, 9, &[("t".into(), 0, value(6))]),
        Err(ResponseError::IllegalGeneration)
    );
    let too_long = OffsetValue { metadata: "x".repeat(17), ..value(7) };
    assert_eq!(
        c.commit_offsets("g", &id, None, 1, 9, &[("t".into(), 1, too_long)]).unwrap(),
        vec![Some(ResponseError::OffsetMetadataTooLarge)]
    );
    assert_eq!(c.fetch_offsets("g", None)[0].2.as_ref().map(|v| v.offset), Some(5));
    assert_eq!(c.delete_group("g"), Some(ResponseError::NonEmptyGroup));

    // The session (200 ms) expires; the group becomes Empty, then its offsets expire
    // after the retention (50 ms) and the group disappears.
    clock.advance(300);
    c.tick();
    assert_eq!(c.describe("g").map(|d| d.state), Some(GroupState::Empty));
    clock.advance(100);
    c.tick();
    assert!(c.describe("g").is_none());
    assert!(c.fetch_offsets("g", None).is_empty());
}

#[test]
fn offsets_and_groups_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let (c, clock) = coordinator(dir.path(), Duration::from_secs(3600));
        let joined = ready(c.join(JoinRequest { require_known_member_id: false, ..join_request("", &["range"]) }));
        let id = joined.member_id;
        ready(c.sync("g", &id, None, 1, (None, None), vec![(id.clone(), Bytes::from_static(b"assignment"))]));
        let value =
            OffsetValue { offset: 42, leader_epoch: 3, metadata: "meta".into(), commit_timestamp_ms: clock.now_ms() };
        c.commit_offsets("g", &id, None, 1, 9, &[("t".into(), 2, value)]).unwrap();
        // A simple (groupless) commit for another group.
        let simple =
            OffsetValue { offset: 9, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: clock.now_ms() };
        c.commit_offsets("simple", "", None, -1, 9, &[("t".into(), 0, simple)]).unwrap();
        id
    };
    let (c, _) = coordinator(dir.path(), Duration::from_secs(3600));
    let group = c.describe("g").unwrap();
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.members[0].member_id, id);
    assert_eq!(group.members[0].assignment, Bytes::from_static(b"assignment"));
    // The member carries on with its generation after the restart.
    assert_eq!(c.heartbeat("g", &id, None, 1), None);
    let offsets = c.fetch_offsets("g", Some(&[("t".to_string(), vec![2, 3])]));
    assert_eq!(offsets[0].2.as_ref().map(|v| (v.offset, v.leader_epoch, v.metadata.as_str())), Some((42, 3, "meta")));
    assert!(offsets[1].2.is_none());
    assert_eq!(c.fetch_offsets("simple", None)[0].2.as_ref().map(|v| v.offset), Some(9));
}

#[test]
fn inconsistent_protocols_and_unknown_members_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = coordinator(dir.path(), Duration::from_secs(3600));
    let joined = ready(c.join(JoinRequest { require_known_member_id: false, ..join_request("", &["range"]) }));
    assert_eq!(joined.error, None);
    let other = ready(c.join(JoinRequest { require_known_member_id: false, ..join_request("", &["sticky"]) }));
    assert_eq!(other.error, Some(ResponseError::InconsistentGroupProtocol));
    let unknown = ready(c.join(join_request("nobody", &["range"])));
    assert_eq!(unknown.error, Some(ResponseError::UnknownMemberId));
    assert_eq!(c.leave("g", &[("nobody".into(), None)]), vec![Some(ResponseError::UnknownMemberId)]);
    assert_eq!(c.leave("g", &[(joined.member_id.clone(), None)]), vec![None]);
    assert_eq!(c.describe("g").map(|d| d.state), Some(GroupState::Empty));
}

#[test]
fn a_session_ends_one_millisecond_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = coordinator(dir.path(), Duration::from_secs(3600));
    let join = |id: &str| c.join(JoinRequest { require_known_member_id: false, ..join_request(id, &["range"]) });
    let a = ready(join(""));
    assert_eq!(a.generation_id, 1);
    // B's join starts a rebalance that completes when A rejoins.
    let Pending::Wait(mut b_joined) = join("") else { panic!("B waits for the rebalance") };
    let a = ready(join(&a.member_id));
    let b = b_joined.try_recv().expect("the rebalance completed");
    assert_eq!((a.generation_id, b.generation_id, a.leader.as_str()), (2, 2, a.member_id.as_str()));
    assert_eq!(ready(c.sync("g", &a.member_id, None, 2, (None, None), vec![])).error, None);
    assert_eq!(ready(c.sync("g", &b.member_id, None, 2, (None, None), vec![])).error, None);
    assert_eq!(c.describe("g").map(|d| d.state), Some(GroupState::Stable));

    // Both sessions are 200 ms. A heartbeats; B falls silent. Exactly 200 ms later B is
    // still a member (Kafka expires a session only once its deadline has passed).
    clock.advance(200);
    assert_eq!(c.heartbeat("g", &a.member_id, None, 2), None);
    c.tick();
    let group = c.describe("g").unwrap();
    assert_eq!((group.state, group.members.len()), (GroupState::Stable, 2));

    // 1 ms later B is removed and the group rebalances without it.
    clock.advance(1);
    c.tick();
    let group = c.describe("g").unwrap();
    assert_eq!(group.state, GroupState::PreparingRebalance);
    let members: Vec<&str> = group.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, [a.member_id.as_str()]);
    assert_eq!(c.heartbeat("g", &a.member_id, None, 2), Some(ResponseError::RebalanceInProgress));
    assert_eq!(c.heartbeat("g", &b.member_id, None, 2), Some(ResponseError::UnknownMemberId));
    let a = ready(join(&a.member_id));
    assert_eq!((a.error, a.generation_id, a.members.len()), (None, 3, 1));
}

#[test]
fn write_failures_map_to_kafkas_codes() {
    let append =
        |source| PersistError::Write(RuntimeError::Append { topic: "__consumer_offsets", partition: 4, source });
    let fenced = append(AppendError::InvalidProducerEpoch { producer_id: 1, epoch: 0, current: 1 });
    assert_eq!(fenced.kafka_error(), ResponseError::ProducerFenced);
    let moved = PersistError::Write(RuntimeError::NotServed { topic: "__consumer_offsets", partition: 4 });
    assert_eq!(moved.kafka_error(), ResponseError::CoordinatorNotAvailable);
    let too_large = append(AppendError::TooLarge { size: 2, max: 1 });
    assert_eq!(too_large.kafka_error(), ResponseError::CoordinatorNotAvailable);
}

mod consumer_protocol {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::group::consumer::{ConsumerHeartbeat, HeartbeatOutcome, TopicMeta};

    fn topics(partitions: i32) -> (BTreeMap<String, TopicMeta>, uuid::Uuid) {
        let id = uuid::Uuid::new_v4();
        ([("t".to_string(), TopicMeta { id, partitions })].into(), id)
    }

    fn join(member: &str) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            version: 1,
            group_id: "cg".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(vec![]),
            ..Default::default()
        }
    }

    /// A regular heartbeat of `member` at `epoch` owning `owned`.
    fn beat(member: &str, epoch: i32, owned: &BTreeSet<i32>, topic: uuid::Uuid) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            version: 1,
            group_id: "cg".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(vec![(topic, owned.iter().copied().collect())]),
            ..Default::default()
        }
    }

    fn owned(outcome: &HeartbeatOutcome, topic: uuid::Uuid) -> BTreeSet<i32> {
        outcome.assignment.as_ref().and_then(|a| a.get(&topic).cloned()).unwrap_or_default()
    }

    fn error(outcome: &HeartbeatOutcome) -> Option<ResponseError> {
        outcome.error.as_ref().map(|(e, _)| *e)
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revoked_it() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _clock) = coordinator(dir.path(), Duration::from_secs(60));
        let (meta, t) = topics(4);

        let a = c.consumer_heartbeat(join("a"), &meta);
        assert_eq!(error(&a), None);
        assert_eq!(a.member_epoch, 1);
        let a_owned = owned(&a, t);
        assert_eq!(a_owned, BTreeSet::from([0, 1, 2, 3]));

        // "b" joins: the target gives it two of a's partitions, which are still a's.
        let b = c.consumer_heartbeat(join("b"), &meta);
        assert_eq!(b.member_epoch, 2);
        assert!(owned(&b, t).is_empty(), "b must wait until a revokes");

        // a learns it must revoke two: it stays in epoch 1.
        let a2 = c.consumer_heartbeat(beat("a", 1, &a_owned, t), &meta);
        assert_eq!(error(&a2), None);
        assert_eq!(a2.member_epoch, 1);
        let kept = owned(&a2, t);
        assert_eq!(kept.len(), 2);
        assert_eq!(c.describe_consumer_group("cg").unwrap().state, "Reconciling");

        // Until a acknowledges, b still gets nothing.
        let b2 = c.consumer_heartbeat(beat("b", 2, &BTreeSet::new(), t), &meta);
        assert!(owned(&b2, t).is_empty());

        // a acknowledges by listing only what it kept: it moves to epoch 2, and b gets the rest.
        let a3 = c.consumer_heartbeat(beat("a", 1, &kept, t), &meta);
        assert_eq!(a3.member_epoch, 2);
        let b3 = c.consumer_heartbeat(beat("b", 2, &BTreeSet::new(), t), &meta);
        let given = owned(&b3, t);
        assert_eq!(given.len(), 2);
        assert!(given.is_disjoint(&kept));
        assert_eq!(c.describe_consumer_group("cg").unwrap().state, "Stable");

        // Committing offsets is checked against the member epoch (KIP-848, OffsetCommit v9).
        let value = OffsetValue { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 };
        let offsets = [("t".to_string(), 0, value)];
        assert_eq!(c.commit_offsets("cg", "a", None, 2, 9, &offsets), Ok(vec![None]));
        assert_eq!(c.commit_offsets("cg", "a", None, 1, 9, &offsets), Err(ResponseError::StaleMemberEpoch));
        assert_eq!(c.commit_offsets("cg", "a", None, 2, 8, &offsets), Err(ResponseError::UnsupportedVersion));
        assert_eq!(c.commit_offsets("cg", "x", None, 2, 9, &offsets), Err(ResponseError::UnknownMemberId));
        assert_eq!(c.commit_offsets("cg", "", None, -1, 9, &offsets), Err(ResponseError::UnknownMemberId));
        assert_eq!(c.check_offset_fetch("cg", Some("a"), 1), Some(ResponseError::StaleMemberEpoch));
        assert_eq!(c.check_offset_fetch("cg", Some("a"), 2), None);
        assert_eq!(c.check_offset_fetch("cg", None, -1), None);
    }

    #[test]
    fn epochs_are_fenced_as_kafka_does() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _clock) = coordinator(dir.path(), Duration::from_secs(60));
        let (meta, t) = topics(2);
        let a = c.consumer_heartbeat(join("a"), &meta);
        let a_owned = owned(&a, t);
        assert_eq!(
            error(&c.consumer_heartbeat(beat("a", 5, &a_owned, t), &meta)),
            Some(ResponseError::FencedMemberEpoch)
        );
        assert_eq!(
            error(&c.consumer_heartbeat(beat("zz", 1, &a_owned, t), &meta)),
            Some(ResponseError::UnknownMemberId)
        );
        let mut unknown_group = beat("a", 1, &a_owned, t);
        unknown_group.group_id = "nope".into();
        assert_eq!(error(&c.consumer_heartbeat(unknown_group, &meta)), Some(ResponseError::GroupIdNotFound));

        let mut bad = join("b");
        bad.server_assignor = Some("sticky".into());
        assert_eq!(error(&c.consumer_heartbeat(bad, &meta)), Some(ResponseError::UnsupportedAssignor));
        let mut no_id = join("");
        no_id.version = 1;
        assert_eq!(error(&c.consumer_heartbeat(no_id.clone(), &meta)), Some(ResponseError::InvalidRequest));
        // v0: the coordinator generates the member id.
        no_id.version = 0;
        let generated = c.consumer_heartbeat(no_id, &meta);
        assert_eq!(error(&generated), None);
        assert!(!generated.member_id.is_empty());
        let mut bad_regex = join("r");
        bad_regex.subscribed_topic_names = None;
        bad_regex.subscribed_topic_regex = Some("(".into());
        assert_eq!(error(&c.consumer_heartbeat(bad_regex, &meta)), Some(ResponseError::InvalidRegularExpression));

        // A classic member cannot join the live consumer group.
        let classic = ready(c.join(JoinRequest { group_id: "cg".into(), ..join_request("", &["range"]) }));
        assert_eq!(classic.error, Some(ResponseError::InconsistentGroupProtocol));
        // Nor can a consumer-protocol member join a live classic group.
        let first = ready(c.join(join_request("", &["range"])));
        ready(c.join(join_request(&first.member_id, &["range"])));
        let mut into_classic = join("m");
        into_classic.group_id = "g".into();
        assert_eq!(error(&c.consumer_heartbeat(into_classic, &meta)), Some(ResponseError::GroupIdNotFound));

        let listed = c.list();
        assert!(listed.iter().any(|(id, _, _, kind)| id == "cg" && *kind == "consumer"));
        assert!(listed.iter().any(|(id, _, _, kind)| id == "g" && *kind == "classic"));
    }

    #[test]
    fn expired_and_leaving_members_free_their_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let (c, clock) = coordinator(dir.path(), Duration::from_secs(60));
        let (meta, t) = topics(4);
        let a = c.consumer_heartbeat(join("a"), &meta);
        let b = c.consumer_heartbeat(join("b"), &meta);
        let a2 = c.consumer_heartbeat(beat("a", a.member_epoch, &owned(&a, t), t), &meta);
        let a3 = c.consumer_heartbeat(beat("a", a2.member_epoch, &owned(&a2, t), t), &meta);
        let b2 = c.consumer_heartbeat(beat("b", b.member_epoch, &BTreeSet::new(), t), &meta);
        assert_eq!(owned(&a3, t).len() + owned(&b2, t).len(), 4);

        // b goes silent past the session timeout (45 s by default): a gets everything.
        clock.advance(30_000);
        let a4 = c.consumer_heartbeat(beat("a", a3.member_epoch, &owned(&a3, t), t), &meta);
        clock.advance(20_000);
        c.tick();
        let a5 = c.consumer_heartbeat(beat("a", a4.member_epoch, &owned(&a3, t), t), &meta);
        assert_eq!(owned(&a5, t), BTreeSet::from([0, 1, 2, 3]));
        assert_eq!(c.describe_consumer_group("cg").unwrap().members.len(), 1);

        // A topic growing to 6 partitions rebalances the group.
        let (mut grown, _) = topics(6);
        grown.get_mut("t").unwrap().id = t;
        let a6 = c.consumer_heartbeat(beat("a", a5.member_epoch, &owned(&a5, t), t), &grown);
        assert_eq!(owned(&a6, t).len(), 6);

        // Leaving (epoch -1) empties the group.
        let mut leave = beat("a", -1, &BTreeSet::new(), t);
        leave.owned = None;
        let left = c.consumer_heartbeat(leave, &meta);
        assert_eq!(error(&left), None);
        assert_eq!(left.member_epoch, -1);
        assert_eq!(c.describe_consumer_group("cg").unwrap().state, "Empty");
    }
}

mod consumer_protocol_persistence {
    use std::collections::BTreeSet;

    use super::*;
    use crate::group::consumer::{ConsumerHeartbeat, TopicMeta};

    /// The group's members, epochs and assignments are rebuilt from `__consumer_offsets`
    /// (Kafka's ConsumerGroup* records): after a reload a member carries on with its epoch.
    #[test]
    fn a_consumer_group_is_rebuilt_from_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let settings = || GroupSettings {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 60_000,
            offsets_retention: Duration::from_secs(600),
            offset_metadata_max_bytes: 16,
            consumer: Default::default(),
        };
        let logs: Vec<_> =
            (0..3).map(|i| Arc::new(store.open_log(LogId(200 + i), LogClass::Internal).unwrap())).collect();
        let c = GroupCoordinator::load(settings(), logs.clone()).unwrap();
        let t = uuid::Uuid::new_v4();
        let topics = [("t".to_string(), TopicMeta { id: t, partitions: 3 })].into();
        let join = |member: &str| ConsumerHeartbeat {
            version: 1,
            group_id: "pg".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(vec![]),
            ..Default::default()
        };
        let a = c.consumer_heartbeat(join("a"), &topics);
        assert_eq!(a.member_epoch, 1);
        let mut b_join = join("b");
        b_join.instance_id = Some("static-b".into());
        let b = c.consumer_heartbeat(b_join, &topics);
        assert!(b.error.is_none());
        let before = c.describe_consumer_group("pg").unwrap();
        drop(c);

        let c = GroupCoordinator::load(settings(), logs).unwrap();
        let after = c.describe_consumer_group("pg").unwrap();
        assert_eq!(after.group_epoch, before.group_epoch);
        assert_eq!(after.assignment_epoch, before.assignment_epoch);
        assert_eq!(after.members.len(), 2);
        for (x, y) in before.members.iter().zip(&after.members) {
            assert_eq!((&x.member_id, x.member_epoch, &x.assignment), (&y.member_id, y.member_epoch, &y.assignment));
            assert_eq!(x.target_assignment, y.target_assignment);
            assert_eq!(x.instance_id, y.instance_id);
        }
        // "a" goes on in its epoch: not fenced, still owning what it owned.
        let owned: BTreeSet<i32> = after.members[0].assignment.get(&t).cloned().unwrap_or_default();
        let beat = ConsumerHeartbeat {
            version: 1,
            group_id: "pg".into(),
            member_id: "a".into(),
            member_epoch: a.member_epoch,
            rebalance_timeout_ms: -1,
            owned: Some(vec![(t, owned.into_iter().collect())]),
            ..Default::default()
        };
        assert!(c.consumer_heartbeat(beat, &topics).error.is_none());
        // Unchanged, so still the instance id's member: the static rejoin is refused while it is live.
        let mut again = join("b2");
        again.instance_id = Some("static-b".into());
        assert_eq!(
            c.consumer_heartbeat(again, &topics).error.map(|(e, _)| e),
            Some(ResponseError::UnreleasedInstanceId)
        );
    }
}
