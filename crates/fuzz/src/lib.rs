//! # rivulet-fuzz
//!
//! The fuzz targets: each function takes arbitrary bytes and drives one decoder the broker
//! runs on input it does not control, the way the broker drives it. A target must return
//! for every input; a panic, an abort or a hang is a bug in the decoder (or in the target's
//! own assertions, which check what the broker relies on, such as "a batch the cleaner
//! rewrote still validates").
//!
//! Two drivers call these functions:
//! * `fuzz/` (outside the workspace) builds one AFL++ binary per target with `cargo afl`;
//!   `make fuzz` runs them.
//! * `tests/replay.rs` runs every file of `fuzz/corpus/<target>/` and
//!   `fuzz/regressions/<target>/` through its target on every `cargo test`, so a crash once
//!   found stays fixed without AFL++ installed.

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::messages::{
    ApiKey, FetchRequest, OffsetForLeaderEpochRequest, WriteTxnMarkersRequest,
};
use rivulet_protocol::record_batch::{self, rewrite};
use rivulet_protocol::request::{decode_request, Request};
use rivulet_protocol::{client, coordinator_records, frame, response, RequestKind};

/// A fuzz target: takes any bytes, returns for every input.
pub type Target = fn(&[u8]);

/// The targets by name: the directory names under `fuzz/corpus/` and `fuzz/regressions/`,
/// and the binary names of the AFL++ harness.
pub const TARGETS: &[(&str, Target)] = &[
    ("request", request_stream),
    ("record_batch", record_batches),
    ("coordinator_record", coordinator_record),
    ("peer_response", peer_response),
];

/// The request limit the fuzzed stream is framed with: Kafka's default
/// `socket.request.max.bytes` would let one input describe a 100 MiB frame, which only
/// slows the fuzzer down without reaching new code.
const FUZZ_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// A connection's inbound bytes, as the connection task reads them: size prefix checked
/// first, then each frame decoded; the first refused frame ends the connection. Record
/// batches inside a decoded Produce request go through [`record_batches`], as the produce
/// path would take them.
pub fn request_stream(data: &[u8]) {
    let mut rest = data;
    while rest.len() >= frame::SIZE_PREFIX_BYTES {
        let prefix = [rest[0], rest[1], rest[2], rest[3]];
        let Ok(size) = frame::check_frame_size(prefix, FUZZ_MAX_REQUEST_BYTES) else { return };
        rest = &rest[frame::SIZE_PREFIX_BYTES..];
        if rest.len() < size {
            return; // the connection would wait for the rest
        }
        let (body, tail) = rest.split_at(size);
        rest = tail;
        match decode_request(Bytes::copy_from_slice(body)) {
            Ok(Request::Known { body, .. }) => {
                if let RequestKind::Produce(produce) = *body {
                    for topic in produce.topic_data {
                        for partition in topic.partition_data {
                            if let Some(records) = partition.records {
                                record_batches(&records);
                            }
                        }
                    }
                }
            }
            Ok(Request::ApiVersionsFallback { correlation_id, .. }) => {
                response::encode_api_versions_fallback(correlation_id).expect("the fallback always encodes");
            }
            Err(_) => return,
        }
    }
}

/// A Produce request's `records` field (or a follower's fetched data): split into batches,
/// each validated and, when valid, taken through everything the log, the produce path and
/// the cleaner do with a batch. Asserts what the broker relies on: patching a valid batch
/// keeps it valid, and a batch rewritten by the cleaner validates and holds exactly the
/// records kept.
pub fn record_batches(data: &[u8]) {
    let records = Bytes::copy_from_slice(data);
    let Ok(batches) = record_batch::split_batches(&records) else { return };
    for batch in batches {
        let _ = record_batch::control_type(&batch);
        let _ = record_batch::end_txn_marker(&batch);
        let _ = record_batch::keyless_records(&batch);
        let _ = record_batch::record_timestamps(&batch);
        let Ok(header) = record_batch::validate_stored(&batch) else { continue };
        let strict = record_batch::validate(&batch).is_ok();

        let mut patched = batch.to_vec();
        record_batch::assign_offset(&mut patched, 1 << 40, 7);
        record_batch::set_log_append_time(&mut patched, 1_700_000_000_000);
        let after = record_batch::validate_stored(&patched).expect("a patched valid batch stays valid");
        assert_eq!(after.base_offset, 1 << 40);
        assert_eq!(after.records_count, header.records_count);
        assert_eq!(strict, record_batch::validate(&patched).is_ok());

        let Ok(decoded) = rewrite::decode_records(&batch) else { continue };
        // The cleaner keeps a subset: every other record here.
        let kept: Vec<_> = decoded.iter().step_by(2).cloned().collect();
        let Ok(rewritten) = rewrite::rebuild(&batch, &kept, Some(1_700_000_000_000)) else { continue };
        let rewritten_header = record_batch::validate_stored(&rewritten).expect("a rewritten batch validates");
        assert_eq!(rewritten_header.base_offset, header.base_offset);
        let again = rewrite::decode_records(&rewritten).expect("a rewritten batch decodes");
        assert_eq!(again.len(), kept.len());
        for (a, b) in again.iter().zip(&kept) {
            assert_eq!((a.offset, &a.key, &a.value), (b.offset, &b.key, &b.value));
        }
    }
}

/// A record of `__consumer_offsets` or `__transaction_state` as the coordinators replay it
/// from the log (which a client may have written: the topics accept produce from a
/// principal allowed to). The first byte picks the decoder, the rest is the record.
pub fn coordinator_record(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            let _ = coordinator_records::GroupKey::decode(bytes);
        }
        1 => {
            let _ = coordinator_records::OffsetCommitValue::decode(bytes);
        }
        2 => {
            let _ = coordinator_records::GroupMetadataValue::decode(bytes);
        }
        3 => {
            let _ = coordinator_records::TransactionLogKey::decode(bytes);
        }
        _ => {
            let _ = coordinator_records::TransactionLogValue::decode(bytes);
        }
    }
}

/// A response from another broker to one of the calls brokers make to each other
/// (replica fetch, leader-epoch lookup, transaction markers). The first byte picks the API
/// and the version; the rest is the frame without its size prefix. Fetched record data
/// goes on to [`record_batches`], as a follower appends it.
pub fn peer_response(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else { return };
    let frame = Bytes::copy_from_slice(bytes);
    let version = |key: ApiKey| {
        let range = key.valid_versions();
        let span = u8::try_from(range.max - range.min + 1).unwrap_or(u8::MAX);
        range.min + i16::from((which / 3) % span)
    };
    match which % 3 {
        0 => {
            if let Ok((_, response)) = client::decode_response::<FetchRequest>(frame, version(ApiKey::Fetch)) {
                for topic in response.responses {
                    for partition in topic.partitions {
                        if let Some(records) = partition.records {
                            record_batches(&records);
                        }
                    }
                }
            }
        }
        1 => {
            let v = version(ApiKey::OffsetForLeaderEpoch);
            let _ = client::decode_response::<OffsetForLeaderEpochRequest>(frame, v);
        }
        _ => {
            let v = version(ApiKey::WriteTxnMarkers);
            let _ = client::decode_response::<WriteTxnMarkersRequest>(frame, v);
        }
    }
}
