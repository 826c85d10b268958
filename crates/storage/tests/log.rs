//! Partition logs on a real RocksDB in a temp directory.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use proptest::prelude::*;
use rivulet_protocol::record_batch::{BatchBuilder, BatchHeader, Compression};
use rivulet_storage::{AppendOptions, LogClass, LogId, StorageError, Store, StoreOptions};

fn batch(timestamps: &[i64], compression: Compression) -> Bytes {
    let builder = timestamps.iter().enumerate().fold(BatchBuilder::new().compression(compression), |b, (i, &ts)| {
        b.record(ts, None, Some(Bytes::from(format!("value-{ts}-{i}"))))
    });
    builder.build().unwrap()
}

fn options() -> AppendOptions {
    AppendOptions { leader_epoch: 0, max_batch_bytes: 1 << 20, log_append_time_ms: None, origin: Default::default() }
}

fn offsets_in(records: &Bytes) -> Vec<i64> {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf).unwrap().iter().flat_map(|s| s.records.iter().map(|r| r.offset)).collect()
}

#[test]
fn append_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new(dir.path());
    {
        let store = Store::open(&opts).unwrap();
        let log = store.open_log(LogId(1), LogClass::User).unwrap();
        let other = store.open_log(LogId(2), LogClass::User).unwrap();
        for i in 0..10 {
            let outcome = log.append(&batch(&[i * 10, i * 10 + 1, i * 10 + 2], Compression::Gzip), &options()).unwrap();
            assert_eq!(outcome.base_offset, i * 3);
        }
        other.append(&batch(&[5], Compression::None), &options()).unwrap();
        assert_eq!(log.log_end_offset(), 30);
        // Reading from the middle of a batch returns that whole batch first.
        let data = log.read(4, 1 << 20, true).unwrap();
        assert_eq!(offsets_in(&data.records), (3..30).collect::<Vec<_>>());
        assert_eq!(data.high_watermark, 30);
        // A tiny limit still returns one batch with min_one_batch, none without.
        assert_eq!(offsets_in(&log.read(0, 1, true).unwrap().records), vec![0, 1, 2]);
        assert!(log.read(0, 1, false).unwrap().records.is_empty());
        assert!(log.read(30, 100, true).unwrap().records.is_empty());
        assert!(matches!(log.read(31, 100, true), Err(StorageError::OffsetOutOfRange { .. })));
        // Stored bytes are the client's bytes with only the base offset patched.
        let first = log.read(0, 1, true).unwrap().records;
        let original = batch(&[0, 1, 2], Compression::Gzip);
        assert_eq!(first[8..], original[8..]);
    }
    let store = Store::open(&opts).unwrap();
    let log = store.open_log(LogId(1), LogClass::User).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(store.open_log(LogId(2), LogClass::User).unwrap().log_end_offset(), 1);
    assert_eq!(log.append(&batch(&[1000], Compression::None), &options()).unwrap().base_offset, 30);
    store.delete_log(LogId(1), LogClass::User).unwrap();
    let reopened = store.open_log(LogId(1), LogClass::User).unwrap();
    assert_eq!(reopened.log_end_offset(), 0);
    assert_eq!(store.open_log(LogId(2), LogClass::User).unwrap().log_end_offset(), 1);
}

#[test]
fn timestamp_lookup_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
    let log = store.open_log(LogId(7), LogClass::User).unwrap();
    // Offsets 0..=5 with timestamps out of order inside and across batches.
    log.append(&batch(&[100, 300, 200], Compression::Lz4), &options()).unwrap();
    log.append(&batch(&[250, 500], Compression::Zstd), &options()).unwrap();
    log.append(&batch(&[400], Compression::Snappy), &options()).unwrap();
    let at = |t| log.lookup_timestamp(t).unwrap().map(|f| (f.offset, f.timestamp));
    assert_eq!(at(0), Some((0, 100)));
    assert_eq!(at(100), Some((0, 100)));
    assert_eq!(at(150), Some((1, 300)));
    assert_eq!(at(300), Some((1, 300)));
    assert_eq!(at(301), Some((4, 500)));
    assert_eq!(at(500), Some((4, 500)));
    assert_eq!(at(501), None);
    assert_eq!(log.max_timestamp_record().unwrap().map(|f| (f.offset, f.timestamp)), Some((4, 500)));
}

#[test]
fn log_append_time_rewrites_timestamps_and_keeps_crc_valid() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
    let log = store.open_log(LogId(3), LogClass::Internal).unwrap();
    let opts = AppendOptions { log_append_time_ms: Some(777), ..options() };
    let outcome = log.append(&batch(&[1, 2], Compression::None), &opts).unwrap();
    assert_eq!(outcome.log_append_time_ms, 777);
    let stored = log.read(0, 1 << 20, true).unwrap().records;
    let header = rivulet_protocol::record_batch::validate(&stored).unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp, 777);
    assert_eq!(log.lookup_timestamp(700).unwrap().map(|f| f.offset), Some(0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Model check: after any sequence of appends, reading from any offset returns every
    /// record from the batch holding it to the end, offsets contiguous.
    #[test]
    fn reads_match_a_model(sizes in proptest::collection::vec(1usize..6, 1..25), probe in 0usize..200, limit in 1usize..4000) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let log = store.open_log(LogId(9), LogClass::User).unwrap();
        let mut batch_starts = Vec::new();
        let mut next = 0i64;
        for &n in &sizes {
            let ts: Vec<i64> = (0..n as i64).collect();
            let outcome = log.append(&batch(&ts, Compression::None), &options()).unwrap();
            prop_assert_eq!(outcome.base_offset, next);
            batch_starts.push(next);
            next += n as i64;
        }
        let end = next;
        let fetch = (probe as i64) % (end + 1);
        let data = log.read(fetch, limit, true).unwrap();
        let offsets = offsets_in(&data.records);
        if fetch == end {
            prop_assert!(offsets.is_empty());
        } else {
            let start = *batch_starts.iter().filter(|&&s| s <= fetch).max().unwrap();
            prop_assert_eq!(offsets.first().copied(), Some(start));
            prop_assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1));
            prop_assert!(offsets.contains(&fetch));
            // Whole batches only, and within the limit unless it is the first batch.
            let mut at = 0;
            let mut batches = 0;
            while at < data.records.len() {
                let h = BatchHeader::parse(&data.records[at..]).unwrap();
                at += h.total_bytes();
                batches += 1;
            }
            prop_assert_eq!(at, data.records.len());
            prop_assert!(batches == 1 || data.records.len() <= limit);
        }
    }
}
