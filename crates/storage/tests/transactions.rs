//! Transactions in a partition log on a real RocksDB: the last stable offset, markers,
//! the aborted-transaction index and what survives a reopen.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use rivulet_protocol::record_batch::{BatchBuilder, ControlType};
use rivulet_storage::{
    AbortedTxn, AppendError, AppendOptions, AppendOrigin, Isolation, LogClass, LogId, Store, StoreOptions,
};

fn batch(producer_id: i64, epoch: i16, first_sequence: i32, count: i32, transactional: bool) -> Bytes {
    let builder = BatchBuilder::new().producer(producer_id, epoch, first_sequence).transactional(transactional);
    let builder = (0..count)
        .fold(builder, |b, i| b.record(1_000, Some(Bytes::from(format!("k{i}"))), Some(Bytes::from(format!("v{i}")))));
    builder.build().unwrap()
}

fn options() -> AppendOptions {
    AppendOptions { leader_epoch: 0, max_batch_bytes: 1 << 20, log_append_time_ms: None, origin: AppendOrigin::Client }
}

fn batch_offsets(records: &Bytes) -> Vec<(i64, bool)> {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .iter()
        .flat_map(|s| s.records.iter().map(|r| (r.offset, r.control)))
        .collect()
}

#[test]
fn last_stable_offset_markers_and_aborted_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
    let log = store.open_log(LogId(1), LogClass::User).unwrap();

    // Producer 10 opens a transaction at 0; producer 20 writes non-transactionally.
    assert_eq!(log.append(&batch(10, 0, 0, 3, true), &options()).unwrap().base_offset, 0);
    assert_eq!(log.append(&batch(20, 0, 0, 2, false), &options()).unwrap().base_offset, 3);
    assert_eq!(log.last_stable_offset(), 0);
    assert_eq!(log.high_watermark(), 5);
    let committed = log.read_with(0, 1 << 20, true, Isolation::ReadCommitted).unwrap();
    assert!(committed.records.is_empty());
    assert_eq!(committed.last_stable_offset, 0);
    assert_eq!(committed.aborted, Some(vec![]));
    assert_eq!(batch_offsets(&log.read(0, 1 << 20, true).unwrap().records).len(), 5);

    // Commit: everything becomes stable.
    assert_eq!(log.append_marker(10, 0, ControlType::Commit, 0, 0, 2_000).unwrap(), 5);
    assert_eq!(log.last_stable_offset(), 6);
    let data = log.read_with(0, 1 << 20, true, Isolation::ReadCommitted).unwrap();
    assert_eq!(batch_offsets(&data.records).last(), Some(&(5, true)));
    assert_eq!(data.aborted, Some(vec![]));

    // A second transaction is aborted after producer 20 starts one of its own.
    log.append(&batch(10, 0, 3, 2, true), &options()).unwrap(); // 6..7
    log.append(&batch(20, 0, 2, 1, true), &options()).unwrap(); // 8
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(log.append_marker(10, 0, ControlType::Abort, 0, 0, 3_000).unwrap(), 9);
    // Producer 20's transaction is still open at 8.
    assert_eq!(log.last_stable_offset(), 8);
    let data = log.read_with(6, 1 << 20, true, Isolation::ReadCommitted).unwrap();
    assert_eq!(batch_offsets(&data.records), vec![(6, false), (7, false)]);
    let aborted = AbortedTxn { producer_id: 10, first_offset: 6, last_offset: 9, last_stable_offset: 8 };
    assert_eq!(data.aborted, Some(vec![aborted]));
    log.append_marker(20, 0, ControlType::Commit, 0, 0, 4_000).unwrap(); // 10
    assert_eq!(log.last_stable_offset(), 11);
    let data = log.read_with(0, 1 << 20, true, Isolation::ReadCommitted).unwrap();
    assert_eq!(batch_offsets(&data.records).len(), 11);
    assert_eq!(data.aborted, Some(vec![aborted]));
    // A range that ends before the aborted transaction began does not list it.
    assert_eq!(log.aborted_transactions(0, 6).unwrap(), vec![]);
    assert_eq!(log.aborted_transactions(9, 11).unwrap(), vec![aborted]);
    assert_eq!(log.aborted_transactions(10, 11).unwrap(), vec![]);
}

