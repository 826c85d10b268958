//! Properties of the request decoder, the first code to touch a client's bytes: whatever
//! arrives, it answers with a request or an error and never panics; what a real client
//! encodes (here the `kafka-protocol` crate, at every version Rivulet serves) decodes back
//! to the same header and body; and a frame cut short is an error.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, GroupId, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    ProduceRequest, RequestHeader, RequestKind, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;
use rivulet_protocol::frame::{check_frame_size, SIZE_PREFIX_BYTES};
use rivulet_protocol::record_batch::{self, BatchBuilder};
use rivulet_protocol::request::{decode_request, peek_header, Request};
use rivulet_protocol::versions;

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,24}"
}

fn str_bytes(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

/// Topic ids replace names from Produce v13 and Fetch v13 on (KIP-516).
fn uses_topic_ids(key: ApiKey, version: i16) -> bool {
    matches!(key, ApiKey::Produce | ApiKey::Fetch) && version >= 13
}

prop_compose! {
    fn metadata(version: i16)(topics in prop::collection::vec(name(), 0..4), auto_create in any::<bool>())
        -> RequestKind {
            let topics = topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(str_bytes(t.clone())))))
                .collect();
            // allow_auto_topic_creation exists from v4; before it is always true.
            let auto_create = auto_create || version < 4;
            RequestKind::Metadata(
                MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(auto_create),
            )
    }
}

prop_compose! {
    fn produce(version: i16)(
        topics in prop::collection::vec((name(), any::<u128>(), prop::collection::vec(0..64i32, 1..3)), 1..3),
        transactional_id in prop::option::of(name()),
        acks in prop::sample::select(vec![-1i16, 0, 1]),
        timeout_ms in 0..60_000i32,
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 1..4),
    ) -> RequestKind {
        let builder = values.iter().fold(BatchBuilder::new().producer(1, 0, 0), |b, v| {
            b.record(1_700_000_000_000, None, Some(Bytes::from(v.clone())))
        });
        let records = builder.build().expect("a batch");
            let topic_data = topics
                .iter()
                .map(|(topic, id, partitions)| {
                    let data = TopicProduceData::default().with_partition_data(
                        partitions
                            .iter()
                            .map(|&p| PartitionProduceData::default().with_index(p).with_records(Some(records.clone())))
                            .collect(),
                    );
                    if uses_topic_ids(ApiKey::Produce, version) {
                        data.with_topic_id(uuid::Uuid::from_u128(*id))
                    } else {
                        data.with_name(TopicName(str_bytes(topic.clone())))
                    }
                })
                .collect();
            RequestKind::Produce(
                ProduceRequest::default()
                    .with_transactional_id(transactional_id.clone().map(|t| TransactionalId(str_bytes(t))))
                    .with_acks(acks)
                    .with_timeout_ms(timeout_ms)
                    .with_topic_data(topic_data),
            )
    }
}

prop_compose! {
    fn fetch(version: i16)(
        topics in prop::collection::vec((name(), any::<u128>(), prop::collection::vec((0..64i32, 0..i64::MAX), 1..3)), 0..3),
        max_wait_ms in 0..10_000i32,
        min_bytes in 0..1_000_000i32,
        read_committed in any::<bool>(),
    ) -> RequestKind {
            let topics = topics
                .iter()
                .map(|(topic, id, partitions)| {
                    let fetch = FetchTopic::default().with_partitions(
                        partitions
                            .iter()
                            .map(|&(p, offset)| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(offset)
                                    .with_partition_max_bytes(1 << 20)
                            })
                            .collect(),
                    );
                    if uses_topic_ids(ApiKey::Fetch, version) {
                        fetch.with_topic_id(uuid::Uuid::from_u128(*id))
                    } else {
                        fetch.with_topic(TopicName(str_bytes(topic.clone())))
                    }
                })
                .collect();
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(max_wait_ms)
                    .with_min_bytes(min_bytes)
                    .with_isolation_level(i8::from(read_committed))
                    .with_topics(topics),
            )
    }
}

prop_compose! {
    fn list_offsets()(
        topics in prop::collection::vec((name(), prop::collection::vec((0..64i32, -2..i64::MAX), 1..3)), 0..3),
    ) -> RequestKind {
            let topics = topics
                .iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default().with_name(TopicName(str_bytes(topic.clone()))).with_partitions(
                        partitions
                            .iter()
                            .map(|&(p, ts)| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(ts))
                            .collect(),
                    )
                })
                .collect();
            RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(topics))
    }
}

