//! Hot paths of the protocol crate: decoding a Produce request carrying a 16 KiB batch,
//! and validating a batch (header parse + CRC-32C over the whole batch).
//!
//!     cargo bench -p rivulet-protocol

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rivulet_protocol::record_batch::{self, BatchBuilder};
use rivulet_protocol::request::decode_request;

/// 16 records of 1 KiB: a typical producer batch (`batch.size=16384`).
fn batch() -> Bytes {
    let builder = (0..16).fold(BatchBuilder::new().producer(1, 0, 0), |b, i: i64| {
        let value: Vec<u8> = (0..1024).map(|b| (b * 31 + i) as u8).collect();
        b.record(1_700_000_000_000, Some(Bytes::from(format!("key-{i}"))), Some(Bytes::from(value)))
    });
    builder.build().expect("encode batch")
}

fn produce_frame(records: Bytes) -> Bytes {
    let version = 9;
    let request = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ]);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, ApiKey::Produce.request_header_version(version))
        .expect("encode header");
    request.encode(&mut buf, version).expect("encode request");
    buf.freeze()
}

fn benches(c: &mut Criterion) {
    let batch = batch();
    let frame = produce_frame(batch.clone());
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group
        .bench_function("decode_produce_request_16KiB", |b| b.iter(|| decode_request(frame.clone()).expect("decodes")));
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("validate_batch_16KiB", |b| b.iter(|| record_batch::validate(&batch).expect("valid")));
    group.finish();
}

criterion_group! {
    name = codec;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(codec);
