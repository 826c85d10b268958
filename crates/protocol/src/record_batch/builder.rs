//! Building v2 record batches from records, as a producer writes them.
//!
//! This is the one place Rivulet composes data batches: the coordinators write their
//! internal-topic records with it, and every test and benchmark that needs a batch uses it
//! too. It lives in the protocol crate (not in the test-support crate) because production
//! code needs it, and because every crate — the broker's in-crate unit tests included —
//! already depends on this one, so no dependency cycle can arise.
//!
//! The encoding itself is the `kafka-protocol` crate's, which starts a new batch whenever
//! producer fields or the offset-to-sequence distance change between records; the builder
//! keeps those fields per batch and numbers offsets and sequences together, so `build`
//! always yields exactly one batch.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

pub use kafka_protocol::records::Compression;

use super::NO_PRODUCER_ID;

/// No sequence number: the batch is not from an idempotent producer, or it is written by a
/// coordinator (Kafka's `RecordBatch.NO_SEQUENCE`).
pub const NO_SEQUENCE: i32 = -1;

/// Why a batch could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A v2 batch holds at least one record.
    #[error("a record batch needs at least one record")]
    Empty,
    /// The codec refused the records (e.g. a compression failure).
    #[error("cannot encode record batch: {0}")]
    Encode(String),
}

/// One record of a batch under construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchRecord {
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Builds one uncompressed or compressed v2 batch.
///
/// Defaults are those of a plain (non-idempotent) producer: no producer id, epoch or
/// sequence, not transactional, no compression, base offset 0.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    compression: Compression,
    base_offset: i64,
    records: Vec<BatchRecord>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> Self {
        BatchBuilder {
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            compression: Compression::None,
            base_offset: 0,
            records: Vec::new(),
        }
    }

    /// The producer the batch comes from and the sequence of its first record
    /// ([`NO_SEQUENCE`] for none, as a coordinator's transactional batch carries).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction (KIP-98).
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The offset of the first record (a producer sends 0; the log assigns the real one).
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Appends a record without headers.
    pub fn record(mut self, timestamp_ms: i64, key: Option<Bytes>, value: Option<Bytes>) -> Self {
        self.push(BatchRecord { timestamp_ms, key, value, headers: Vec::new() });
        self
    }

    /// Appends a record with every field given.
    pub fn push(&mut self, record: BatchRecord) {
        self.records.push(record);
    }

    /// How many records the batch holds so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the records as one batch, CRC included.
    pub fn build(&self) -> Result<Bytes, BuildError> {
        if self.records.is_empty() {
            return Err(BuildError::Empty);
        }
        let records: Vec<Record> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                // Offsets and sequences advance together, which the codec needs to keep
                // the records in one batch; it stores only the first record's sequence, so
                // with NO_SEQUENCE the batch says -1, as Kafka's does.
                Record {
                    transactional: self.transactional,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: self.producer_id,
                    producer_epoch: self.producer_epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: self.base_offset + i as i64,
                    sequence: self.base_sequence.wrapping_add(i as i32),
                    timestamp: record.timestamp_ms,
                    key: record.key.clone(),
                    value: record.value.clone(),
                    headers: record
                        .headers
                        .iter()
                        .map(|(name, value)| (StrBytes::from_string(name.clone()), value.clone()))
                        .collect(),
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions { version: 2, compression: self.compression },
        )
        .map_err(|e| BuildError::Encode(e.to_string()))?;
        Ok(buf.freeze())
    }
}
