//! The runtime both coordinators run on, after Kafka 4's `CoordinatorRuntime` (a modest
//! version): a coordinator's state is a deterministic function of the records of its
//! internal topic's partitions, so the runtime owns the one path by which records reach a
//! partition log ([`CoordinatorRuntime::write`]) and the one path by which a loaded
//! partition's records reach the coordinator's state ([`CoordinatorRuntime::load`], into
//! a [`Replay`]). The coordinators decide which records to write and what a replayed
//! record means; encoding batches, appending, reading the log back and knowing which
//! partitions are served happen here.
//!
//! Unlike Kafka's runtime this one does not queue operations per partition nor hold the
//! response until the write is replicated: writes are synchronous appends made under the
//! coordinator's own lock, and the broker waits for replication where it must.

use std::sync::Arc;

use bytes::Bytes;
use rivulet_protocol::record_batch::ControlType;
use rivulet_protocol::ResponseError;
use rivulet_storage::{AppendError, AppendOptions, AppendOrigin, PartitionLog};

use crate::coordinator_partitions::CoordinatorPartitions;
use crate::internal_topic::{self, InternalTopicError, Replayed, TxnProducer};

/// Why records could not be written to a coordinator's partition.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The partition is not served here (it moved to another broker meanwhile).
    #[error("{topic} partition {partition} is not served here")]
    NotServed { topic: &'static str, partition: i32 },
    /// The records could not be encoded as a batch.
    #[error("{topic}: {source}")]
    Encode {
        topic: &'static str,
        #[source]
        source: InternalTopicError,
    },
    /// The partition log refused the append.
    #[error("appending to {topic} partition {partition} failed: {source}")]
    Append {
        topic: &'static str,
        partition: i32,
        #[source]
        source: AppendError,
    },
}

/// One served partition of a coordinator's internal topic: the log its records go to.
pub struct Shard {
    topic: &'static str,
    partition: i32,
    log: Arc<PartitionLog>,
}

impl Shard {
    pub fn new(topic: &'static str, partition: i32, log: Arc<PartitionLog>) -> Self {
        Shard { topic, partition, log }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// Encodes `records` (`None` value: a tombstone) as one batch stamped `now_ms` — a
    /// transactional batch of `txn` if given — and appends it. Returns the batch's base
    /// offset.
    pub fn write(
        &self,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        now_ms: i64,
        txn: Option<TxnProducer>,
    ) -> Result<i64, RuntimeError> {
        let batch = internal_topic::encode_batch(records, now_ms, txn)
            .map_err(|source| RuntimeError::Encode { topic: self.topic, source })?;
        let options = AppendOptions {
            // The partition's current leader epoch.
            leader_epoch: -1,
            max_batch_bytes: usize::MAX,
            log_append_time_ms: None,
            origin: AppendOrigin::Coordinator,
        };
        let outcome = self.log.append(&batch, &options).map_err(|source| RuntimeError::Append {
            topic: self.topic,
            partition: self.partition,
            source,
        })?;
        Ok(outcome.base_offset)
    }
}

/// A coordinator's state as rebuilt from its partition: what each replayed batch does.
pub trait Replay {
    /// A batch of keyed records, with its producer when transactional (whose records
    /// count only once a COMMIT marker follows).
    fn records(&mut self, txn: Option<TxnProducer>, records: Vec<(Bytes, Option<Bytes>)>);

    /// The marker ending `producer_id`'s transaction.
    fn marker(&mut self, producer_id: i64, control: ControlType);
}

/// The partitions one coordinator serves, and the write and load paths to them.
pub struct CoordinatorRuntime {
    topic: &'static str,
    partitions: CoordinatorPartitions,
}

impl CoordinatorRuntime {
    /// A runtime over `topic`, of `count` partitions, serving none yet.
    pub fn new(topic: &'static str, count: i32) -> Self {
        CoordinatorRuntime { topic, partitions: CoordinatorPartitions::new(count) }
    }

    pub fn topic(&self) -> &'static str {
        self.topic
    }

    /// The topic's partition count, which keys hash onto.
    pub fn count(&self) -> i32 {
        self.partitions.count()
    }

    /// `partition` is being loaded: its keys get COORDINATOR_LOAD_IN_PROGRESS meanwhile.
    pub fn mark_loading(&self, partition: i32) {
        self.partitions.mark_loading(partition);
    }

    /// `None` when `partition` is served here, else the error for its keys.
    pub fn status(&self, partition: i32) -> Option<ResponseError> {
        self.partitions.status(partition)
    }

    /// Replays `log`, `partition`'s log, from its start into `state`. The partition is not
    /// served until [`Self::finish_loading`] says so, once the coordinator has installed
    /// the state.
    pub fn load(&self, partition: i32, log: &PartitionLog, state: &mut impl Replay) -> Result<(), InternalTopicError> {
        tracing::debug!(topic = self.topic, partition, "replaying a coordinator partition");
        internal_topic::replay(log, |batch| match batch {
            Replayed::Records { txn, records } => state.records(txn, records),
            Replayed::Marker { producer_id, control } => state.marker(producer_id, control),
        })
    }

    /// Loading ended: `partition` is served from now on with `log`, or (`None`) not at all.
    pub fn finish_loading(&self, partition: i32, log: Option<Arc<PartitionLog>>) {
        self.partitions.finish_loading(partition, log.map(|log| Arc::new(Shard::new(self.topic, partition, log))));
    }

    /// Stops serving `partition`; returns whether it was served.
    pub fn remove(&self, partition: i32) -> bool {
        self.partitions.remove(partition)
    }

    /// Appends `records` to `partition` as one batch (see [`Shard::write`]); returns its
    /// base offset.
    pub fn write(
        &self,
        partition: i32,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        now_ms: i64,
        txn: Option<TxnProducer>,
    ) -> Result<i64, RuntimeError> {
        let shard = self.partitions.shard(partition).ok_or(RuntimeError::NotServed { topic: self.topic, partition })?;
        shard.write(records, now_ms, txn)
    }
}
