use super::*;
use rivulet_storage::{LogClass, LogId, Store, StoreOptions};

fn coordinator(dir: &std::path::Path, retention: Duration) -> GroupCoordinator {
    let store = Store::open(&StoreOptions::new(dir)).unwrap();
    let logs = (0..3).map(|i| Arc::new(store.open_log(LogId(100 + i), LogClass::Internal).unwrap())).collect();
    let settings = GroupSettings {
        initial_rebalance_delay: Duration::ZERO,
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        offsets_retention: retention,
        offset_metadata_max_bytes: 16,
    };
    GroupCoordinator::load(settings, logs).unwrap()
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
    let c = coordinator(dir.path(), Duration::from_millis(50));
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

    let value = |o| OffsetValue { offset: o, leader_epoch: 0, metadata: "m".into(), commit_timestamp_ms: now_ms() };
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
    std::thread::sleep(Duration::from_millis(300));
    c.tick();
    assert_eq!(c.describe("g").map(|d| d.state), Some(GroupState::Empty));
    std::thread::sleep(Duration::from_millis(100));
    c.tick();
    assert!(c.describe("g").is_none());
    assert!(c.fetch_offsets("g", None).is_empty());
}

#[test]
fn offsets_and_groups_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let c = coordinator(dir.path(), Duration::from_secs(3600));
        let joined = ready(c.join(JoinRequest { require_known_member_id: false, ..join_request("", &["range"]) }));
        let id = joined.member_id;
        ready(c.sync("g", &id, None, 1, (None, None), vec![(id.clone(), Bytes::from_static(b"assignment"))]));
        let value = OffsetValue { offset: 42, leader_epoch: 3, metadata: "meta".into(), commit_timestamp_ms: now_ms() };
        c.commit_offsets("g", &id, None, 1, &[("t".into(), 2, value)]).unwrap();
        // A simple (groupless) commit for another group.
        let simple =
            OffsetValue { offset: 9, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: now_ms() };
        c.commit_offsets("simple", "", None, -1, &[("t".into(), 0, simple)]).unwrap();
        id
    };
    let c = coordinator(dir.path(), Duration::from_secs(3600));
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
    let c = coordinator(dir.path(), Duration::from_secs(3600));
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
