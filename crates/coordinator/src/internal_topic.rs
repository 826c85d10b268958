//! Reading and writing the broker's internal topics (`__consumer_offsets`,
//! `__transaction_state`): the coordinators keep their state as keyed records in ordinary
//! partition logs, so replication and failover treat them like any partition, and rebuild
//! it on start by replaying those logs.

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::records::RecordBatchDecoder;
use rivulet_protocol::record_batch::{self, BatchBuilder, BatchError, BatchHeader, BuildError, ControlType};
use rivulet_storage::{PartitionLog, StorageError};

/// Why records could not be written to or replayed from an internal topic's log.
#[derive(Debug, thiserror::Error)]
pub enum InternalTopicError {
    /// The records could not be encoded as a batch.
    #[error("encoding a record batch failed: {0}")]
    Encode(#[source] BuildError),
    /// The log could not be read.
    #[error("reading the log at offset {offset} failed: {source}")]
    Read {
        offset: i64,
        #[source]
        source: StorageError,
    },
    /// A stored batch is not a valid record batch.
    #[error("the batch at offset {offset} is invalid: {source}")]
    Batch {
        offset: i64,
        #[source]
        source: BatchError,
    },
    /// A stored batch's records could not be decoded.
    #[error("decoding the records of the batch at offset {offset} failed: {source}")]
    Decode {
        offset: i64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The producer a transactional batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Encodes `(key, value)` records as one uncompressed batch; a `None` value is a
/// tombstone. With `txn` the batch is transactional and carries no sequence (it is
/// written by a coordinator, not a producer).
pub fn encode_batch(
    entries: &[(Vec<u8>, Option<Vec<u8>>)],
    now_ms: i64,
    txn: Option<TxnProducer>,
) -> Result<Bytes, InternalTopicError> {
    let mut builder = BatchBuilder::new();
    if let Some(t) = txn {
        builder = builder.producer(t.producer_id, t.producer_epoch, record_batch::NO_SEQUENCE).transactional(true);
    }
    let builder = entries.iter().fold(builder, |b, (key, value)| {
        b.record(now_ms, Some(Bytes::from(key.clone())), value.clone().map(Bytes::from))
    });
    builder.build().map_err(InternalTopicError::Encode)
}

/// One stored batch as seen while replaying.
pub enum Replayed {
    /// Keyed records (keyless records are skipped), with their producer when transactional.
    Records { txn: Option<TxnProducer>, records: Vec<(Bytes, Option<Bytes>)> },
    /// A transaction marker.
    Marker { producer_id: i64, control: ControlType },
}

/// Reads `log` from its start to its end and hands every batch to `visit`. As Kafka's
/// coordinators do when they load a partition, this reads up to the log end rather than
/// the high watermark: the loading broker leads the partition, so its log is the history.
pub fn replay(log: &PartitionLog, mut visit: impl FnMut(Replayed)) -> Result<(), InternalTopicError> {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let data = log
            .read_with(offset, 8 * 1024 * 1024, true, rivulet_storage::Isolation::Replica)
            .map_err(|source| InternalTopicError::Read { offset, source })?;
        if data.records.is_empty() {
            break;
        }
        let mut at = 0;
        while at < data.records.len() {
            let header = BatchHeader::parse(&data.records[at..])
                .map_err(|source| InternalTopicError::Batch { offset, source })?;
            let batch = data.records.slice(at..at + header.total_bytes().min(data.records.len() - at));
            let batch_offset = header.base_offset;
            offset = header.last_offset() + 1;
            at += header.total_bytes();
            if header.is_control() {
                let control = record_batch::control_type(&batch)
                    .map_err(|source| InternalTopicError::Batch { offset: batch_offset, source })?;
                if let Some(control) = control {
                    visit(Replayed::Marker { producer_id: header.producer_id, control });
                }
                continue;
            }
            let mut buf = batch;
            let mut records = Vec::new();
            let sets = RecordBatchDecoder::decode_all(&mut buf)
                .map_err(|e| InternalTopicError::Decode { offset: batch_offset, source: e.into() })?;
            for set in sets {
                for record in set.records {
                    if let Some(key) = record.key {
                        records.push((key, record.value));
                    }
                }
            }
            let txn = header
                .is_transactional()
                .then_some(TxnProducer { producer_id: header.producer_id, producer_epoch: header.producer_epoch });
            visit(Replayed::Records { txn, records });
        }
    }
    Ok(())
}

/// Kafka's `Utils.abs(key.hashCode) % partitionCount`: the Java `String.hashCode` of a
/// group or transactional id, so each maps to the partition Kafka would use.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in key.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "test-group".hashCode() == 627841412 in Java; 627841412 % 50 == 12.
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..50).contains(&partition_for("Ünïcödé group ☃", 50)));
    }

    #[test]
    fn transactional_batches_stay_one_batch_without_sequence() {
        let entries: Vec<_> = (0..3).map(|i| (vec![i], Some(vec![i, i]))).collect();
        let txn = TxnProducer { producer_id: 9, producer_epoch: 2 };
        let batch = encode_batch(&entries, 5, Some(txn)).unwrap();
        let header = record_batch::validate(&batch).unwrap();
        assert_eq!(header.total_bytes(), batch.len());
        assert!(header.is_transactional());
        assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (9, 2, -1));
        assert_eq!(header.records_count, 3);
    }

    /// A stored batch that claims 2^31 - 1 records (its offset range agrees, so the log
    /// takes it) but holds one: replaying it is an error, not an allocation for the
    /// announced count that would abort the broker while it loads the partition.
    #[test]
    fn replaying_a_batch_that_claims_billions_of_records_is_an_error() {
        use rivulet_storage::{AppendOptions, AppendOrigin, LogClass, LogId, Store, StoreOptions};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let log = store.open_log(LogId(100), LogClass::Internal).unwrap();
        let options = AppendOptions {
            leader_epoch: 0,
            max_batch_bytes: 1 << 20,
            log_append_time_ms: None,
            origin: AppendOrigin::Client,
        };
        log.append(&encode_batch(&[(b"k".to_vec(), Some(b"v".to_vec()))], 5, None).unwrap(), &options).unwrap();

        let mut hostile = encode_batch(&[(b"k".to_vec(), Some(b"v".to_vec()))], 5, None).unwrap().to_vec();
        hostile[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes()); // last offset delta
        hostile[57..61].copy_from_slice(&i32::MAX.to_be_bytes()); // records count
        let crc = record_batch::compute_crc(&hostile);
        hostile[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(&hostile, &options).unwrap();

        let mut seen = 0;
        let replayed = replay(&log, |_| seen += 1);
        assert!(replayed.is_err(), "{replayed:?}");
        assert_eq!(seen, 1, "the batch before it was replayed");
    }
}
