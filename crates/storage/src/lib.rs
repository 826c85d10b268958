//! # rivulet-storage
//!
//! Partition logs, producer state and the broker's small key-value metadata, all in one
//! RocksDB database per broker. This crate is the only one that knows RocksDB exists.
//!
//! * [`keys`] — every column family name and key encoding, in one place.
//! * [`store`] — opening the database, the metadata key-value API, deleting whole logs.
//! * [`log`] — one partition's log: validated append with offset assignment and
//!   idempotent-producer checks, reads for Fetch, offset lookups for ListOffsets.
//!   Its log start offset moves forward for retention and DeleteRecords (`log::lifecycle`);
//!   compacted logs keep the latest record per key (`log::compaction`).
//! * [`producer_state`] — per-producer sequence tracking and open transactions (Kafka's
//!   `ProducerStateManager`); transaction markers, the last stable offset and the index of
//!   aborted transactions live in [`log`].
//!
//! Record batches are stored exactly as the producer sent them, with only the base offset
//! and leader epoch patched in place (and max timestamp for LogAppendTime topics); Fetch
//! serves the stored bytes back untouched. Appends are serialised per partition by a mutex;
//! the batch, its time-index entry and the producer's new state go into one RocksDB
//! `WriteBatch`, so a crash never leaves them disagreeing.

pub mod error;
pub mod keys;
pub mod log;
pub mod producer_state;
pub mod store;

pub use error::{AppendError, StorageError};
pub use log::{
    AbortedTxn, AppendOptions, AppendOrigin, AppendOutcome, CleanOptions, Cleaned, FetchedData, Isolation,
    PartitionLog, RetentionLimits, TimestampLookup, Trimmed,
};
pub use store::{FlushPolicy, LogClass, LogId, Store, StoreOptions, VolumeSpace};