#[test]
fn open_transactions_and_the_index_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new(dir.path());
    {
        let store = Store::open(&opts).unwrap();
        let log = store.open_log(LogId(7), LogClass::User).unwrap();
        log.append(&batch(1, 0, 0, 2, true), &options()).unwrap();
        log.append_marker(1, 0, ControlType::Abort, 0, 0, 1).unwrap();
        log.append(&batch(1, 0, 2, 2, true), &options()).unwrap(); // 3..4, left open
        assert_eq!(log.last_stable_offset(), 3);
    }
    let store = Store::open(&opts).unwrap();
    let log = store.open_log(LogId(7), LogClass::User).unwrap();
    assert_eq!(log.last_stable_offset(), 3);
    assert_eq!(log.open_transactions(), vec![(1, 3)]);
    assert_eq!(log.read_with(0, 1 << 20, true, Isolation::ReadCommitted).unwrap().aborted.unwrap().len(), 1);
    // The coordinator aborts it after the restart with a bumped epoch (fencing).
    log.append_marker(1, 1, ControlType::Abort, 0, 0, 2).unwrap();
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(log.aborted_transactions(0, 6).unwrap().len(), 2);
    // The fenced epoch can no longer write.
    assert!(matches!(log.append(&batch(1, 0, 4, 1, true), &options()), Err(AppendError::InvalidProducerEpoch { .. })));
    assert!(matches!(
        log.append_marker(1, 0, ControlType::Commit, 0, 0, 3),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
    // The new epoch starts again at sequence 0.
    log.append(&batch(1, 1, 0, 1, true), &options()).unwrap();
}

#[test]
fn markers_from_a_deposed_coordinator_are_fenced_even_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new(dir.path());
    let fenced = |result: Result<i64, AppendError>, expected: i32, current_epoch: i32| match result {
        Err(AppendError::TransactionCoordinatorFenced { producer_id: 1, coordinator_epoch, current }) => {
            assert_eq!((coordinator_epoch, current), (expected, current_epoch))
        }
        other => panic!("expected TRANSACTION_COORDINATOR_FENCED, got {other:?}"),
    };
    {
        let store = Store::open(&opts).unwrap();
        let log = store.open_log(LogId(9), LogClass::User).unwrap();
        // A producer never marked accepts any coordinator epoch, 0 included.
        log.append(&batch(1, 0, 0, 1, true), &options()).unwrap(); // 0
        log.append_marker(1, 0, ControlType::Commit, 3, 0, 1).unwrap(); // 1
        log.append(&batch(1, 0, 1, 1, true), &options()).unwrap(); // 2
        fenced(log.append_marker(1, 0, ControlType::Abort, 2, 0, 2), 2, 3);
        // Refused, so the transaction is still open and nothing was written.
        assert_eq!((log.open_transactions(), log.log_end_offset()), (vec![(1, 2)], 3));
        // The same coordinator again, then a newer one.
        log.append_marker(1, 0, ControlType::Commit, 3, 0, 3).unwrap(); // 3
        log.append(&batch(1, 0, 2, 1, true), &options()).unwrap(); // 4
        log.append_marker(1, 0, ControlType::Abort, 5, 0, 4).unwrap(); // 5
        fenced(log.append_marker(1, 0, ControlType::Abort, 4, 0, 5), 4, 5);
        // Another producer's markers are judged on their own.
        log.append_marker(2, 0, ControlType::Abort, 0, 0, 5).unwrap();
    }
    let store = Store::open(&opts).unwrap();
    let log = store.open_log(LogId(9), LogClass::User).unwrap();
    fenced(log.append_marker(1, 0, ControlType::Commit, 4, 0, 6), 4, 5);
    // A bumped producer epoch does not reset the coordinator's fencing, as in Kafka.
    log.append(&batch(1, 1, 0, 1, true), &options()).unwrap();
    fenced(log.append_marker(1, 1, ControlType::Commit, 0, 0, 7), 0, 5);
    log.append_marker(1, 1, ControlType::Commit, 5, 0, 7).unwrap();
    // The producer-epoch check comes first.
    assert!(matches!(
        log.append_marker(1, 0, ControlType::Commit, 9, 0, 8),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn refuses_what_a_client_must_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
    let log = store.open_log(LogId(3), LogClass::User).unwrap();
    let marker = Bytes::from(rivulet_protocol::record_batch::control_batch(5, 0, ControlType::Commit, 0, 0));
    assert!(matches!(log.append(&marker, &options()), Err(AppendError::Batch(_))));
    log.append(&batch(5, 0, 0, 1, true), &options()).unwrap();
    assert!(matches!(log.append(&batch(5, 0, 1, 1, false), &options()), Err(AppendError::InvalidTxnState { .. })));
    // The group coordinator's transactional offset commits carry no sequence.
    let coordinator = AppendOptions { origin: AppendOrigin::Coordinator, ..options() };
    let offsets = batch(5, 0, -1, 1, true);
    assert!(log.append(&offsets, &options()).is_err());
    assert_eq!(log.append(&offsets, &coordinator).unwrap().base_offset, 1);
    assert_eq!(log.open_transactions(), vec![(5, 0)]);
}

/// One step of a random history: producers 0 and 1 are transactional, producer 2 is only
/// idempotent.
#[derive(Debug, Clone)]
enum Step {
    Data { producer: usize, records: i32 },
    End { producer: usize, commit: bool },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0usize..3, 1i32..4).prop_map(|(producer, records)| Step::Data { producer, records }),
        1 => (0usize..2, any::<bool>()).prop_map(|(producer, commit)| Step::End { producer, commit }),
    ]
}

