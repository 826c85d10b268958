//! The transaction coordinator (KIP-98, KIP-360, KIP-447), after Kafka's
//! `TransactionCoordinator` and `TransactionStateManager`.
//!
//! Each transactional id has a producer id and epoch, a timeout and a state:
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ─markers─▶ CompleteCommit
//!   ▲                                   │ └──EndTxn(abort) / timeout / fencing──▶ PrepareAbort ─markers─▶ CompleteAbort
//!   └──────────── InitProducerId (epoch bump) ◀── Complete* ──AddPartitions──▶ Ongoing …
//! ```
//!
//! Every transition is written to the internal topic `__transaction_state` (partition
//! chosen by the id's hash) before it is acted on, so on restart the coordinator replays it:
//! a transaction found in a Prepare state had its outcome decided and gets its markers
//! written again (writing a marker twice is harmless); one found Ongoing stays open until
//! its producer ends it or its timeout aborts it. On this single node the markers are
//! written directly into the partition logs through [`MarkerSink`] while the coordinator's
//! lock is held, so no request ever observes a half-written outcome.

pub mod persist;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rivulet_protocol::record_batch::ControlType;
use rivulet_protocol::ResponseError;
use rivulet_storage::{AppendError, PartitionLog};

use crate::clock::{Clock, SystemClock};
use crate::internal_topic::{self, InternalTopicError, TxnProducer};
use crate::runtime::{CoordinatorRuntime, Replay, RuntimeError};
use persist::{TxnRecordError, TxnState, TxnValue};

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Where the coordinator writes transaction markers (the broker's partition logs).
pub trait MarkerSink {
    /// Appends the marker ending `producer_id`'s transaction to `topic`-`partition`,
    /// written by a coordinator of `coordinator_epoch` (Kafka's: the leader epoch of the
    /// transaction's `__transaction_state` partition when this coordinator loaded it), so
    /// the partition can fence a deposed coordinator. A partition that no longer exists
    /// is skipped by the sink.
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
    ) -> Result<(), MarkerError>;

    /// Waits until the decision written to `__transaction_state`-`state_partition` (a
    /// Prepare state) is in that partition's in-sync replicas. Markers are written only
    /// after it, as Kafka sends them only once the PrepareCommit / PrepareAbort append
    /// completed: a marker written first would, after a coordinator failover that lost the
    /// decision, let the next coordinator end the same transaction the other way on other
    /// partitions. The default (for sinks that do not replicate) has nothing to wait for.
    fn decision_stored(&self, state_partition: i32) -> Result<(), MarkerError> {
        let _ = state_partition;
        Ok(())
    }
}

/// Why a transaction marker could not be written. The transaction then stays in its
/// Prepare state and its markers are written again later.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// No broker can take the marker: this one does not lead the partition and knows no
    /// other that does.
    #[error("{topic}-{partition} has no leader here")]
    NoLeader { topic: String, partition: i32 },
    /// The partition log refused the marker.
    #[error("appending the marker to {topic}-{partition} failed: {source}")]
    Append {
        topic: String,
        partition: i32,
        #[source]
        source: AppendError,
    },
    /// The decision is not replicated yet, so no marker may be written.
    #[error("the decision in __transaction_state-{partition} is not replicated: {reason}")]
    Undecided { partition: i32, reason: String },
    /// The partition's leader, another broker, did not write the marker (WriteTxnMarkers).
    #[error("broker {leader} did not write the marker for {topic}-{partition}: {source}")]
    Remote {
        leader: i32,
        topic: String,
        partition: i32,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl MarkerError {
    /// What the request that needed the marker answers: the outcome is decided and will be
    /// completed, so the client retries (COORDINATOR_NOT_AVAILABLE).
    pub fn kafka_error(&self) -> ResponseError {
        ResponseError::CoordinatorNotAvailable
    }
}

/// Coordinator settings under their `server.properties` names.
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
}

/// One transaction as DescribeTransactions / ListTransactions show it.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub value: TxnValue,
}

