//! Record batches whose counts announce more than their bytes hold: a record with billions
//! of headers, a batch claiming billions of records. Each passes the broker's own checks
//! (header, CRC, count against offset range), so it can be appended to a log and later
//! reach a decoder: ListOffsets by timestamp, the keyless-record check of a compacted
//! topic, the cleaner, a coordinator's replay. Every one of those must answer with an
//! error; reserving memory for the announced count would abort the process.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use rivulet_protocol::kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use rivulet_protocol::kafka_protocol::records::RecordBatchDecoder;
use rivulet_protocol::record_batch::{
    self, compute_crc, keyless_records, record_timestamps, rewrite, validate, BatchError, HEADER_BYTES, LOG_OVERHEAD,
};

const CODECS: [i16; 5] = [0, 1, 2, 3, 4];

fn put_varint(buf: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.put_u8((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    buf.put_u8(zigzag as u8);
}

/// One v2 record with key "k" and value "v" that announces `header_count` headers and
/// carries none.
fn record(header_count: i32) -> BytesMut {
    record_with_headers(header_count, &[])
}

/// One v2 record with key "k" and value "v", `header_count`, then `headers` as its
/// header bytes.
fn record_with_headers(header_count: i32, headers: &[u8]) -> BytesMut {
    let mut body = BytesMut::new();
    body.put_i8(0); // attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, 1);
    body.put_u8(b'k');
    put_varint(&mut body, 1);
    body.put_u8(b'v');
    put_varint(&mut body, i64::from(header_count));
    body.put_slice(headers);
    let mut out = BytesMut::new();
    put_varint(&mut out, body.len() as i64);
    out.put_slice(&body);
    out
}

fn compress(codec: i16, raw: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    let fill = |tmp: &mut BytesMut| {
        tmp.put_slice(raw);
        Ok(())
    };
    match codec {
        0 => out.put_slice(raw),
        1 => Gzip::compress(&mut out, fill).unwrap(),
        2 => Snappy::compress(&mut out, fill).unwrap(),
        3 => Lz4::compress(&mut out, fill).unwrap(),
        4 => Zstd::compress(&mut out, fill).unwrap(),
        other => panic!("no codec {other}"),
    }
    out
}

/// A v2 batch with a valid CRC around `records` (compressed with `codec`), announcing
/// `records_count` records over `last_offset_delta + 1` offsets.
fn batch(codec: i16, records_count: i32, last_offset_delta: i32, records: &[u8]) -> Bytes {
    let records = compress(codec, records);
    let mut out = BytesMut::with_capacity(HEADER_BYTES + records.len());
    out.put_i64(100); // base offset
    out.put_i32((HEADER_BYTES - LOG_OVERHEAD + records.len()) as i32);
    out.put_i32(0); // partition leader epoch
    out.put_i8(2); // magic
    out.put_u32(0); // crc, set below
    out.put_i16(codec); // attributes
    out.put_i32(last_offset_delta);
    out.put_i64(1_000); // base timestamp
    out.put_i64(1_000); // max timestamp
    out.put_i64(-1); // producer id
    out.put_i16(-1); // producer epoch
    out.put_i32(-1); // base sequence
    out.put_i32(records_count);
    out.put_slice(&records);
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// Every decoder a stored batch can reach: all must return, none may abort. Each gives
/// how many records it saw (the keyless check: how many keyless records).
fn decode_everywhere(batch: &Bytes) -> [Result<usize, String>; 4] {
    let mut buf = batch.clone();
    [
        record_timestamps(batch).map(|r| r.len()).map_err(|e| e.to_string()),
        keyless_records(batch).map(|r| r.len()).map_err(|e| e.to_string()),
        rewrite::decode_records(batch).map(|r| r.len()).map_err(|e| e.to_string()),
        RecordBatchDecoder::decode_all(&mut buf).map(|sets| sets[0].records.len()).map_err(|e| e.to_string()),
    ]
}

#[test]
fn the_hand_built_batches_decode_when_their_counts_are_true() {
    for codec in CODECS {
        let mut two = record(0);
        two.extend_from_slice(&record(0));
        let batch = batch(codec, 2, 1, &two);
        validate(&batch).unwrap();
        assert_eq!(decode_everywhere(&batch), [Ok(2), Ok(0), Ok(2), Ok(2)], "codec {codec}");
        assert_eq!(record_timestamps(&batch).unwrap(), [(100, 1_000), (100, 1_000)]);
    }
}

#[test]
fn a_record_announcing_billions_of_headers_is_an_error() {
    for codec in CODECS {
        for header_count in [i32::MAX, 1 << 24, 3] {
            let batch = batch(codec, 1, 0, &record(header_count));
            // The broker's own checks pass: such a batch can be appended to a log.
            validate(&batch).unwrap();
            for (i, decoded) in decode_everywhere(&batch).into_iter().enumerate() {
                assert!(decoded.is_err(), "codec {codec}, {header_count} headers, decoder {i}: {decoded:?}");
            }
            assert!(matches!(keyless_records(&batch), Err(BatchError::Corrupt(_))));
        }
    }
}

#[test]
fn a_batch_claiming_billions_of_records_is_an_error() {
    for codec in CODECS {
        for (count, records) in [(i32::MAX, record(0)), (i32::MAX, BytesMut::new()), (1 << 24, record(0))] {
            // The count agrees with the offset range, as `validate` demands of a produce.
            let batch = batch(codec, count, count - 1, &records);
            validate(&batch).unwrap();
            for (i, decoded) in decode_everywhere(&batch).into_iter().enumerate() {
                assert!(decoded.is_err(), "codec {codec}, {count} records, decoder {i}: {decoded:?}");
            }
        }
    }
}

#[test]
fn a_stored_batch_that_lost_records_to_compaction_is_a_short_count_not_an_error() {
    // Compaction leaves fewer records than the offset range: only the count matters.
    let batch = batch(0, 1, 9, &record(0));
    record_batch::validate_stored(&batch).unwrap();
    assert_eq!(rewrite::decode_records(&batch).unwrap().len(), 1);
}

proptest! {
    /// Arbitrary record bytes under a well-formed header with a valid CRC (so every check
    /// before the record decoder passes), with any record count: the decoders return.
    #[test]
    fn arbitrary_records_under_a_valid_header_never_abort(
        codec in prop::sample::select(CODECS.to_vec()),
        records_count in prop_oneof![0..8i32, Just(i32::MAX), any::<i32>()],
        records in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let batch = batch(codec, records_count, records_count.saturating_sub(1).max(0), &records);
        let _ = decode_everywhere(&batch);
    }

    /// A record whose header count is followed by arbitrary header bytes.
    #[test]
    fn arbitrary_header_bytes_never_abort(
        codec in prop::sample::select(CODECS.to_vec()),
        header_count in prop_oneof![0..4i32, Just(i32::MAX), any::<i32>()],
        headers in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let batch = batch(codec, 1, 0, &record_with_headers(header_count, &headers));
        let _ = decode_everywhere(&batch);
    }
}
