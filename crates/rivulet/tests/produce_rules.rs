//! Produce-path rules against a real broker process: idempotent retries, sequence gaps,
//! fencing by epoch, CRC and size checks, unknown topics, and recovery after `kill -9`.

mod support;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use support::{BrokerProcess, Client};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_RECORD: i16 = 87;

fn batch(producer_id: i64, epoch: i16, first_sequence: i32, count: i32, value_len: usize) -> Bytes {
    encode_batch(producer_id, epoch, first_sequence, count, value_len, Compression::Lz4)
}

fn encode_batch(
    producer_id: i64,
    epoch: i16,
    first_sequence: i32,
    count: i32,
    value_len: usize,
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            // kafka-protocol starts a new batch when sequences are not contiguous.
            sequence: first_sequence + i,
            timestamp: 1_700_000_000_000 + i64::from(i),
            // Keyless when the value length is odd, to exercise compacted-topic rules.
            key: value_len.is_multiple_of(2).then(|| Bytes::from(format!("key-{}", first_sequence + i))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).unwrap();
    buf.freeze()
}

fn create_topic(client: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let response = client.send(&CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7);
    assert_eq!(response.topics[0].error_code, 0, "{:?}", response.topics[0].error_message);
}

/// Produces one batch; returns (error_code, base_offset).
fn produce(client: &mut Client, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ]);
    let response = client.send(&request, 9);
    let partition = &response.responses[0].partition_responses[0];
    if partition.error_code != 0 {
        eprintln!("produce to {topic}: error {} {:?}", partition.error_code, partition.error_message);
    }
    (partition.error_code, partition.base_offset)
}

fn latest_offset(client: &mut Client, topic: &str) -> i64 {
    let request =
        ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
    let response = client.send(&request, 7);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

/// Fetches everything from offset 0 and decodes every record's (offset, sequence).
fn fetch_all(client: &mut Client, topic: &str) -> Vec<(i64, i32)> {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(64 * 1024 * 1024)])]);
    let response = client.send(&request, 12);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut records = partition.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
        out.extend(set.records.iter().map(|r| (r.offset, r.sequence)));
    }
    out
}

fn init_producer_id(client: &mut Client) -> i64 {
    let response = client
        .send(&InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000), 4);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.producer_epoch, 0);
    response.producer_id.0
}

#[test]
fn retried_batch_is_stored_once_and_acknowledged_with_its_original_offset() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    create_topic(&mut client, "idem", 1, &[]);
    let pid = init_producer_id(&mut client);

    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 0, 10, 10)), (0, 0));
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 10, 5, 10)), (0, 10));
    // The client did not see the acks and retries both batches.
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 0, 10, 10)), (0, 0));
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 10, 5, 10)), (0, 10));
    assert_eq!(latest_offset(&mut client, "idem"), 15);
    let records = fetch_all(&mut client, "idem");
    assert_eq!(records, (0..15).map(|i| (i64::from(i), i)).collect::<Vec<_>>());

    // A gap in the sequence is refused and nothing is written.
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 20, 1, 10)).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(latest_offset(&mut client, "idem"), 15);

    // A new producer id starts anywhere; another producer's state is separate.
    let other = init_producer_id(&mut client);
    assert_ne!(other, pid);
    assert_eq!(produce(&mut client, "idem", batch(other, 0, 0, 1, 10)), (0, 15));
    // The next batch in sequence is accepted.
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 15, 1, 10)), (0, 16));
}

#[test]
fn older_epoch_is_fenced_and_bumped_epoch_restarts_at_zero() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    create_topic(&mut client, "epochs", 1, &[]);
    let pid = init_producer_id(&mut client);
    assert_eq!(produce(&mut client, "epochs", batch(pid, 1, 0, 2, 10)).0, 0);
    assert_eq!(produce(&mut client, "epochs", batch(pid, 0, 2, 1, 10)).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(produce(&mut client, "epochs", batch(pid, 2, 5, 1, 10)).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut client, "epochs", batch(pid, 2, 0, 1, 10)), (0, 2));
}

#[test]
fn corrupt_oversized_and_unknown_are_refused_with_kafka_codes() {
    let broker = BrokerProcess::start(&["auto.create.topics.enable=false", "message.max.bytes=2000"]);
    let mut client = broker.client();
    create_topic(&mut client, "rules", 1, &[]);
    let good = batch(-1, -1, 0, 3, 10);
    let mut corrupt = BytesMut::from(&good[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(produce(&mut client, "rules", corrupt.freeze()).0, CORRUPT_MESSAGE);
    let big = encode_batch(-1, -1, 0, 40, 100, Compression::None);
    assert!(big.len() > 2000, "test batch must exceed message.max.bytes, is {}", big.len());
    assert_eq!(produce(&mut client, "rules", big).0, MESSAGE_TOO_LARGE);
    assert_eq!(produce(&mut client, "missing", good.clone()).0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(produce(&mut client, "rules", good), (0, 0));
    // Compacted topics refuse records without a key (INVALID_RECORD), as Kafka does.
    create_topic(&mut client, "compacted", 1, &[("cleanup.policy", "compact")]);
    assert_eq!(produce(&mut client, "compacted", batch(-1, -1, 0, 3, 11)).0, INVALID_RECORD);
    assert_eq!(produce(&mut client, "compacted", batch(-1, -1, 0, 3, 10)), (0, 0));
    // A per-topic max.message.bytes overrides the broker's.
    create_topic(&mut client, "roomy", 1, &[("max.message.bytes", "10000000")]);
    assert_eq!(produce(&mut client, "roomy", encode_batch(-1, -1, 0, 40, 100, Compression::None)).0, 0);
}

#[test]
fn producer_state_and_offsets_survive_kill_9() {
    survives_kill_9(&[]);
}

/// The same with `log.flush.interval.messages=1`: every acknowledged write is fsynced first.
#[test]
fn producer_state_and_offsets_survive_kill_9_with_fsync_per_write() {
    survives_kill_9(&["log.flush.interval.messages=1"]);
}

fn survives_kill_9(settings: &[&str]) {
    let mut broker = BrokerProcess::start(settings);
    let mut client = broker.client();
    create_topic(&mut client, "durable", 1, &[]);
    let pid = init_producer_id(&mut client);
    for i in 0..20 {
        assert_eq!(produce(&mut client, "durable", batch(pid, 0, i * 5, 5, 100)), (0, i64::from(i) * 5));
    }
    let (port, dir) = (broker.port, broker.data_dir.clone());
    broker.kill();
    let _restarted = {
        let restarted = BrokerProcess::start_at(port, &dir, settings);
        let mut client = restarted.client();
        assert_eq!(latest_offset(&mut client, "durable"), 100);
        // The retry of the last batch is still recognised after the restart.
        assert_eq!(produce(&mut client, "durable", batch(pid, 0, 95, 5, 100)), (0, 95));
        assert_eq!(produce(&mut client, "durable", batch(pid, 0, 100, 5, 100)), (0, 100));
        assert_eq!(produce(&mut client, "durable", batch(pid, 0, 120, 5, 100)).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
        let records = fetch_all(&mut client, "durable");
        assert_eq!(records.len(), 105);
        assert!(records.iter().enumerate().all(|(i, &(offset, _))| offset == i as i64));
        restarted
    };
    drop(broker);
}
