//! The v2 record batch ("magic 2") as it travels on the wire and sits in the log.
//!
//! Layout of the 61-byte header (all big-endian):
//!
//! | offset | field                  | offset | field            |
//! |--------|------------------------|--------|------------------|
//! | 0      | base_offset: i64       | 27     | base_timestamp   |
//! | 8      | batch_length: i32      | 35     | max_timestamp    |
//! | 12     | partition_leader_epoch | 43     | producer_id: i64 |
//! | 16     | magic: i8              | 51     | producer_epoch   |
//! | 17     | crc: u32 (CRC-32C)     | 53     | base_sequence    |
//! | 21     | attributes: i16        | 57     | records_count    |
//! | 23     | last_offset_delta: i32 |        |                  |
//!
//! The CRC covers everything from `attributes` on, so a broker can patch the base offset
//! and the leader epoch without touching it (as Kafka's `DefaultRecordBatch` does). Only
//! LogAppendTime, which rewrites attributes and max timestamp, needs a new CRC.

use bytes::{Buf, Bytes};

mod builder;
pub mod rewrite;

pub use builder::{BatchBuilder, BatchRecord, BuildError, Compression, NO_SEQUENCE};

/// Size of the v2 batch header.
pub const HEADER_BYTES: usize = 61;
/// `base_offset` + `batch_length`: the part not counted by `batch_length`.
pub const LOG_OVERHEAD: usize = 12;

const OFFSET_BATCH_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_MAX_TIMESTAMP: usize = 35;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// No producer id: the batch is neither idempotent nor transactional.
pub const NO_PRODUCER_ID: i64 = -1;

/// Why a batch was refused. Each maps to the Kafka error a broker returns for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// CORRUPT_MESSAGE: the bytes do not hold a whole batch, or its CRC does not match.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// INVALID_RECORD: a well-formed batch that breaks a rule (magic, counts).
    #[error("invalid record batch: {0}")]
    Invalid(String),
}

/// The parsed header of one v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads a header from the start of `buf` (no CRC check).
    pub fn parse(mut buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::Corrupt(format!("{} bytes is shorter than a batch header", buf.len())));
        }
        Ok(Self {
            base_offset: buf.get_i64(),
            batch_length: buf.get_i32(),
            partition_leader_epoch: buf.get_i32(),
            magic: buf.get_i8(),
            crc: buf.get_u32(),
            attributes: buf.get_i16(),
            last_offset_delta: buf.get_i32(),
            base_timestamp: buf.get_i64(),
            max_timestamp: buf.get_i64(),
            producer_id: buf.get_i64(),
            producer_epoch: buf.get_i16(),
            base_sequence: buf.get_i32(),
            records_count: buf.get_i32(),
        })
    }

    /// Total bytes of the batch including the offset and length fields.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    /// The compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }
    /// The sequence number of the last record (sequences wrap at `i32::MAX`, as in Kafka).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Splits the `records` field of a produce request into its batches, checking that each
/// length field stays inside the buffer. No CRC check here.
pub fn split_batches(records: &Bytes) -> Result<Vec<Bytes>, BatchError> {
    let mut batches = Vec::with_capacity(1);
    let mut at = 0usize;
    while at < records.len() {
        let rest = &records[at..];
        if rest.len() < LOG_OVERHEAD {
            return Err(BatchError::Corrupt(format!("{} trailing bytes", rest.len())));
        }
        let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let total = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(LOG_OVERHEAD))
            .filter(|&t| t >= HEADER_BYTES && t <= rest.len())
            .ok_or_else(|| {
                BatchError::Corrupt(format!("batch length {length} does not fit the {} bytes left", rest.len()))
            })?;
        batches.push(records.slice(at..at + total));
        at += total;
    }
    Ok(batches)
}

/// Computes the CRC-32C a v2 batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..])
}

