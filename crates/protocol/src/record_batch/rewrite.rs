//! Rewriting a stored batch with some of its records removed, as log compaction does
//! (Kafka's `MemoryRecords.filterTo`).
//!
//! Offsets never change: the rewritten batch keeps the original's base offset and last
//! offset delta (so the log end and a producer's last sequence read the same), its producer
//! fields, leader epoch, attributes and compression; each kept record keeps its offset
//! delta. Only the records section, the record count, the timestamps and the CRC are new.
//! A batch whose tombstones were seen by the cleaner carries a *delete horizon* (KIP-534):
//! attribute bit 6 set and the base timestamp holding the time after which its tombstones
//! may be removed.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use super::{compute_crc, BatchError, BatchHeader, HEADER_BYTES, OFFSET_CRC};

/// Attribute bit of a batch with a delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// The records of a stored batch with their absolute offsets, decompressed.
pub fn decode_records(batch: &Bytes) -> Result<Vec<Record>, BatchError> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| BatchError::Corrupt(e.to_string()))?;
    Ok(set.records)
}

/// The delete horizon of a batch, if the cleaner has set one.
pub fn delete_horizon(header: &BatchHeader) -> Option<i64> {
    (header.attributes & ATTR_DELETE_HORIZON != 0).then_some(header.base_timestamp)
}

fn put_varint(buf: &mut BytesMut, value: i32) {
    put_varlong(buf, i64::from(value));
}