prop_compose! {
    fn offset_commit()(
        group in name(),
        member in name(),
        generation in -1..100i32,
        topics in prop::collection::vec(
            (name(), prop::collection::vec((0..64i32, 0..i64::MAX, prop::option::of(".{0,16}")), 1..3)),
            0..3,
        ),
    ) -> RequestKind {
            let topics = topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetCommitRequestTopic::default().with_name(TopicName(str_bytes(topic.clone()))).with_partitions(
                        partitions
                            .iter()
                            .map(|(p, offset, metadata)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*offset)
                                    .with_committed_metadata(metadata.clone().map(str_bytes))
                            })
                            .collect(),
                    )
                })
                .collect();
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(str_bytes(group.clone())))
                    .with_member_id(str_bytes(member.clone()))
                    .with_generation_id_or_member_epoch(generation)
                    .with_topics(topics),
            )
    }
}

prop_compose! {
    fn init_producer_id()(transactional_id in prop::option::of(name()), timeout_ms in 1..900_000i32)
        -> RequestKind {
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(transactional_id.clone().map(|t| TransactionalId(str_bytes(t))))
                    .with_transaction_timeout_ms(timeout_ms),
            )
    }
}

/// A body for `key` at `version`, with every field it sets present at that version.
fn body(key: ApiKey, version: i16) -> BoxedStrategy<RequestKind> {
    match key {
        ApiKey::Metadata => metadata(version).boxed(),
        ApiKey::Produce => produce(version).boxed(),
        ApiKey::Fetch => fetch(version).boxed(),
        ApiKey::ListOffsets => list_offsets().boxed(),
        ApiKey::OffsetCommit => offset_commit().boxed(),
        _ => init_producer_id().boxed(),
    }
}

/// A request of one of several APIs at a version Rivulet serves: its header, its body and
/// the frame a client sends (without the size prefix).
fn encoded_request() -> impl Strategy<Value = (RequestHeader, RequestKind, Bytes)> {
    let apis = vec![
        ApiKey::Metadata,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::OffsetCommit,
        ApiKey::InitProducerId,
    ];
    (prop::sample::select(apis), any::<prop::sample::Index>())
        .prop_flat_map(|(key, version_index)| {
            let api = versions::supported(key).expect("the API is served");
            let version = api.min + version_index.index((api.max - api.min + 1) as usize) as i16;
            (Just(key), Just(version), body(key, version), any::<i32>(), prop::option::of(name()))
        })
        .prop_map(|(key, version, body, correlation_id, client_id)| {
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(correlation_id)
                .with_client_id(client_id.map(str_bytes));
            let mut buf = BytesMut::new();
            header.encode(&mut buf, key.request_header_version(version)).expect("the header encodes");
            encode_body(&body, &mut buf, version);
            (header, body, buf.freeze())
        })
}