/// Validates one whole batch as a broker must before appending it (Kafka's
/// `LogValidator.validateBatch` for magic 2, minus what needs decompression).
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_stored(batch)?;
    if header.records_count != header.last_offset_delta.saturating_add(1) {
        return Err(BatchError::Invalid(format!(
            "records count {} does not match last offset delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Validates a batch as it may sit in a log: as [`validate`], except that compaction may
/// have removed records (fewer records than its offset range, down to none), as a follower
/// copying a compacted log receives them.
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.magic != 2 {
        return Err(BatchError::Invalid(format!(
            "magic {} is not supported: produce v3+ carries only magic 2 batches",
            header.magic
        )));
    }
    if header.total_bytes() != batch.len() {
        return Err(BatchError::Corrupt(format!(
            "batch length {} disagrees with {} bytes",
            header.batch_length,
            batch.len()
        )));
    }
    let crc = compute_crc(batch);
    if crc != header.crc {
        return Err(BatchError::Corrupt(format!("CRC {crc:#010x} does not match {:#010x}", header.crc)));
    }
    if header.last_offset_delta < 0
        || header.records_count < 0
        || header.records_count > header.last_offset_delta.saturating_add(1)
    {
        return Err(BatchError::Invalid(format!(
            "records count {} does not fit last offset delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Writes the base offset and leader epoch the log assigns. Leaves the CRC valid.
pub fn assign_offset(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..OFFSET_BATCH_LENGTH].copy_from_slice(&base_offset.to_be_bytes());
    batch[OFFSET_LEADER_EPOCH..OFFSET_MAGIC].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `now_ms` as its max timestamp and recomputes the
/// CRC (Kafka's `DefaultRecordBatch.setMaxTimestamp`).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([batch[OFFSET_ATTRIBUTES], batch[OFFSET_ATTRIBUTES + 1]]) | ATTR_TIMESTAMP_TYPE;
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[OFFSET_CRC..OFFSET_ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

/// What a control record says (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// Bytes of the one record in a control batch: attributes, zero deltas, the 4-byte key
/// (version 0, type) and the 6-byte value (version 0, coordinator epoch), no headers.
const CONTROL_RECORD_BODY: usize = 16;

/// Builds the transaction marker a coordinator writes to a partition
/// (`EndTransactionMarker` in Kafka): a transactional control batch with one record.
/// Its base offset is 0 until the log assigns one.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let total = HEADER_BYTES + 1 + CONTROL_RECORD_BODY;
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&0i64.to_be_bytes());
    buf.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.push(2);
    buf.extend_from_slice(&0u32.to_be_bytes());
    buf.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&timestamp_ms.to_be_bytes());
    buf.extend_from_slice(&timestamp_ms.to_be_bytes());
    buf.extend_from_slice(&producer_id.to_be_bytes());
    buf.extend_from_slice(&producer_epoch.to_be_bytes());
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    buf.extend_from_slice(&1i32.to_be_bytes());
    // Varints are zig-zag encoded: n becomes 2n, and every value here is below 64.
    buf.push((CONTROL_RECORD_BODY * 2) as u8);
    buf.extend_from_slice(&[0, 0, 0]);
    buf.push(4 * 2);
    buf.extend_from_slice(&0i16.to_be_bytes());
    buf.extend_from_slice(&control.code().to_be_bytes());
    buf.push(6 * 2);
    buf.extend_from_slice(&0i16.to_be_bytes());
    buf.extend_from_slice(&coordinator_epoch.to_be_bytes());
    buf.push(0);
    let crc = compute_crc(&buf);
    buf[OFFSET_CRC..OFFSET_ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// Reads a zig-zag varint from the front of `buf`.
fn read_varint(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(BatchError::Corrupt("truncated varint".into()));
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(BatchError::Corrupt("varint longer than 10 bytes".into()))
}

/// The first record of a control batch, from its key length on, or `None` for a data
/// batch. Control batches are never compressed, so the record is read in place, and never
/// past the batch's own length.
fn control_record(batch: &[u8]) -> Result<Option<(i64, &[u8])>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() {
        return Ok(None);
    }
    let end = header.total_bytes().min(batch.len());
    let mut rest = batch.get(HEADER_BYTES..end).unwrap_or_default();
    let _length = read_varint(&mut rest)?;
    let (_attributes, after) = rest.split_first().ok_or_else(|| BatchError::Corrupt("empty control record".into()))?;
    rest = after;
    let _timestamp_delta = read_varint(&mut rest)?;
    let _offset_delta = read_varint(&mut rest)?;
    let key_length = read_varint(&mut rest)?;
    if key_length < 4 || rest.len() < 4 {
        return Err(BatchError::Corrupt(format!("control record key of {key_length} bytes")));
    }
    Ok(Some((key_length, rest)))
}

/// The marker type of a control batch, or `None` for a data batch.
pub fn control_type(batch: &[u8]) -> Result<Option<ControlType>, BatchError> {
    Ok(control_record(batch)?.and_then(|(_, key)| control_kind(key)))
}

/// The control type in a control record's key (version i16, type i16).
fn control_kind(key: &[u8]) -> Option<ControlType> {
    match key.get(2..4)? {
        [0, 0] => Some(ControlType::Abort),
        [0, 1] => Some(ControlType::Commit),
        // Other control types (e.g. KRaft's) are neither a commit nor an abort.
        _ => None,
    }
}

/// A commit or abort marker as stored (Kafka's `EndTransactionMarker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

/// The commit or abort marker a control batch holds, with the coordinator epoch from its
/// value (version i16, coordinator epoch i32); `None` for a data batch or another control
/// type. Later value versions are read as version 0, as Kafka does.
pub fn end_txn_marker(batch: &[u8]) -> Result<Option<EndTxnMarker>, BatchError> {
    let Some((key_length, rest)) = control_record(batch)? else {
        return Ok(None);
    };
    let Some(control) = control_kind(rest) else {
        return Ok(None);
    };
    let mut rest = usize::try_from(key_length)
        .ok()
        .and_then(|n| rest.get(n..))
        .ok_or_else(|| BatchError::Corrupt(format!("control record key of {key_length} bytes overruns the batch")))?;
    let value_length = read_varint(&mut rest)?;
    match rest.get(..6) {
        Some(value) if value_length >= 6 => Ok(Some(EndTxnMarker {
            control,
            coordinator_epoch: i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
        })),
        _ => Err(BatchError::Corrupt(format!("transaction marker value of {value_length} bytes"))),
    }
}

/// Offset and timestamp of each record in a batch, decompressing if needed.
///
/// Used off the hot path (ListOffsets by timestamp), so it may allocate freely.
pub fn record_timestamps(batch: &Bytes) -> Result<Vec<(i64, i64)>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let mut buf = batch.clone();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| BatchError::Corrupt(e.to_string()))?;
    Ok(set
        .records
        .iter()
        .map(|r| {
            let ts = if header.is_log_append_time() { header.max_timestamp } else { r.timestamp };
            (r.offset, ts)
        })
        .collect())
}

/// The positions in the batch (Kafka's "batch index") of the records without a key, which a
/// compacted topic refuses: such a record could never be compacted (Kafka's `LogValidator`).
pub fn keyless_records(batch: &Bytes) -> Result<Vec<i32>, BatchError> {
    let mut buf = batch.clone();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| BatchError::Corrupt(e.to_string()))?;
    Ok(set.records.iter().enumerate().filter(|(_, r)| r.key.is_none()).map(|(i, _)| i as i32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    pub(crate) fn sample_batch(count: i32, compression: Compression) -> Bytes {
        let builder = (0..count).fold(BatchBuilder::new().producer(7, 0, 0).compression(compression), |b, i| {
            b.record(1_000 + i64::from(i), Some(Bytes::from(format!("k{i}"))), Some(Bytes::from(format!("v{i}"))))
        });
        builder.build().unwrap()
    }

    #[test]
    fn the_builder_writes_every_field_into_one_batch() {
        let mut builder = BatchBuilder::new()
            .producer(42, 3, i32::MAX - 1)
            .transactional(true)
            .compression(Compression::Zstd)
            .base_offset(500)
            .record(2_000, Some(Bytes::from_static(b"a")), None);
        builder.push(BatchRecord {
            timestamp_ms: 1_000,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: vec![("h".into(), Some(Bytes::from_static(b"x"))), ("empty".into(), None)],
        });
        let batch = builder.build().unwrap();
        let header = validate(&batch).unwrap();
        assert_eq!((header.base_offset, header.last_offset(), header.records_count), (500, 501, 2));
        assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (42, 3, i32::MAX - 1));
        assert_eq!((header.base_timestamp, header.max_timestamp), (1_000, 2_000));
        assert!(header.is_transactional() && !header.is_control());
        assert_eq!(header.compression(), Compression::Zstd as i16);
        let mut buf = batch.clone();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
        assert_eq!(sets.len(), 1);
        let records = &sets[0].records;
        assert_eq!(records[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(records[0].value, None);
        assert_eq!((records[0].sequence, records[1].sequence), (i32::MAX - 1, i32::MAX));
        assert_eq!(records[1].headers.len(), 2);
        assert_eq!(records[1].headers.get(&b"h"[..]).cloned().flatten().as_deref(), Some(&b"x"[..]));

        let plain = BatchBuilder::new().record(5, None, Some(Bytes::from_static(b"v"))).build().unwrap();
        let header = validate(&plain).unwrap();
        assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (-1, -1, -1));
        assert!(!header.is_transactional());
        assert_eq!(BatchBuilder::new().build(), Err(BuildError::Empty));
    }

    #[test]
    fn validates_and_patches_without_breaking_crc() {
        for compression in
            [Compression::None, Compression::Gzip, Compression::Lz4, Compression::Zstd, Compression::Snappy]
        {
            let batch = sample_batch(5, compression);
            let header = validate(&batch).unwrap();
            assert_eq!(header.records_count, 5);
            assert_eq!(header.last_sequence(), 4);
            let mut patched = BytesMut::from(&batch[..]);
            assign_offset(&mut patched, 1_000, 3);
            let header = validate(&patched).unwrap();
            assert_eq!((header.base_offset, header.partition_leader_epoch, header.last_offset()), (1_000, 3, 1_004));
            set_log_append_time(&mut patched, 99_999);
            let header = validate(&patched).unwrap();
            assert!(header.is_log_append_time());
            assert_eq!(header.max_timestamp, 99_999);
            let stamps = record_timestamps(&patched.freeze()).unwrap();
            assert_eq!(stamps.len(), 5);
            assert!(stamps.iter().all(|&(_, ts)| ts == 99_999));
        }
    }

    #[test]
    fn detects_corruption() {
        let batch = sample_batch(3, Compression::None);
        let mut bad = BytesMut::from(&batch[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(validate(&bad), Err(BatchError::Corrupt(_))));
        assert!(matches!(validate(&batch[..batch.len() - 1]), Err(BatchError::Corrupt(_))));
        let mut v1 = BytesMut::from(&batch[..]);
        v1[OFFSET_MAGIC] = 1;
        assert!(matches!(validate(&v1), Err(BatchError::Invalid(_))));
    }

    #[test]
    fn splits_concatenated_batches_and_rejects_overruns() {
        let one = sample_batch(2, Compression::None);
        let mut two = BytesMut::from(&one[..]);
        two.extend_from_slice(&one);
        assert_eq!(split_batches(&two.freeze()).unwrap().len(), 2);
        let mut overrun = BytesMut::from(&one[..]);
        overrun[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(split_batches(&overrun.freeze()).is_err());
    }

    #[test]
    fn control_batches_decode_like_kafka_markers() {
        for (control, commit) in [(ControlType::Commit, true), (ControlType::Abort, false)] {
            let batch = Bytes::from(control_batch(42, 3, control, 7, 1_234));
            let header = validate(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (42, 3, -1));
            assert_eq!(control_type(&batch).unwrap(), Some(control));
            assert_eq!(end_txn_marker(&batch).unwrap(), Some(EndTxnMarker { control, coordinator_epoch: 7 }));
            // The codec crate agrees on every field.
            let mut buf = batch.clone();
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
            let record = &set.records[0];
            assert!(record.control && record.transactional);
            let key = record.key.as_ref().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, u8::from(commit)]);
            assert_eq!(&record.value.as_ref().unwrap()[..], &[0, 0, 0, 0, 0, 7]);
            assert_eq!(record.timestamp, 1_234);
        }
        assert_eq!(control_type(&sample_batch(2, Compression::None)).unwrap(), None);
        assert_eq!(end_txn_marker(&sample_batch(2, Compression::None)).unwrap(), None);
    }

    #[test]
    fn truncated_markers_are_errors_not_panics() {
        let batch = control_batch(42, 3, ControlType::Commit, i32::MAX, 1_234);
        // Every prefix, and the batch with its declared length cut short, must fail cleanly.
        for cut in 0..batch.len() {
            let _ = end_txn_marker(&batch[..cut]);
        }
        let mut short = batch.clone();
        let body = (batch.len() - LOG_OVERHEAD - 4) as i32;
        short[8..12].copy_from_slice(&body.to_be_bytes());
        assert!(end_txn_marker(&short).is_err());
        let mut long_key = batch.clone();
        // The key length varint sits right after length, attributes and the two deltas.
        long_key[HEADER_BYTES + 4] = 100;
        assert!(end_txn_marker(&long_key).is_err());
        assert_eq!(end_txn_marker(&batch).unwrap().map(|m| m.coordinator_epoch), Some(i32::MAX));
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        let mut header = BatchHeader::parse(&sample_batch(3, Compression::None)).unwrap();
        header.base_sequence = i32::MAX - 1;
        assert_eq!(header.last_sequence(), 0);
    }
}
