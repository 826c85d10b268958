//! Hot paths of the storage crate on a real RocksDB in a temp directory: appending 16 KiB
//! batches (validation, offset patch, one WriteBatch) and reading 1 MiB for a fetch.
//!
//!     cargo bench -p rivulet-storage

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rivulet_storage::{AppendOptions, LogClass, LogId, Store, StoreOptions};

fn batch() -> Bytes {
    let records: Vec<Record> = (0..16)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: None,
            value: Some(Bytes::from((0..1024).map(|b| (b * 7 + i) as u8).collect::<Vec<u8>>())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encode batch");
    buf.freeze()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&StoreOptions::new(dir.path())).expect("open store");
    let log = store.open_log(LogId(1), LogClass::User).expect("open log");
    let batch = batch();
    let options = AppendOptions {
        leader_epoch: 0,
        max_batch_bytes: 1 << 20,
        log_append_time_ms: None,
        origin: Default::default(),
    };
    let mut group = c.benchmark_group("storage");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("append_16KiB_batch", |b| b.iter(|| log.append(&batch, &options).expect("append")));

    let reader = store.open_log(LogId(2), LogClass::User).expect("open log");
    for _ in 0..2_000 {
        reader.append(&batch, &options).expect("append");
    }
    let end = reader.log_end_offset();
    let mut at = 0i64;
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("read_1MiB", |b| {
        b.iter(|| {
            let data = reader.read(at, 1 << 20, true).expect("read");
            at = (at + 1_000) % (end - 2_000);
            data
        })
    });
    group.finish();
}

criterion_group! {
    name = log;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(log);
