//! Produce-path rules against a real broker process: idempotent retries, sequence gaps,
//! fencing by epoch, CRC and size checks, unknown topics, and recovery after `kill -9`.

use bytes::{Bytes, BytesMut};
use rivulet_protocol::record_batch::{BatchBuilder, Compression};
use rivulet_test_support::error_codes::{
    CORRUPT_MESSAGE, INVALID_PRODUCER_EPOCH, INVALID_RECORD, MESSAGE_TOO_LARGE, OUT_OF_ORDER_SEQUENCE_NUMBER,
    TRANSACTION_COORDINATOR_FENCED, UNKNOWN_TOPIC_OR_PARTITION,
};
use rivulet_test_support::{requests, BrokerProcess, Client};

/// The binary under test, built by `cargo test`.
const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

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
    let builder = BatchBuilder::new().producer(producer_id, epoch, first_sequence).compression(compression);
    let builder = (0..count).fold(builder, |b, i| {
        // Keyless when the value length is odd, to exercise compacted-topic rules.
        let key = value_len.is_multiple_of(2).then(|| Bytes::from(format!("key-{}", first_sequence + i)));
        b.record(1_700_000_000_000 + i64::from(i), key, Some(Bytes::from(vec![b'v'; value_len])))
    });
    builder.build().unwrap()
}

fn create_topic(client: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let response = client.send(&requests::create_topic(name, partitions, configs), 7);
    assert_eq!(response.topics[0].error_code, 0, "{:?}", response.topics[0].error_message);
}

/// Produces one batch; returns (error_code, base_offset).
fn produce(client: &mut Client, topic: &str, records: Bytes) -> (i16, i64) {
    let response = client.send(&requests::produce(None, topic, 0, records), 9);
    let partition = &response.responses[0].partition_responses[0];
    if partition.error_code != 0 {
        eprintln!("produce to {topic}: error {} {:?}", partition.error_code, partition.error_message);
    }
    (partition.error_code, partition.base_offset)
}

fn latest_offset(client: &mut Client, topic: &str) -> i64 {
    let response = client.send(&requests::list_offsets(topic, 0, -1), 7);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

/// Fetches everything from offset 0 and decodes every record's (offset, sequence).
fn fetch_all(client: &mut Client, topic: &str) -> Vec<(i64, i32)> {
    let response = client.send(&requests::fetch(topic, 0, 0, 0), 12);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    requests::decode_records(partition.records.as_ref()).iter().map(|r| (r.offset, r.sequence)).collect()
}

fn init_producer_id(client: &mut Client) -> i64 {
    let response = client.send(&requests::init_producer_id(None), 4);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.producer_epoch, 0);
    response.producer_id.0
}

#[test]
fn retried_batch_is_stored_once_and_acknowledged_with_its_original_offset() {
    let broker = BrokerProcess::start(RIVULET, &[]);
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
    let broker = BrokerProcess::start(RIVULET, &[]);
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
    let broker = BrokerProcess::start(RIVULET, &["auto.create.topics.enable=false", "message.max.bytes=2000"]);
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
    // KIP-467: from v8 on the response names each refused record by its index in the batch.
    let response = client.send(&requests::produce(None, "compacted", 0, batch(-1, -1, 0, 3, 11)), 9);
    let refused = &response.responses[0].partition_responses[0];
    assert_eq!(refused.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), [0, 1, 2]);
    let message = refused.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("rejected due to 3 record errors"), "{message}");
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

/// WriteTxnMarkers' error for one marker on partition 0 of `topic`.
fn write_marker(client: &mut Client, topic: &str, producer_id: i64, commit: bool, coordinator_epoch: i32) -> i16 {
    let request = requests::write_txn_marker(topic, 0, producer_id, 0, commit, coordinator_epoch);
    let response = client.send(&request, 1);
    response.markers[0].topics[0].partitions[0].error_code
}

/// A marker from a coordinator older than the one that wrote the producer's last marker
/// on a partition is fenced (a deposed coordinator), also after a `kill -9` and restart;
/// the marker is not written.
#[test]
fn markers_of_a_deposed_transaction_coordinator_are_fenced_across_restarts() {
    let mut broker = BrokerProcess::start(RIVULET, &[]);
    let mut client = broker.client();
    create_topic(&mut client, "marked", 1, &[]);
    let pid = init_producer_id(&mut client);
    assert_eq!(write_marker(&mut client, "marked", pid, true, 5), 0);
    assert_eq!(write_marker(&mut client, "marked", pid, false, 4), TRANSACTION_COORDINATOR_FENCED);
    assert_eq!(write_marker(&mut client, "marked", pid, false, 5), 0);
    // Another producer's markers are judged on their own.
    assert_eq!(write_marker(&mut client, "marked", pid + 1, true, 0), 0);
    assert_eq!(latest_offset(&mut client, "marked"), 3);
    let (port, dir) = (broker.port, broker.data_dir.clone());
    broker.kill();
    let restarted = BrokerProcess::start_at(RIVULET, port, &dir, &[]);
    let mut client = restarted.client();
    assert_eq!(write_marker(&mut client, "marked", pid, true, 4), TRANSACTION_COORDINATOR_FENCED);
    assert_eq!(write_marker(&mut client, "marked", pid, true, 6), 0);
    assert_eq!(latest_offset(&mut client, "marked"), 4);
    drop(broker);
}

fn survives_kill_9(settings: &[&str]) {
    let mut broker = BrokerProcess::start(RIVULET, settings);
    let mut client = broker.client();
    create_topic(&mut client, "durable", 1, &[]);
    let pid = init_producer_id(&mut client);
    for i in 0..20 {
        assert_eq!(produce(&mut client, "durable", batch(pid, 0, i * 5, 5, 100)), (0, i64::from(i) * 5));
    }
    let (port, dir) = (broker.port, broker.data_dir.clone());
    broker.kill();
    let _restarted = {
        let restarted = BrokerProcess::start_at(RIVULET, port, &dir, settings);
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
