//! Hot paths of the storage crate on a real RocksDB in a temp directory: appending 16 KiB
//! batches (validation, offset patch, one WriteBatch) and reading 1 MiB for a fetch.
//!
//!     cargo bench -p rivulet-storage

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rivulet_protocol::record_batch::BatchBuilder;
use rivulet_storage::{AppendOptions, LogClass, LogId, Store, StoreOptions};

fn batch() -> Bytes {
    let builder = (0..16).fold(BatchBuilder::new(), |b, i: i64| {
        let value: Vec<u8> = (0..1024).map(|b| (b * 7 + i) as u8).collect();
        b.record(1_700_000_000_000 + i, None, Some(Bytes::from(value)))
    });
    builder.build().expect("encode batch")
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
