//! The handlers with real logic, driven over a real loopback socket against an in-process
//! broker on a real RocksDB: requests are encoded by `kafka-protocol`, as a client's would
//! be, and every answer is checked against what Apache Kafka would say.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, GroupId, InitProducerIdResponse, OffsetCommitRequest, OffsetFetchRequest,
    ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_protocol::record_batch::BatchBuilder;
use rivulet_test_support::error_codes::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, INVALID_PARTITIONS, NONE, NOT_COORDINATOR,
    TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION,
};
use rivulet_test_support::requests::{self, topic_name};
use rivulet_test_support::AsyncClient;
use support::InProcessBroker;

// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

// Versions used throughout: the newest that still name topics rather than ids (Produce and
// Fetch v13 name them by id, KIP-516).
const PRODUCE_V: i16 = 12;
const FETCH_V: i16 = 12;

fn value(text: &str) -> Option<Bytes> {
    Some(Bytes::from(text.to_string()))
}

async fn create_topic(client: &mut AsyncClient, name: &str, partitions: i32) -> (i16, i32) {
    let response = client.send(&requests::create_topic(name, partitions, &[]), 7).await;
    let result = &response.topics[0];
    assert_eq!(result.name.0.as_str(), name);
    (result.error_code, result.num_partitions)
}