/// What the Java consumer does with a read_committed fetch response
/// (`CompletedFetch.nextFetchedRecord`): a producer listed as aborted from its first offset
/// on has its transactional batches skipped until its ABORT marker; control batches are
/// never returned. Returns the visible data offsets and where the next fetch starts.
fn consume_like_the_java_client(records: &Bytes, aborted: &[AbortedTxn]) -> (Vec<i64>, Option<i64>) {
    let mut pending: Vec<AbortedTxn> = aborted.to_vec();
    pending.sort_by_key(|a| a.first_offset);
    let mut pending = pending.into_iter().peekable();
    let mut aborted_producers = std::collections::HashSet::new();
    let mut visible = Vec::new();
    let mut next = None;
    let mut buf = records.clone();
    for batch in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        let last = batch.records.iter().map(|r| r.offset).max().unwrap();
        next = Some(last + 1);
        let first = &batch.records[0];
        if first.producer_id >= 0 {
            while let Some(a) = pending.next_if(|a| a.first_offset <= last) {
                aborted_producers.insert(a.producer_id);
            }
            if first.control {
                aborted_producers.remove(&first.producer_id);
                continue;
            }
            if first.transactional && aborted_producers.contains(&first.producer_id) {
                continue;
            }
        }
        visible.extend(batch.records.iter().map(|r| r.offset));
    }
    (visible, next)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Whatever the interleaving of producers, commits and aborts, and however a
    /// read_committed consumer's fetches are sized, it sees exactly the committed and the
    /// non-transactional records below the last stable offset — never an aborted one
    /// (the Jepsen "aborted read"), never a gap.
    #[test]
    fn read_committed_sees_exactly_the_committed_records(
        steps in proptest::collection::vec(step(), 1..60),
        fetch_bytes in proptest::collection::vec(1usize..600, 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let log = store.open_log(LogId(9), LogClass::User).unwrap();
        let mut sequence = [0i32; 3];
        // Offsets of each producer's open transaction, and the truth per data offset.
        let mut open: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
        let mut committed = std::collections::BTreeSet::new();
        for step in steps {
            match step {
                Step::Data { producer, records } => {
                    let transactional = producer < 2;
                    let b = batch(producer as i64 + 100, 0, sequence[producer], records, transactional);
                    sequence[producer] += records;
                    let outcome = log.append(&b, &options()).unwrap();
                    let offsets = outcome.base_offset..=outcome.last_offset;
                    if transactional {
                        open[producer].extend(offsets);
                    } else {
                        committed.extend(offsets);
                    }
                }
                Step::End { producer, commit } => {
                    let control = if commit { ControlType::Commit } else { ControlType::Abort };
                    log.append_marker(producer as i64 + 100, 0, control, 0, 0, 1).unwrap();
                    let ended = std::mem::take(&mut open[producer]);
                    if commit {
                        committed.extend(ended);
                    }
                }
            }
        }
        let lso = log.last_stable_offset();
        let expected: Vec<i64> = committed.iter().copied().filter(|&o| o < lso).collect();
        let mut seen = Vec::new();
        let mut position = 0;
        for round in 0.. {
            let max_bytes = fetch_bytes[round % fetch_bytes.len()];
            let data = log.read_with(position, max_bytes, true, Isolation::ReadCommitted).unwrap();
            let (visible, next) = consume_like_the_java_client(&data.records, &data.aborted.unwrap());
            seen.extend(visible);
            match next {
                Some(next) => position = next,
                None => break,
            }
        }
        proptest::prop_assert_eq!(position.max(lso), lso, "read_committed stopped at the last stable offset");
        proptest::prop_assert_eq!(seen, expected);
    }
}

