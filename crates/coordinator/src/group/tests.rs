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
    assert_eq!(c.commit_offsets("g", &id, None, 1, &[("t".into(), 0, value(5))]).unwrap(), vec![None]);
    assert_eq!(
        c.commit_offsets("g", &id, None, 0, &[("t".into(), 0, value(6))]),
        Err(ResponseError::IllegalGeneration)
    );
    let too_long = OffsetValue { metadata: "x".repeat(17), ..value(7) };
    assert_eq!(
        c.commit_offsets("g", &id, None, 1, &[("t".into(), 1, too_long)]).unwrap(),
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
        c.commit_offsets("g", &id, None, 1, &[("t".into(), 2, value)]).unwrap();
        // A simple (groupless) commit for another group.
        let simple =
            OffsetValue { offset: 9, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: clock.now_ms() };
        c.commit_offsets("simple", "", None, -1, &[("t".into(), 0, simple)]).unwrap();
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