async fn produce_with(
    client: &mut AsyncClient,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> PartitionProduceResponse {
    let mut response = client.send(&requests::produce(transactional_id, topic, partition, batch), PRODUCE_V).await;
    assert_eq!(response.responses.len(), 1);
    response.responses.remove(0).partition_responses.remove(0)
}

async fn produce(client: &mut AsyncClient, topic: &str, partition: i32, batch: Bytes) -> PartitionProduceResponse {
    produce_with(client, None, topic, partition, batch).await
}

/// One partition fetched from `offset`, at `isolation` (0 read_uncommitted, 1 read_committed).
async fn fetch(client: &mut AsyncClient, topic: &str, partition: i32, offset: i64, isolation: i8) -> PartitionData {
    let mut response = client.send(&requests::fetch(topic, partition, offset, isolation), FETCH_V).await;
    assert_eq!(response.error_code, NONE);
    response.responses.remove(0).partitions.remove(0)
}

/// `(offset, value)` of every data record in `records` (control records left out).
fn data_records(records: Option<&Bytes>) -> Vec<(i64, String)> {
    requests::decode_records(records)
        .iter()
        .filter(|r| !r.control)
        .map(|r| (r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()))
        .collect()
}

async fn list_offset(
    client: &mut AsyncClient,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let mut response = client.send(&requests::list_offsets(topic, partition, timestamp), 7).await;
    response.topics.remove(0).partitions.remove(0)
}

/// Whether `code` says the coordinator is not ready yet (its partition still loading
/// right after start), for which a client retries.
fn coordinator_not_ready(code: i16) -> bool {
    matches!(code, COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR)
}

async fn init_producer_id(client: &mut AsyncClient, transactional_id: Option<&str>) -> InitProducerIdResponse {
    let request = requests::init_producer_id(transactional_id);
    for _ in 0..100 {
        let response = client.send(&request, 4).await;
        if !coordinator_not_ready(response.error_code) {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the transaction coordinator did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_creates_once_and_refuses_bad_requests() {
    let broker = InProcessBroker::start(&[]).await;
    let mut client = broker.client().await;
    assert_eq!(create_topic(&mut client, "orders", 3).await, (NONE, 3));
    let (error, _) = create_topic(&mut client, "orders", 3).await;
    assert_eq!(error, TOPIC_ALREADY_EXISTS);
    let (error, _) = create_topic(&mut client, "empty", 0).await;
    assert_eq!(error, INVALID_PARTITIONS);
    // The refused topic does not exist afterwards: producing to it fails.
    let batch = BatchBuilder::new().record(1, None, value("x")).build().unwrap();
    assert_eq!(produce(&mut client, "empty", 0, batch.clone()).await.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    // The created one has exactly three partitions.
    assert_eq!(produce(&mut client, "orders", 2, batch.clone()).await.error_code, NONE);
    assert_eq!(produce(&mut client, "orders", 3, batch).await.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_assigns_offsets_and_fetch_returns_the_records() {
    let broker = InProcessBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "events", 1).await;
    let first = BatchBuilder::new().record(1_000, None, value("a")).record(1_001, None, value("b"));
    let first = produce(&mut client, "events", 0, first.record(1_002, None, value("c")).build().unwrap()).await;
    assert_eq!((first.error_code, first.base_offset), (NONE, 0));
    let second = BatchBuilder::new().record(2_000, None, value("d")).record(2_001, None, value("e")).build().unwrap();
    let second = produce(&mut client, "events", 0, second).await;
    assert_eq!((second.error_code, second.base_offset), (NONE, 3));

    let all = fetch(&mut client, "events", 0, 0, 0).await;
    assert_eq!((all.error_code, all.high_watermark, all.log_start_offset), (NONE, 5, 0));
    let expected: Vec<(i64, String)> =
        ["a", "b", "c", "d", "e"].iter().enumerate().map(|(i, v)| (i as i64, v.to_string())).collect();
    assert_eq!(data_records(all.records.as_ref()), expected);
    // A fetch from the middle starts at the batch holding that offset.
    let tail = fetch(&mut client, "events", 0, 3, 0).await;
    assert_eq!(data_records(tail.records.as_ref()), expected[3..].to_vec());
    // At the log end there is nothing yet.
    let end = fetch(&mut client, "events", 0, 5, 0).await;
    assert_eq!((end.error_code, data_records(end.records.as_ref())), (NONE, vec![]));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_is_answered_with_the_original_offset() {
    let broker = InProcessBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "payments", 1).await;
    let producer = init_producer_id(&mut client, None).await;
    assert_eq!((producer.error_code, producer.producer_epoch), (NONE, 0));
    assert!(producer.producer_id.0 >= 0);
    let other = init_producer_id(&mut client, None).await;
    assert_ne!(other.producer_id, producer.producer_id, "every idempotent producer gets its own id");

    let pid = producer.producer_id.0;
    let plain = BatchBuilder::new().record(1, None, value("before")).build().unwrap();
    assert_eq!(produce(&mut client, "payments", 0, plain).await.base_offset, 0);
    let batch = BatchBuilder::new().producer(pid, 0, 0).record(5, None, value("p0")).record(6, None, value("p1"));
    let batch = batch.build().unwrap();
    let original = produce(&mut client, "payments", 0, batch.clone()).await;
    assert_eq!((original.error_code, original.base_offset), (NONE, 1));
    let retry = produce(&mut client, "payments", 0, batch).await;
    assert_eq!((retry.error_code, retry.base_offset), (NONE, 1), "a duplicate is acknowledged, not appended");
    let next = BatchBuilder::new().producer(pid, 0, 2).record(7, None, value("p2")).build().unwrap();
    assert_eq!(produce(&mut client, "payments", 0, next).await.base_offset, 3);

    let fetched = fetch(&mut client, "payments", 0, 0, 0).await;
    let values: Vec<String> = data_records(fetched.records.as_ref()).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["before", "p0", "p1", "p2"]);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_finds_earliest_latest_and_by_timestamp() {
    let broker = InProcessBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "stamps", 1).await;
    let empty = list_offset(&mut client, "stamps", 0, LATEST).await;
    assert_eq!((empty.error_code, empty.offset), (NONE, 0));
    // Timestamps out of order inside a batch, as Kafka allows: offsets 0..=2, then 3..=4.
    let first = BatchBuilder::new().record(1_000, None, value("a")).record(3_000, None, value("b"));
    produce(&mut client, "stamps", 0, first.record(2_000, None, value("c")).build().unwrap()).await;
    let second = BatchBuilder::new().record(4_000, None, value("d")).record(5_000, None, value("e"));
    produce(&mut client, "stamps", 0, second.build().unwrap()).await;

    let earliest = list_offset(&mut client, "stamps", 0, EARLIEST).await;
    assert_eq!((earliest.error_code, earliest.offset), (NONE, 0));
    let latest = list_offset(&mut client, "stamps", 0, LATEST).await;
    assert_eq!((latest.error_code, latest.offset), (NONE, 5));
    // The first offset whose timestamp is at or after the one asked for.
    let at = list_offset(&mut client, "stamps", 0, 1_500).await;
    assert_eq!((at.error_code, at.offset, at.timestamp), (NONE, 1, 3_000));
    let exact = list_offset(&mut client, "stamps", 0, 4_000).await;
    assert_eq!((exact.offset, exact.timestamp), (3, 4_000));
    let max = list_offset(&mut client, "stamps", 0, MAX_TIMESTAMP).await;
    assert_eq!((max.offset, max.timestamp), (4, 5_000));
    let none = list_offset(&mut client, "stamps", 0, 9_999).await;
    assert_eq!((none.error_code, none.offset, none.timestamp), (NONE, -1, -1));
    let unknown = list_offset(&mut client, "stamps", 7, LATEST).await;
    assert_eq!(unknown.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_are_fetched_back_with_their_metadata() {
    let broker = InProcessBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "orders", 2).await;
    let partition = |index: i32, offset: i64, metadata: Option<&str>| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_metadata(metadata.map(|m| StrBytes::from_string(m.to_string())))
    };
    // A simple consumer: no generation, no member (Kafka stores these commits as-is).
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("billing")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("orders"))
                .with_partitions(vec![partition(0, 42, Some("checkpoint-7")), partition(1, 7, None)]),
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("missing"))
                .with_partitions(vec![partition(0, 1, None)]),
        ]);
    let mut errors = Vec::new();
    for _ in 0..100 {
        let response = client.send(&commit, 8).await;
        errors = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code)))
            .collect();
        if !errors.iter().any(|(.., code)| coordinator_not_ready(*code)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expected = [
        ("orders".to_string(), 0, NONE),
        ("orders".to_string(), 1, NONE),
        ("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
    ];
    assert_eq!(errors, expected);

    let fetch_offsets = |group: &'static str| {
        OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_static_str(group))).with_topics(Some(vec![
            OffsetFetchRequestTopic::default().with_name(topic_name("orders")).with_partition_indexes(vec![0, 1]),
        ]))
    };
    let response = client.send(&fetch_offsets("billing"), 7).await;
    assert_eq!(response.error_code, NONE);
    let got: Vec<(i32, i64, Option<String>, i16)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.metadata.as_ref().map(|m| m.to_string()), p.error_code))
        .collect();
    // Kafka stores a missing metadata string as empty.
    assert_eq!(got, [(0, 42, Some("checkpoint-7".to_string()), NONE), (1, 7, Some(String::new()), NONE)]);
    // Another group has committed nothing: -1 for each partition.
    let response = client.send(&fetch_offsets("other"), 7).await;
    let offsets: Vec<i64> =
        response.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.committed_offset)).collect();
    assert_eq!(offsets, [-1, -1]);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_becomes_visible_to_read_committed_fetches() {
    let broker = InProcessBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "ledger", 1).await;
    let plain = BatchBuilder::new().record(1, None, value("outside")).build().unwrap();
    assert_eq!(produce(&mut client, "ledger", 0, plain).await.base_offset, 0);

    let producer = init_producer_id(&mut client, Some("ledger-writer")).await;
    assert_eq!((producer.error_code, producer.producer_epoch), (NONE, 0));
    let (pid, epoch) = (producer.producer_id, producer.producer_epoch);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str("ledger-writer")))
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name("ledger"))
            .with_partitions(vec![0])]);
    let added = client.send(&add, 3).await;
    assert_eq!(added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, NONE);

    let batch = BatchBuilder::new().producer(pid.0, epoch, 0).transactional(true);
    let batch = batch.record(2, None, value("t0")).record(3, None, value("t1")).build().unwrap();
    let appended = produce_with(&mut client, Some("ledger-writer"), "ledger", 0, batch).await;
    assert_eq!((appended.error_code, appended.base_offset), (NONE, 1));

    // Open: read_uncommitted sees the records, read_committed stops at the stable offset.
    let uncommitted = fetch(&mut client, "ledger", 0, 0, 0).await;
    assert_eq!(data_records(uncommitted.records.as_ref()).len(), 3);
    let committed = fetch(&mut client, "ledger", 0, 0, 1).await;
    assert_eq!(committed.last_stable_offset, 1);
    assert_eq!(data_records(committed.records.as_ref()), [(0, "outside".to_string())]);

    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("ledger-writer")))
        .with_producer_id(pid)
        .with_producer_epoch(epoch)
        .with_committed(true);
    assert_eq!(client.send(&end, 3).await.error_code, NONE);

    // Two records and the commit marker: the stable offset passes all three.
    let committed = fetch(&mut client, "ledger", 0, 0, 1).await;
    assert_eq!((committed.error_code, committed.last_stable_offset, committed.high_watermark), (NONE, 4, 4));
    assert!(committed.aborted_transactions.as_ref().is_none_or(|a| a.is_empty()));
    let expected = [(0, "outside"), (1, "t0"), (2, "t1")].map(|(o, v)| (o, v.to_string()));
    assert_eq!(data_records(committed.records.as_ref()), expected);
    // Initializing again keeps the producer id and bumps the epoch, fencing the old
    // instance (KIP-98).
    let again = init_producer_id(&mut client, Some("ledger-writer")).await;
    assert_eq!((again.producer_id, again.producer_epoch), (ProducerId(pid.0), epoch + 1));
    broker.stop().await;
}
