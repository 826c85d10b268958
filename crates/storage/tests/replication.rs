//! Replication on real RocksDB: a follower copying its leader batch for batch, the
//! high watermark, the leader-epoch cache and truncation of divergent history.

use bytes::{Bytes, BytesMut};
use rivulet_protocol::record_batch::{BatchBuilder, ControlType};
use rivulet_storage::{AppendError, AppendOptions, Isolation, LogClass, LogId, PartitionLog, Store, StoreOptions};

/// An idempotent producer's batch of `count` records starting at `sequence`.
fn batch(producer_id: i64, sequence: i32, count: i32, tag: &str) -> Bytes {
    let builder = (sequence..sequence + count).fold(BatchBuilder::new().producer(producer_id, 0, sequence), |b, s| {
        b.record(1_000 + i64::from(s), None, Some(Bytes::from(format!("{tag}-{s}"))))
    });
    builder.build().unwrap()
}

fn options(leader_epoch: i32) -> AppendOptions {
    AppendOptions { leader_epoch, max_batch_bytes: 1 << 20, log_append_time_ms: None, origin: Default::default() }
}

/// Copies everything the follower lacks from the leader, as the fetcher does.
fn replicate(leader: &PartitionLog, follower: &PartitionLog) {
    loop {
        let data = leader.read_with(follower.log_end_offset(), 1 << 20, true, Isolation::Replica).unwrap();
        if data.records.is_empty() {
            return;
        }
        for batch in rivulet_protocol::record_batch::split_batches(&data.records).unwrap() {
            follower.append_replicated(&batch).unwrap();
        }
    }
}

fn everything(log: &PartitionLog) -> Bytes {
    log.read_with(0, usize::MAX, true, Isolation::Replica).unwrap().records
}

#[test]
fn follower_copies_batches_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let leader_store = Store::open(&StoreOptions::new(dir.path().join("leader"))).unwrap();
    let follower_store = Store::open(&StoreOptions::new(dir.path().join("follower"))).unwrap();
    let leader = leader_store.open_log(LogId(7), LogClass::User).unwrap();
    let follower = follower_store.open_log(LogId(7), LogClass::User).unwrap();
    leader.set_replicated(true);
    follower.set_replicated(true);
    for i in 0..5 {
        leader.append(&batch(42, i * 3, 3, "a"), &options(0)).unwrap();
    }
    // Nothing is committed until the follower has it: reads stop at the high watermark.
    assert_eq!(leader.high_watermark(), 0);
    assert!(leader.read(0, 1 << 20, true).unwrap().records.is_empty());
    replicate(&leader, &follower);
    assert_eq!(everything(&leader), everything(&follower));
    assert!(leader.advance_high_watermark(follower.log_end_offset()).unwrap());
    assert_eq!(leader.read(0, 1 << 20, true).unwrap().records, everything(&leader));
    // Never backwards, never past the log end.
    assert!(!leader.advance_high_watermark(3).unwrap());
    leader.advance_high_watermark(1_000).unwrap();
    assert_eq!(leader.high_watermark(), 15);

    // The follower takes over (epoch 1): a retry of the leader's last batch is recognised.
    follower.begin_epoch(1).unwrap();
    let retry = follower.append(&batch(42, 12, 3, "a"), &options(1)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 12);
    assert_eq!(follower.end_offset_for_epoch(0), (0, 15));
    assert_eq!(follower.end_offset_for_epoch(1), (1, 15));
}

#[test]
fn divergent_history_is_truncated_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let opts_a = StoreOptions::new(dir.path().join("a"));
    let store_a = Store::open(&opts_a).unwrap();
    let store_b = Store::open(&StoreOptions::new(dir.path().join("b"))).unwrap();
    let a = store_a.open_log(LogId(1), LogClass::User).unwrap();
    let b = store_b.open_log(LogId(1), LogClass::User).unwrap();
    // Epoch 0: both have offsets 0..6.
    a.append(&batch(1, 0, 3, "x"), &options(0)).unwrap();
    a.append(&batch(1, 3, 3, "x"), &options(0)).unwrap();
    replicate(&a, &b);
    // A writes two more batches in epoch 0 that never reach B, then dies.
    a.append(&batch(1, 6, 3, "lost"), &options(0)).unwrap();
    a.append(&batch(2, 0, 2, "lost"), &options(0)).unwrap();
    assert_eq!(a.log_end_offset(), 11);
    // B leads epoch 1 and takes new writes, including producer 1's sequence 6 again.
    b.begin_epoch(1).unwrap();
    b.append(&batch(1, 6, 2, "kept"), &options(1)).unwrap();
    b.append(&batch(3, 0, 4, "kept"), &options(1)).unwrap();

    // A comes back as a follower: KIP-279 asks B where A's latest epoch ends.
    let a_epoch = a.latest_epoch().unwrap();
    let (epoch, end) = b.end_offset_for_epoch(a_epoch);
    assert_eq!((epoch, end), (0, 6));
    a.truncate_to(end.min(a.log_end_offset())).unwrap();
    assert_eq!(a.log_end_offset(), 6);
    replicate(&b, &a);
    assert_eq!(everything(&a), everything(&b));
    assert_eq!(a.end_offset_for_epoch(0), (0, 6));
    assert_eq!(a.latest_epoch(), Some(1));

    // Producer state follows the surviving history: producer 2 (lost) is unknown, and
    // producer 1's next sequence is 8, so its retry of 6..7 is a duplicate on A too.
    let retry = a.append(&batch(1, 6, 2, "kept"), &options(1)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 6);
    // Reopening reads the same state back from disk.
    drop(a);
    let a = store_a.open_log(LogId(1), LogClass::User).unwrap();
    assert_eq!(a.log_end_offset(), b.log_end_offset());
    assert_eq!(a.end_offset_for_epoch(0), (0, 6));
    assert_eq!(a.end_offset_for_epoch(1), (1, b.log_end_offset()));
    assert!(a.append(&batch(1, 6, 2, "kept"), &options(1)).unwrap().duplicate);
}