fn put_varlong(buf: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.put_u8((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    buf.put_u8(zigzag as u8);
}

fn put_bytes(buf: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// One record in the v2 record format, with deltas from `base_offset` / `base_timestamp`.
fn encode_record(out: &mut BytesMut, record: &Record, base_offset: i64, base_timestamp: i64) {
    let mut body = BytesMut::new();
    body.put_i8(0);
    put_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
    put_varint(&mut body, (record.offset - base_offset) as i32);
    put_bytes(&mut body, record.key.as_deref());
    put_bytes(&mut body, record.value.as_deref());
    put_varint(&mut body, record.headers.len() as i32);
    for (name, value) in &record.headers {
        put_bytes(&mut body, Some(name.as_bytes()));
        put_bytes(&mut body, value.as_deref());
    }
    put_varint(out, body.len() as i32);
    out.put_slice(&body);
}

fn compress(codec: i16, raw: &[u8]) -> Result<BytesMut, BatchError> {
    let mut out = BytesMut::new();
    let fill = |tmp: &mut BytesMut| {
        tmp.put_slice(raw);
        Ok(())
    };
    let result = match codec {
        0 => {
            out.put_slice(raw);
            Ok(())
        }
        1 => Gzip::compress(&mut out, fill),
        2 => Snappy::compress(&mut out, fill),
        3 => Lz4::compress(&mut out, fill),
        4 => Zstd::compress(&mut out, fill),
        other => return Err(BatchError::Invalid(format!("unknown compression codec {other}"))),
    };
    result.map_err(|e| BatchError::Invalid(format!("compressing a rewritten batch: {e}")))?;
    Ok(out)
}

/// `original` with only `kept` (a subset of its records, in offset order) left, and with
/// `delete_horizon_ms` set when given. An empty `kept` gives a batch without records, which
/// Kafka keeps for a producer's last batch.
pub fn rebuild(original: &[u8], kept: &[Record], delete_horizon_ms: Option<i64>) -> Result<Bytes, BatchError> {
    let header = BatchHeader::parse(original)?;
    let log_append_time = header.is_log_append_time();
    let record_timestamps = || kept.iter().map(|r| r.timestamp);
    let first_timestamp = record_timestamps().min().unwrap_or(header.base_timestamp);
    let max_timestamp =
        if log_append_time { header.max_timestamp } else { record_timestamps().max().unwrap_or(header.max_timestamp) };
    let (attributes, base_timestamp) = match delete_horizon_ms {
        Some(horizon) => (header.attributes | ATTR_DELETE_HORIZON, horizon),
        None if header.attributes & ATTR_DELETE_HORIZON != 0 => (header.attributes, header.base_timestamp),
        None => (header.attributes, first_timestamp),
    };
    let mut raw = BytesMut::new();
    for record in kept {
        encode_record(&mut raw, record, header.base_offset, base_timestamp);
    }
    let records = compress(header.compression(), &raw)?;

    let mut out = BytesMut::with_capacity(HEADER_BYTES + records.len());
    out.put_i64(header.base_offset);
    out.put_i32((HEADER_BYTES - super::LOG_OVERHEAD + records.len()) as i32);
    out.put_i32(header.partition_leader_epoch);
    out.put_i8(header.magic);
    out.put_u32(0);
    out.put_i16(attributes);
    out.put_i32(header.last_offset_delta);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(header.producer_id);
    out.put_i16(header.producer_epoch);
    out.put_i32(header.base_sequence);
    out.put_i32(kept.len() as i32);
    out.put_slice(&records);
    let crc = compute_crc(&out);
    out[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::{validate_stored, BatchBuilder, Compression};

    fn batch(compression: Compression) -> Bytes {
        let builder = (0..5).fold(BatchBuilder::new().producer(9, 2, 100).compression(compression), |b, i| {
            let value = (i != 3).then(|| Bytes::from(format!("value-{i}")));
            b.record(1_000 + i, Some(Bytes::from(format!("key-{i}"))), value)
        });
        let mut bytes = BytesMut::from(&builder.build().expect("batch")[..]);
        crate::record_batch::assign_offset(&mut bytes, 40, 7);
        bytes.freeze()
    }

    #[test]
    fn offsets_producer_fields_and_compression_survive_a_rewrite() {
        for compression in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        {
            let original = batch(compression);
            let records = decode_records(&original).unwrap();
            // Drop the first and the last record: base offset and last offset delta stay.
            let kept: Vec<Record> = records.iter().filter(|r| r.offset != 40 && r.offset != 44).cloned().collect();
            let rewritten = rebuild(&original, &kept, None).unwrap();
            let header = validate_stored(&rewritten).unwrap();
            let before = BatchHeader::parse(&original).unwrap();
            assert_eq!((header.base_offset, header.last_offset_delta), (40, 4));
            assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (9, 2, 100));
            assert_eq!(header.partition_leader_epoch, 7);
            assert_eq!(header.compression(), before.compression());
            assert_eq!(header.records_count, 3);
            assert_eq!((header.base_timestamp, header.max_timestamp), (1_001, 1_003));
            let again = decode_records(&rewritten).unwrap();
            assert_eq!(again.iter().map(|r| r.offset).collect::<Vec<_>>(), [41, 42, 43]);
            assert_eq!(again.iter().map(|r| r.timestamp).collect::<Vec<_>>(), [1_001, 1_002, 1_003]);
            assert_eq!(again[2].value, None, "the tombstone stays a tombstone");
            assert_eq!(again[0].key.as_deref(), Some(&b"key-1"[..]));
        }
    }

    #[test]
    fn a_delete_horizon_is_kept_in_the_base_timestamp() {
        let original = batch(Compression::None);
        let records = decode_records(&original).unwrap();
        let rewritten = rebuild(&original, &records, Some(99_000)).unwrap();
        let header = validate_stored(&rewritten).unwrap();
        assert_eq!(delete_horizon(&header), Some(99_000));
        // Record timestamps are still right, relative to the horizon.
        let again = decode_records(&rewritten).unwrap();
        assert_eq!(again.iter().map(|r| r.timestamp).collect::<Vec<_>>(), [1_000, 1_001, 1_002, 1_003, 1_004]);
        // A later rewrite without a new horizon keeps it.
        let later = rebuild(&rewritten, &again[1..], None).unwrap();
        assert_eq!(delete_horizon(&BatchHeader::parse(&later).unwrap()), Some(99_000));
        // And an empty rewrite is a valid batch without records.
        let empty = rebuild(&original, &[], None).unwrap();
        assert_eq!(validate_stored(&empty).unwrap().records_count, 0);
        assert!(decode_records(&empty).unwrap().is_empty());
    }
}