/// A producer id and epoch handed out by InitProducerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Why a partition of `__transaction_state` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The partition log could not be read.
    #[error("reading __transaction_state partition {partition} failed: {source}")]
    Read {
        partition: i32,
        #[source]
        source: InternalTopicError,
    },
    /// A stored record could not be decoded.
    #[error("__transaction_state partition {partition}, key {key:?}: {source}")]
    Record {
        partition: i32,
        key: String,
        #[source]
        source: TxnRecordError,
    },
}

/// Why a transaction's state could not be written to `__transaction_state`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct WriteError(#[from] RuntimeError);

impl WriteError {
    /// The error a request whose state write failed answers with: the one place the
    /// transaction coordinator maps its write failures to Kafka's codes.
    pub fn kafka_error(&self) -> ResponseError {
        match self.0 {
            RuntimeError::NotServed { .. } => ResponseError::NotCoordinator,
            RuntimeError::Encode { .. } => ResponseError::UnknownServerError,
            RuntimeError::Append { .. } => ResponseError::CoordinatorNotAvailable,
        }
    }
}

/// `__transaction_state` as replayed while loading a partition: the last value per id.
struct TxnReplay {
    partition: i32,
    loaded: HashMap<String, TxnValue>,
    failure: Option<LoadError>,
}

impl Replay for TxnReplay {
    fn records(&mut self, _txn: Option<TxnProducer>, records: Vec<(Bytes, Option<Bytes>)>) {
        for (key, value) in records {
            match persist::decode_record(&key, value.as_deref()) {
                Ok((id, Some(value))) => {
                    self.loaded.insert(id, value);
                }
                Ok((id, None)) => {
                    self.loaded.remove(&id);
                }
                Err(source) => {
                    let key = String::from_utf8_lossy(&key).into_owned();
                    self.failure.get_or_insert(LoadError::Record { partition: self.partition, key, source });
                }
            }
        }
    }

    // The coordinator writes no transactional batches to its own topic.
    fn marker(&mut self, _producer_id: i64, _control: ControlType) {}
}

/// The transaction coordinator of this broker.
pub struct TransactionCoordinator {
    settings: TxnSettings,
    /// The `__transaction_state` partitions served here (on a single node, all), and the
    /// path records take to and from them.
    runtime: CoordinatorRuntime,
    txns: Mutex<HashMap<String, TxnValue>>,
    /// The coordinator epoch of each `__transaction_state` partition served here, which
    /// every marker for its transactions carries.
    coordinator_epochs: Mutex<HashMap<i32, i32>>,
    /// Start, update and timeout times of transactions.
    clock: Arc<dyn Clock>,
}

