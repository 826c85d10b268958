//! Storage errors, typed so the broker can map each to one Kafka error code.

use rivulet_protocol::record_batch::BatchError;

/// A failure of the storage engine itself (Kafka's KAFKA_STORAGE_ERROR).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("column family {0} is missing")]
    MissingColumnFamily(&'static str),
    #[error("corrupt stored data at {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { offset: i64, log_start: i64, log_end: i64 },
    #[error("reading the size of the volume holding {path}: {source}")]
    Volume { path: String, source: std::io::Error },
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("batch of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    /// TRANSACTION_COORDINATOR_FENCED: a marker from a coordinator older than the one
    /// that wrote the producer's last marker here.
    #[error("producer {producer_id}: invalid coordinator epoch {coordinator_epoch} (zombie), {current} (current)")]
    TransactionCoordinatorFenced { producer_id: i64, coordinator_epoch: i32, current: i32 },
    #[error("producer {producer_id}: sequence {first_sequence} does not follow {last_sequence} (epoch {epoch})")]
    OutOfOrderSequence { producer_id: i64, epoch: i16, first_sequence: i32, last_sequence: i32 },
    /// INVALID_TXN_STATE: e.g. a non-transactional batch from a producer whose
    /// transaction is still open here.
    #[error("producer {producer_id}: {reason}")]
    InvalidTxnState { producer_id: i64, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<rocksdb::Error> for AppendError {
    fn from(e: rocksdb::Error) -> Self {
        AppendError::Storage(StorageError::Rocks(e))
    }
}