#[test]
fn truncation_inside_a_batch_removes_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
    let log = store.open_log(LogId(3), LogClass::User).unwrap();
    log.append(&batch(-1, 0, 4, "p"), &options(0)).unwrap();
    log.append(&batch(-1, 0, 4, "q"), &options(0)).unwrap();
    log.truncate_to(6).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.read(0, 1 << 20, true).unwrap().records.len(), batch(-1, 0, 4, "p").len());
    // Appends continue from the new end.
    assert_eq!(log.append(&batch(-1, 0, 1, "r"), &options(0)).unwrap().base_offset, 4);
}

#[test]
fn a_follower_fences_deposed_coordinators_as_its_leader_did() {
    let dir = tempfile::tempdir().unwrap();
    let leader_store = Store::open(&StoreOptions::new(dir.path().join("leader"))).unwrap();
    let follower_store = Store::open(&StoreOptions::new(dir.path().join("follower"))).unwrap();
    let leader = leader_store.open_log(LogId(8), LogClass::User).unwrap();
    let follower = follower_store.open_log(LogId(8), LogClass::User).unwrap();
    let transactional = |sequence: i32| {
        BatchBuilder::new()
            .producer(42, 0, sequence)
            .transactional(true)
            .record(1, None, Some(Bytes::from("v")))
            .build()
    };
    leader.append(&transactional(0).unwrap(), &options(0)).unwrap(); // 0
    leader.append_marker(42, 0, ControlType::Commit, 4, 0, 1).unwrap(); // 1
    leader.append(&transactional(1).unwrap(), &options(0)).unwrap(); // 2
    leader.append_marker(42, 0, ControlType::Commit, 6, 0, 2).unwrap(); // 3
    replicate(&leader, &follower);
    assert_eq!(everything(&leader), everything(&follower));
    let is_fenced = |result: Result<i64, AppendError>, current_epoch: i32| matches!(result, Err(AppendError::TransactionCoordinatorFenced { current, .. }) if current == current_epoch);
    // The follower takes over: a marker from the coordinator the leader had fenced is
    // fenced here too, across a restart.
    assert!(is_fenced(follower.append_marker(42, 0, ControlType::Abort, 5, 1, 3), 6));
    drop(follower);
    let follower_store = {
        drop(follower_store);
        Store::open(&StoreOptions::new(dir.path().join("follower"))).unwrap()
    };
    let follower = follower_store.open_log(LogId(8), LogClass::User).unwrap();
    assert!(is_fenced(follower.append_marker(42, 0, ControlType::Abort, 5, 1, 3), 6));
    // Truncating away the newer marker rebuilds the state from the older one it read
    // back from the log.
    follower.truncate_to(3).unwrap();
    assert!(is_fenced(follower.append_marker(42, 0, ControlType::Abort, 3, 1, 3), 4));
    assert_eq!(follower.append_marker(42, 0, ControlType::Abort, 5, 1, 3).unwrap(), 3);
    follower.truncate_to(1).unwrap();
    assert_eq!(follower.append_marker(42, 0, ControlType::Abort, 0, 1, 4).unwrap(), 1);
}

#[test]
fn a_follower_accepts_the_gaps_compaction_leaves_but_not_an_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
    let follower = store.open_log(LogId(9), LogClass::User).unwrap();
    follower.set_replicated(true);
    let at = |offset: i64, tag: &str| {
        let mut stored = BytesMut::from(&batch(-1, 0, 1, tag)[..]);
        rivulet_protocol::record_batch::assign_offset(&mut stored, offset, 0);
        stored.freeze()
    };
    assert_eq!(follower.append_replicated(&at(0, "a")).unwrap(), 0);
    // Offsets 1..=4 were compacted away at the leader before this replica fetched them.
    assert_eq!(follower.append_replicated(&at(5, "b")).unwrap(), 5);
    assert_eq!(follower.log_end_offset(), 6);
    assert!(follower.append_replicated(&at(3, "c")).is_err());
    assert_eq!(follower.log_end_offset(), 6);
    let records = everything(&follower);
    let offsets: Vec<i64> = rivulet_protocol::record_batch::split_batches(&records)
        .unwrap()
        .iter()
        .map(|b| rivulet_protocol::record_batch::BatchHeader::parse(b).unwrap().base_offset)
        .collect();
    assert_eq!(offsets, vec![0, 5]);
}