impl TransactionCoordinator {
    /// A coordinator that serves no partition yet; see [`Self::load_partition`].
    pub fn new(settings: TxnSettings, num_partitions: i32) -> Self {
        Self {
            settings,
            runtime: CoordinatorRuntime::new(TRANSACTION_STATE_TOPIC, num_partitions),
            txns: Mutex::new(HashMap::new()),
            coordinator_epochs: Mutex::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same coordinator reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Says that partition `partition` is about to be loaded.
    pub fn mark_loading(&self, partition: i32) {
        self.runtime.mark_loading(partition);
    }

    /// `None` when `partition` is served here, else COORDINATOR_LOAD_IN_PROGRESS while it
    /// loads or NOT_COORDINATOR.
    pub fn partition_status(&self, partition: i32) -> Option<ResponseError> {
        self.runtime.status(partition)
    }

    /// Whether this coordinator serves `transactional_id`: `None` when it does, else
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
    pub fn status(&self, transactional_id: &str) -> Option<ResponseError> {
        self.runtime.status(self.partition_of(transactional_id))
    }

    /// Replays one partition of `__transaction_state` and starts serving its ids, as the
    /// coordinator of `coordinator_epoch` (the partition's leader epoch now). Call
    /// [`Self::recover`] afterwards, once markers can be written.
    pub fn load_partition(
        &self,
        partition: i32,
        log: Arc<PartitionLog>,
        coordinator_epoch: i32,
    ) -> Result<(), LoadError> {
        let mut replay = TxnReplay { partition, loaded: HashMap::new(), failure: None };
        self.runtime.load(partition, &log, &mut replay).map_err(|source| LoadError::Read { partition, source })?;
        let TxnReplay { loaded, failure, .. } = replay;
        if let Some(e) = failure {
            self.runtime.finish_loading(partition, None);
            return Err(e);
        }
        let count = loaded.len();
        {
            let mut txns = self.lock();
            txns.extend(loaded);
            self.epochs().insert(partition, coordinator_epoch);
            self.runtime.finish_loading(partition, Some(log));
        }
        tracing::debug!(
            partition,
            coordinator_epoch,
            transactional_ids = count,
            "transaction coordinator loaded a partition"
        );
        Ok(())
    }

    /// Stops serving the ids of `partition` (another broker leads it now).
    pub fn unload_partition(&self, partition: i32) {
        if !self.runtime.remove(partition) {
            return;
        }
        let mut txns = self.lock();
        txns.retain(|id, _| self.partition_of(id) != partition);
        self.epochs().remove(&partition);
        drop(txns);
        tracing::info!(partition, "transaction coordinator unloaded a __transaction_state partition");
    }

    /// Builds a coordinator serving every partition of `logs` (a single node), each with
    /// the leader epoch its log last had. Call [`Self::recover`] once the broker can write
    /// markers.
    pub fn load(settings: TxnSettings, logs: Vec<Arc<PartitionLog>>) -> Result<Self, LoadError> {
        let coordinator = Self::new(settings, logs.len() as i32);
        for (index, log) in logs.into_iter().enumerate() {
            let epoch = log.latest_epoch().unwrap_or(0);
            coordinator.load_partition(index as i32, log, epoch)?;
        }
        Ok(coordinator)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, TxnValue>> {
        self.txns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken only briefly, inside [`Self::lock`] when both are held.
    fn epochs(&self) -> MutexGuard<'_, HashMap<i32, i32>> {
        self.coordinator_epochs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        internal_topic::partition_for(transactional_id, self.runtime.count())
    }

    fn persist(&self, transactional_id: &str, value: &TxnValue) -> Result<(), ResponseError> {
        self.write(transactional_id, value).map_err(|e| {
            tracing::error!(transactional_id, error = %e, "writing __transaction_state failed");
            e.kafka_error()
        })
    }

    fn write(&self, transactional_id: &str, value: &TxnValue) -> Result<(), WriteError> {
        let record = persist::encode_record(transactional_id, Some(value));
        self.runtime.write(self.partition_of(transactional_id), &[record], self.clock.now_ms(), None)?;
        Ok(())
    }

    /// Finishes every transaction whose outcome was decided before a restart.
    pub fn recover(&self, sink: &dyn MarkerSink) {
        let mut txns = self.lock();
        let ids: Vec<String> = txns
            .iter()
            .filter(|(_, v)| matches!(v.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let Some(value) = txns.get_mut(&id) else { continue };
            let commit = value.state == TxnState::PrepareCommit;
            tracing::info!(transactional_id = %id, commit, "completing a transaction decided before the restart");
            if let Err(e) = self.write_markers_and_complete(&id, value, commit, sink) {
                tracing::error!(transactional_id = %id, error = ?e, "completing transaction failed; retried later");
            }
        }
    }

    /// Writes the markers of a transaction already in a Prepare state, then its Complete
    /// state.
    fn write_markers_and_complete(
        &self,
        id: &str,
        value: &mut TxnValue,
        commit: bool,
        sink: &dyn MarkerSink,
    ) -> Result<(), ResponseError> {
        let control = if commit { ControlType::Commit } else { ControlType::Abort };
        let state_partition = self.partition_of(id);
        let Some(coordinator_epoch) = self.epochs().get(&state_partition).copied() else {
            // Unloaded meanwhile: the partition's new coordinator completes the transaction.
            tracing::info!(transactional_id = id, partition = state_partition, "no markers written: not coordinator");
            return Err(ResponseError::NotCoordinator);
        };
        if let Err(e) = sink.decision_stored(state_partition) {
            tracing::warn!(transactional_id = id, error = %e, "no markers written yet");
            return Err(e.kafka_error());
        }
        for (topic, partition) in &value.partitions {
            if let Err(e) = sink.write_marker(
                topic,
                *partition,
                value.producer_id,
                value.producer_epoch,
                control,
                coordinator_epoch,
            ) {
                tracing::error!(transactional_id = id, topic, partition, error = %e, "writing a transaction marker failed");
                return Err(e.kafka_error());
            }
        }
        let mut next = value.clone();
        next.state = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        next.partitions.clear();
        next.txn_start_ms = -1;
        next.last_update_ms = self.clock.now_ms();
        self.persist(id, &next)?;
        *value = next;
        Ok(())
    }

    /// Decides the outcome (persisting the Prepare state), then writes markers and the
    /// Complete state.
    fn end(&self, id: &str, value: &mut TxnValue, commit: bool, sink: &dyn MarkerSink) -> Result<(), ResponseError> {
        let mut prepared = value.clone();
        prepared.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        prepared.last_update_ms = self.clock.now_ms();
        self.persist(id, &prepared)?;
        *value = prepared;
        tracing::debug!(transactional_id = id, commit, partitions = value.partitions.len(), "ending transaction");
        self.write_markers_and_complete(id, value, commit, sink)
    }

    /// InitProducerId with a transactional id. `fresh_producer_id` is used when the id is
    /// new or its epoch is exhausted; `expected` is the KIP-360 current id and epoch.
    pub fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        fresh_producer_id: i64,
        sink: &dyn MarkerSink,
    ) -> Result<ProducerIdAndEpoch, ResponseError> {
        if let Some(error) = self.status(id) {
            return Err(error);
        }
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let mut txns = self.lock();
        let now = self.clock.now_ms();
        let mut value = match txns.get(id) {
            Some(value) => value.clone(),
            None => TxnValue {
                producer_id: fresh_producer_id,
                last_producer_id: -1,
                producer_epoch: -1,
                last_producer_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                txn_start_ms: -1,
                last_update_ms: now,
            },
        };
        if let Some(expected) = expected {
            let current = expected.producer_id == value.producer_id && expected.producer_epoch == value.producer_epoch;
            let retried = expected.producer_id == value.last_producer_id
                && expected.producer_epoch == value.last_producer_epoch
                && value.state != TxnState::Ongoing;
            if retried {
                // The bump this producer asked for already happened; answer it again.
                return Ok(ProducerIdAndEpoch { producer_id: value.producer_id, producer_epoch: value.producer_epoch });
            }
            if !current {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match value.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions);
            }
            TxnState::Ongoing => {
                // A new incarnation of the producer: fence the old one by bumping the epoch
                // and abort its transaction with the new epoch. The new producer continues
                // with that epoch, since the old one can no longer use it.
                value.last_producer_id = value.producer_id;
                value.last_producer_epoch = value.producer_epoch;
                value.producer_epoch = value.producer_epoch.saturating_add(1);
                tracing::info!(
                    transactional_id = id,
                    epoch = value.producer_epoch,
                    "fencing the previous producer and aborting its transaction"
                );
                self.end(id, &mut value, false, sink)?;
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
                value.last_producer_id = value.producer_id;
                value.last_producer_epoch = value.producer_epoch;
                if value.producer_epoch >= i16::MAX - 1 {
                    // Epoch exhausted: continue under a new producer id (Kafka does the same).
                    value.producer_id = fresh_producer_id;
                    value.producer_epoch = 0;
                } else {
                    value.producer_epoch += 1;
                }
                value.state = if value.state == TxnState::Dead { TxnState::Empty } else { value.state };
            }
        }
        value.timeout_ms = timeout_ms;
        value.last_update_ms = now;
        self.persist(id, &value)?;
        let result = ProducerIdAndEpoch { producer_id: value.producer_id, producer_epoch: value.producer_epoch };
        txns.insert(id.to_string(), value);
        Ok(result)
    }

    fn check_producer(value: &TxnValue, producer_id: i64, producer_epoch: i16) -> Result<(), ResponseError> {
        if value.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if value.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `partitions` join the producer's transaction,
    /// opening one if none is open. With `verify_only` (KIP-890) nothing is added: the
    /// call only checks that they already are in the open transaction.
    pub fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        verify_only: bool,
    ) -> Result<(), ResponseError> {
        if let Some(error) = self.status(id) {
            return Err(error);
        }
        let mut txns = self.lock();
        let value = txns.get_mut(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        Self::check_producer(value, producer_id, producer_epoch)?;
        if verify_only {
            let all_in = value.state == TxnState::Ongoing
                && partitions.iter().all(|(t, p)| value.partitions.contains(&(t.clone(), *p)));
            return if all_in { Ok(()) } else { Err(ResponseError::InvalidTxnState) };
        }
        match value.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Dead => return Err(ResponseError::InvalidTxnState),
            TxnState::Ongoing if partitions.iter().all(|(t, p)| value.partitions.contains(&(t.clone(), *p))) => {
                return Ok(());
            }
            _ => {}
        }
        let mut next = value.clone();
        let now = self.clock.now_ms();
        if next.state != TxnState::Ongoing {
            next.state = TxnState::Ongoing;
            next.partitions.clear();
            next.txn_start_ms = now;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        self.persist(id, &next)?;
        *value = next;
        Ok(())
    }

    /// EndTxn.
    pub fn end_txn(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        sink: &dyn MarkerSink,
    ) -> Result<ProducerIdAndEpoch, ResponseError> {
        if let Some(error) = self.status(id) {
            return Err(error);
        }
        let mut txns = self.lock();
        let value = txns.get_mut(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        Self::check_producer(value, producer_id, producer_epoch)?;
        let current = ProducerIdAndEpoch { producer_id: value.producer_id, producer_epoch: value.producer_epoch };
        match value.state {
            TxnState::Ongoing => self.end(id, value, commit, sink).map(|()| current),
            // A retry of an EndTxn that already completed.
            TxnState::CompleteCommit if commit => Ok(current),
            TxnState::CompleteAbort if !commit => Ok(current),
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Checks a transactional produce to `topic`-`partition` (KIP-890's server-side
    /// verification) and runs `append` while the check still holds: the partition must be
    /// in the producer's open transaction. Holding the coordinator's lock across the append
    /// means an EndTxn or a timeout abort cannot write its marker between the check and the
    /// append, so a late batch can never open a transaction that no marker will close.
    pub fn append_verified<R>(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
        append: impl FnOnce() -> R,
    ) -> Result<R, ResponseError> {
        let txns = self.lock();
        let Some(value) = txns.get(id) else { return Err(ResponseError::InvalidProducerIdMapping) };
        if value.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if producer_epoch < value.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if value.producer_epoch != producer_epoch
            || value.state != TxnState::Ongoing
            || !value.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(append())
    }

    /// Checks a TxnOffsetCommit's producer against its transaction.
    pub fn verify_offsets(&self, id: &str, producer_id: i64, producer_epoch: i16) -> Result<(), ResponseError> {
        if let Some(error) = self.status(id) {
            return Err(error);
        }
        let txns = self.lock();
        let value = txns.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        Self::check_producer(value, producer_id, producer_epoch)?;
        if value.state != TxnState::Ongoing {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// Aborts every transaction open for longer than its timeout, fencing its producer
    /// with a bumped epoch as Kafka does (`abortTimedOutTransactions`).
    pub fn abort_timed_out(&self, sink: &dyn MarkerSink) {
        let now = self.clock.now_ms();
        let mut txns = self.lock();
        let expired: Vec<String> = txns
            .iter()
            .filter(|(_, v)| v.state == TxnState::Ongoing && v.txn_start_ms + i64::from(v.timeout_ms) < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(value) = txns.get_mut(&id) else { continue };
            let mut fenced = value.clone();
            fenced.last_producer_id = fenced.producer_id;
            fenced.last_producer_epoch = fenced.producer_epoch;
            fenced.producer_epoch = fenced.producer_epoch.saturating_add(1);
            tracing::info!(transactional_id = %id, timeout_ms = fenced.timeout_ms, "aborting a timed-out transaction");
            match self.end(&id, &mut fenced, false, sink) {
                Ok(()) => *value = fenced,
                Err(e) => tracing::error!(transactional_id = %id, error = ?e, "aborting timed-out transaction failed"),
            }
        }
        // Outcomes decided but not completed (a marker write failed) are retried here.
        drop(txns);
        self.recover(sink);
    }

    /// DescribeTransactions: `None` for an unknown id.
    pub fn describe(&self, id: &str) -> Option<TxnValue> {
        self.lock().get(id).cloned()
    }

    /// ListTransactions: every transactional id with its state, sorted by id.
    pub fn list(&self) -> Vec<TxnDescription> {
        let mut all: Vec<TxnDescription> = self
            .lock()
            .iter()
            .map(|(id, value)| TxnDescription { transactional_id: id.clone(), value: value.clone() })
            .collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use rivulet_storage::{AppendOptions, AppendOrigin, Isolation, LogClass, LogId, Store, StoreOptions};

    /// Writes markers into real partition logs, as the broker does; `fail` simulates a
    /// crash between deciding an outcome and writing its markers.
    struct LogSink {
        logs: HashMap<(String, i32), Arc<PartitionLog>>,
        fail: std::cell::Cell<bool>,
        /// The coordinator epoch of every marker written, in order.
        epochs: std::cell::RefCell<Vec<i32>>,
    }

    impl MarkerSink for LogSink {
        fn write_marker(
            &self,
            topic: &str,
            partition: i32,
            pid: i64,
            epoch: i16,
            control: ControlType,
            coordinator_epoch: i32,
        ) -> Result<(), MarkerError> {
            let no_leader = || MarkerError::NoLeader { topic: topic.to_string(), partition };
            if self.fail.get() {
                // A crash: no broker takes the marker.
                return Err(no_leader());
            }
            let log = self.logs.get(&(topic.to_string(), partition)).ok_or_else(no_leader)?;
            log.append_marker(pid, epoch, control, coordinator_epoch, 0, 1).map_err(|source| MarkerError::Append {
                topic: topic.to_string(),
                partition,
                source,
            })?;
            self.epochs.borrow_mut().push(coordinator_epoch);
            Ok(())
        }
    }

    fn open(store: &Store, clock: Arc<ManualClock>) -> (TransactionCoordinator, LogSink) {
        let state_logs =
            (0..3).map(|i| Arc::new(store.open_log(LogId(100 + i), LogClass::Internal).unwrap())).collect();
        let coordinator =
            TransactionCoordinator::load(TxnSettings { max_timeout_ms: 60_000 }, state_logs).unwrap().with_clock(clock);
        let data = Arc::new(store.open_log(LogId(1), LogClass::User).unwrap());
        let sink = LogSink {
            logs: [(("t".to_string(), 0), data)].into_iter().collect(),
            fail: false.into(),
            epochs: Default::default(),
        };
        (coordinator, sink)
    }

    fn txn_batch(pid: i64, epoch: i16, sequence: i32) -> bytes::Bytes {
        rivulet_protocol::record_batch::BatchBuilder::new()
            .producer(pid, epoch, sequence)
            .transactional(true)
            .record(1, Some(bytes::Bytes::from_static(b"k")), Some(bytes::Bytes::from_static(b"v")))
            .build()
            .unwrap()
    }

    fn client_append(
        sink: &LogSink,
        batch: &[u8],
    ) -> Result<rivulet_storage::AppendOutcome, rivulet_storage::AppendError> {
        let options = AppendOptions {
            leader_epoch: 0,
            max_batch_bytes: 1 << 20,
            log_append_time_ms: None,
            origin: AppendOrigin::Client,
        };
        sink.logs[&("t".to_string(), 0)].append(batch, &options)
    }

    #[test]
    fn commit_abort_fencing_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (coordinator, sink) = open(&store, clock.clone());
        let t0 = vec![("t".to_string(), 0)];
        assert_eq!(
            coordinator.init_producer_id("app", 120_000, None, 7, &sink),
            Err(ResponseError::InvalidTransactionTimeout)
        );
        let first = coordinator.init_producer_id("app", 1_000, None, 7, &sink).unwrap();
        assert_eq!(first, ProducerIdAndEpoch { producer_id: 7, producer_epoch: 0 });
        assert_eq!(coordinator.append_verified("app", 7, 0, "t", 0, || ()), Err(ResponseError::InvalidTxnState));
        coordinator.add_partitions("app", 7, 0, &t0, false).unwrap();
        coordinator.append_verified("app", 7, 0, "t", 0, || ()).unwrap();
        client_append(&sink, &txn_batch(7, 0, 0)).unwrap();
        coordinator.end_txn("app", 7, 0, true, &sink).unwrap();
        let log = &sink.logs[&("t".to_string(), 0)];
        assert_eq!((log.last_stable_offset(), log.high_watermark()), (2, 2));
        // A retried EndTxn is answered again; the opposite outcome is refused.
        coordinator.end_txn("app", 7, 0, true, &sink).unwrap();
        assert_eq!(coordinator.end_txn("app", 7, 0, false, &sink), Err(ResponseError::InvalidTxnState));

        // A new incarnation fences the old one and aborts its open transaction.
        coordinator.add_partitions("app", 7, 0, &t0, false).unwrap();
        client_append(&sink, &txn_batch(7, 0, 1)).unwrap();
        assert_eq!(log.last_stable_offset(), 2);
        let second = coordinator.init_producer_id("app", 1_000, None, 8, &sink).unwrap();
        assert_eq!(second, ProducerIdAndEpoch { producer_id: 7, producer_epoch: 1 });
        assert_eq!(log.last_stable_offset(), 4);
        assert_eq!(log.read_with(0, 1 << 20, true, Isolation::ReadCommitted).unwrap().aborted.unwrap().len(), 1);
        assert_eq!(coordinator.add_partitions("app", 7, 0, &t0, false), Err(ResponseError::ProducerFenced));
        assert_eq!(coordinator.end_txn("app", 7, 0, true, &sink), Err(ResponseError::ProducerFenced));
        assert!(client_append(&sink, &txn_batch(7, 0, 2)).is_err());

        // An open transaction past its timeout is aborted with a bumped epoch.
        coordinator.add_partitions("app", 7, 1, &t0, false).unwrap();
        client_append(&sink, &txn_batch(7, 1, 0)).unwrap();
        coordinator.abort_timed_out(&sink);
        assert_eq!(coordinator.describe("app").unwrap().state, TxnState::Ongoing);
        // Exactly at its timeout (1,000 ms) the transaction is still open; 1 ms later it is not.
        clock.advance(1_000);
        coordinator.abort_timed_out(&sink);
        assert_eq!(coordinator.describe("app").unwrap().state, TxnState::Ongoing);
        clock.advance(1);
        coordinator.abort_timed_out(&sink);
        let value = coordinator.describe("app").unwrap();
        assert_eq!((value.state, value.producer_epoch), (TxnState::CompleteAbort, 2));
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        assert_eq!(coordinator.end_txn("app", 7, 1, true, &sink), Err(ResponseError::ProducerFenced));
    }

    #[test]
    fn a_decided_commit_is_completed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        {
            let (coordinator, sink) = open(&store, Arc::new(ManualClock::new(1_000_000)));
            coordinator.init_producer_id("app", 10_000, None, 3, &sink).unwrap();
            coordinator.add_partitions("app", 3, 0, &[("t".to_string(), 0)], false).unwrap();
            client_append(&sink, &txn_batch(3, 0, 0)).unwrap();
            // The commit is decided and persisted, then the markers fail: a crash.
            sink.fail.set(true);
            assert_eq!(coordinator.end_txn("app", 3, 0, true, &sink), Err(ResponseError::CoordinatorNotAvailable));
            assert_eq!(coordinator.describe("app").unwrap().state, TxnState::PrepareCommit);
            assert_eq!(sink.logs[&("t".to_string(), 0)].last_stable_offset(), 0);
        }
        let (coordinator, sink) = open(&store, Arc::new(ManualClock::new(1_000_000)));
        assert_eq!(coordinator.describe("app").unwrap().state, TxnState::PrepareCommit);
        coordinator.recover(&sink);
        assert_eq!(coordinator.describe("app").unwrap().state, TxnState::CompleteCommit);
        let log = &sink.logs[&("t".to_string(), 0)];
        assert_eq!(log.last_stable_offset(), 2);
        assert_eq!(log.read_with(0, 1 << 20, true, Isolation::ReadCommitted).unwrap().aborted, Some(vec![]));
        // The producer id and epoch survive, so a restarted producer is bumped, not reset.
        let next = coordinator.init_producer_id("app", 10_000, None, 99, &sink).unwrap();
        assert_eq!(next, ProducerIdAndEpoch { producer_id: 3, producer_epoch: 1 });
        assert_eq!(coordinator.list().len(), 1);
    }

    #[test]
    fn markers_carry_the_epoch_their_partition_was_loaded_with() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let state_logs: Vec<Arc<PartitionLog>> =
            (0..3).map(|i| Arc::new(store.open_log(LogId(100 + i), LogClass::Internal).unwrap())).collect();
        let settings = TxnSettings { max_timeout_ms: 60_000 };
        let load = |base_epoch: i32| {
            let coordinator = TransactionCoordinator::new(settings, 3).with_clock(clock.clone());
            for (i, log) in state_logs.iter().enumerate() {
                coordinator.load_partition(i as i32, log.clone(), base_epoch + i as i32).unwrap();
            }
            coordinator
        };
        let old = load(10);
        let data = Arc::new(store.open_log(LogId(1), LogClass::User).unwrap());
        let sink = LogSink {
            logs: [(("t".to_string(), 0), data)].into_iter().collect(),
            fail: false.into(),
            epochs: Default::default(),
        };
        let t0 = vec![("t".to_string(), 0)];
        let old_epoch = 10 + old.partition_of("app");
        old.init_producer_id("app", 10_000, None, 7, &sink).unwrap();
        old.add_partitions("app", 7, 0, &t0, false).unwrap();
        client_append(&sink, &txn_batch(7, 0, 0)).unwrap();
        old.end_txn("app", 7, 0, true, &sink).unwrap();
        assert_eq!(*sink.epochs.borrow(), vec![old_epoch]);

        // The next commit is decided, but its markers are lost with the old coordinator.
        old.add_partitions("app", 7, 0, &t0, false).unwrap();
        client_append(&sink, &txn_batch(7, 0, 1)).unwrap();
        sink.fail.set(true);
        assert!(old.end_txn("app", 7, 0, true, &sink).is_err());
        sink.fail.set(false);

        // The partition's next leader completes it with its own, newer epoch.
        let new = load(20);
        let new_epoch = 20 + new.partition_of("app");
        new.recover(&sink);
        assert_eq!(new.describe("app").unwrap().state, TxnState::CompleteCommit);
        assert_eq!(*sink.epochs.borrow(), vec![old_epoch, new_epoch]);

        // The deposed coordinator's retry is fenced and leaves its copy of the transaction
        // prepared: completing it is no longer its job.
        old.recover(&sink);
        assert_eq!(old.describe("app").unwrap().state, TxnState::PrepareCommit);
        assert_eq!(*sink.epochs.borrow(), vec![old_epoch, new_epoch]);
        assert!(matches!(
            sink.write_marker("t", 0, 7, 0, ControlType::Commit, old_epoch),
            Err(MarkerError::Append { source: AppendError::TransactionCoordinatorFenced { .. }, .. })
        ));

        // A partition that is no longer served gets no marker at all.
        old.unload_partition(old.partition_of("app"));
        old.abort_timed_out(&sink);
        assert_eq!(*sink.epochs.borrow(), vec![old_epoch, new_epoch]);
    }
}