#[test]
fn idle_producers_expire_on_disk_but_not_while_a_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new(dir.path());
    // Every batch here carries timestamp 1,000.
    let expiration_ms = 60_000;
    {
        let store = Store::open(&opts).unwrap();
        let log = store.open_log(LogId(9), LogClass::User).unwrap();
        log.append(&batch(1, 0, 0, 2, false), &options()).unwrap();
        log.append(&batch(2, 0, 0, 1, true), &options()).unwrap(); // left open
        assert_eq!(log.producer_count(), 2);
        // A gap in producer 1's sequences is refused while the log knows it.
        assert!(matches!(
            log.append(&batch(1, 0, 5, 1, false), &options()),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        assert_eq!(log.expire_producers(1_000 + expiration_ms - 1, expiration_ms).unwrap(), 0);
        assert_eq!(log.expire_producers(1_000 + expiration_ms, expiration_ms).unwrap(), 1);
        assert_eq!(log.producer_count(), 1);
    }
    // Forgotten on disk too: after a reopen only the producer with the open transaction is left.
    let store = Store::open(&opts).unwrap();
    let log = store.open_log(LogId(9), LogClass::User).unwrap();
    assert_eq!(log.producer_count(), 1);
    assert_eq!(log.open_transactions(), vec![(2, 2)]);
    // An expired producer is accepted with any sequence, as one never seen.
    assert_eq!(log.append(&batch(1, 0, 5, 1, false), &options()).unwrap().base_offset, 3);
    // Once its transaction ends, the other one expires after its marker's timestamp.
    log.append_marker(2, 0, ControlType::Commit, 0, 0, 5_000).unwrap();
    assert_eq!(log.expire_producers(5_000 + expiration_ms - 1, expiration_ms).unwrap(), 1); // producer 1
    assert_eq!(log.expire_producers(5_000 + expiration_ms, expiration_ms).unwrap(), 1); // producer 2
    assert_eq!(log.producer_count(), 0);
}
