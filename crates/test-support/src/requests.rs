//! The requests tests send most, built as a Kafka client would send them, so that tests
//! against a broker process and against an in-process broker say the same thing once.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

/// What a consumer (not a follower) puts in `replica_id`.
const CONSUMER: BrokerId = BrokerId(-1);

/// Enough for every partition a test fetches.
const FETCH_MAX_BYTES: i32 = 64 * 1024 * 1024;

/// How long the broker may take to acknowledge a write or create a topic.
const TIMEOUT_MS: i32 = 10_000;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn txn_id(id: Option<&str>) -> Option<TransactionalId> {
    id.map(|id| TransactionalId(StrBytes::from_string(id.to_string())))
}

/// One topic with `partitions` partitions, replication factor 1 and `configs`.
pub fn create_topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreateTopicsRequest {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs);
    CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(TIMEOUT_MS)
}

/// `records` for one partition, acknowledged by all in-sync replicas (`acks=all`), in
/// `transactional_id`'s transaction if given. Versions up to 12 name the topic.
pub fn produce(transactional_id: Option<&str>, topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    let data = PartitionProduceData::default().with_index(partition).with_records(Some(records));
    ProduceRequest::default()
        .with_transactional_id(txn_id(transactional_id))
        .with_acks(-1)
        .with_timeout_ms(TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![data])])
}

/// A consumer's fetch of one partition from `offset` at `isolation_level` (0
/// read_uncommitted, 1 read_committed), answered as soon as anything is there. Versions
/// up to 12 name the topic.
pub fn fetch(topic: &str, partition: i32, offset: i64, isolation_level: i8) -> FetchRequest {
    let wanted = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(FETCH_MAX_BYTES);
    FetchRequest::default()
        .with_replica_id(CONSUMER)
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(isolation_level)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![wanted])])
}

/// A consumer's ListOffsets for one partition: `timestamp` is a time in ms or one of
/// Kafka's specials (-1 latest, -2 earliest, -3 max timestamp).
pub fn list_offsets(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    let wanted = ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp);
    ListOffsetsRequest::default()
        .with_replica_id(CONSUMER)
        .with_topics(vec![ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![wanted])])
}

/// An idempotent producer's (`None`) or a transactional producer's first request.
pub fn init_producer_id(transactional_id: Option<&str>) -> InitProducerIdRequest {
    InitProducerIdRequest::default().with_transactional_id(txn_id(transactional_id)).with_transaction_timeout_ms(60_000)
}

/// Every record of the batches in a fetched `records` field, control records included.
/// A coordinator's COMMIT (or ABORT) marker for `producer_id` on one partition.
pub fn write_txn_marker(
    topic: &str,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![partition])])])
}

pub fn decode_records(records: Option<&Bytes>) -> Vec<Record> {
    let Some(records) = records else { return Vec::new() };
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("the broker serves well-formed batches");
    sets.into_iter().flat_map(|set| set.records).collect()
}