fn encode_body(body: &RequestKind, buf: &mut BytesMut, version: i16) {
    // Every field the strategies set exists at the chosen version, or encoding fails here.
    let encoded = match body {
        RequestKind::Metadata(r) => r.encode(buf, version),
        RequestKind::Produce(r) => r.encode(buf, version),
        RequestKind::Fetch(r) => r.encode(buf, version),
        RequestKind::ListOffsets(r) => r.encode(buf, version),
        RequestKind::OffsetCommit(r) => r.encode(buf, version),
        RequestKind::InitProducerId(r) => r.encode(buf, version),
        other => panic!("no encoder listed for {other:?}"),
    };
    if let Err(e) = encoded {
        panic!("{body:?} does not encode at v{version}: {e}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let frame = Bytes::from(bytes);
        let _ = peek_header(&frame);
        let _ = decode_request(frame.clone());
        if frame.len() >= SIZE_PREFIX_BYTES {
            let _ = check_frame_size([frame[0], frame[1], frame[2], frame[3]], 1 << 20);
        }
        let _ = record_batch::split_batches(&frame);
        let _ = record_batch::validate(&frame);
        let _ = record_batch::control_type(&frame);
    }

    /// A served API and version with arbitrary body bytes: the header checks pass and the
    /// body decoders run, on counts and lengths that announce far more than the body holds.
    #[test]
    fn any_served_request_with_a_garbage_body_never_panics(
        api in prop::sample::select(versions::SUPPORTED_APIS.to_vec()),
        version_index in any::<prop::sample::Index>(),
        correlation_id in any::<i32>(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let version = api.min + version_index.index((api.max - api.min + 1) as usize) as i16;
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&(api.key as i16).to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&correlation_id.to_be_bytes());
        frame.extend_from_slice(&body);
        if let Ok(Request::Known { header, .. }) = decode_request(frame.freeze()) {
            prop_assert_eq!(header.correlation_id, correlation_id);
        }
    }

    #[test]
    fn encoded_requests_decode_to_the_same_header_and_body((header, body, frame) in encoded_request()) {
        let decoded = decode_request(frame);
        let Ok(Request::Known { header: got_header, api_key, body: got_body }) = decoded else {
            return Err(TestCaseError::fail(format!("not decoded: {decoded:?}")));
        };
        prop_assert_eq!(api_key as i16, header.request_api_key);
        prop_assert_eq!(got_header, header);
        prop_assert_eq!(*got_body, body);
    }

    #[test]
    fn every_truncation_of_a_valid_frame_is_an_error((_header, _body, frame) in encoded_request()) {
        for end in 0..frame.len() {
            let cut = frame.slice(..end);
            prop_assert!(decode_request(cut).is_err(), "{} of {} bytes decoded", end, frame.len());
        }
    }
}

/// A frame with the fixed header fields, an absent client id and, for a flexible
/// header (v2), no tagged fields; then `body`.
fn hostile_frame(key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&(key as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    if key.request_header_version(version) >= 2 {
        frame.extend_from_slice(&[0]);
    }
    frame.extend_from_slice(body);
    frame.freeze()
}

/// 2^31 - 1 as an INT32 array length.
const HUGE_COUNT: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
/// 2^32 - 1 as an unsigned varint: a compact array of 2^32 - 2 elements.
const HUGE_COMPACT_COUNT: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

/// A Metadata v0 request that announces 2^31 - 1 topics in a 14-byte frame. Kafka answers
/// it with an error (its readers refuse a count beyond the bytes left); reserving memory
/// for every announced element before reading one would abort the process, as an
/// allocation failure is not a panic.
#[test]
fn hostile_array_count_is_an_error() {
    let frame = hostile_frame(ApiKey::Metadata, 0, &HUGE_COUNT);
    assert_eq!(frame.len(), 14);
    assert!(decode_request(frame).is_err());
}

/// From Metadata v1 the topic array is nullable (-1 asks for every topic): the nullable
/// decoding path.
#[test]
fn hostile_nullable_array_count_is_an_error() {
    assert!(decode_request(hostile_frame(ApiKey::Metadata, 1, &HUGE_COUNT)).is_err());
    // The null array itself still decodes.
    let all_topics = decode_request(hostile_frame(ApiKey::Metadata, 1, &(-1i32).to_be_bytes()));
    let Ok(Request::Known { body, .. }) = all_topics else { panic!("{all_topics:?}") };
    let RequestKind::Metadata(metadata) = *body else { panic!("{body:?}") };
    assert_eq!(metadata.topics, None);
}

/// Flexible versions encode array lengths as unsigned varints (compact arrays): a nullable
/// one (Metadata v12's topics) and a non-nullable one (Produce v9's topic data).
#[test]
fn hostile_compact_array_count_is_an_error() {
    assert!(decode_request(hostile_frame(ApiKey::Metadata, 12, &HUGE_COMPACT_COUNT)).is_err());

    let mut produce = vec![0]; // a null transactional id
    produce.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    produce.extend_from_slice(&30_000i32.to_be_bytes()); // timeout
    produce.extend_from_slice(&HUGE_COMPACT_COUNT); // topic data
    assert!(decode_request(hostile_frame(ApiKey::Produce, 9, &produce)).is_err());
}

/// An array inside an array: Fetch v4 with one topic whose partition array announces
/// 2^31 - 1 partitions.
#[test]
fn hostile_nested_array_count_is_an_error() {
    let mut fetch = Vec::new();
    fetch.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    fetch.extend_from_slice(&500i32.to_be_bytes()); // max wait
    fetch.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    fetch.extend_from_slice(&(1i32 << 20).to_be_bytes()); // max bytes
    fetch.push(0); // isolation level
    fetch.extend_from_slice(&1i32.to_be_bytes()); // one topic
    fetch.extend_from_slice(&1i16.to_be_bytes());
    fetch.push(b't');
    fetch.extend_from_slice(&HUGE_COUNT); // its partitions
    assert!(decode_request(hostile_frame(ApiKey::Fetch, 4, &fetch)).is_err());
}

/// Every served API at every served version, with a body that is nothing but huge counts
/// in both encodings: whichever field each decoder meets first, it must return.
#[test]
fn every_served_request_survives_a_body_of_huge_counts() {
    for api in versions::SUPPORTED_APIS {
        for version in api.min..=api.max {
            for pattern in [&HUGE_COUNT[..], &HUGE_COMPACT_COUNT[..]] {
                for repeats in 1..=8 {
                    let _ = decode_request(hostile_frame(api.key, version, &pattern.repeat(repeats)));
                }
            }
        }
    }
}
