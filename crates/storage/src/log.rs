//! One partition's log: append, read, and offset lookups.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use rivulet_protocol::record_batch::{self, BatchError, BatchHeader, ControlType, EndTxnMarker};
use rocksdb::{DBRawIterator, ReadOptions, WriteBatch};

use crate::error::{AppendError, StorageError};
use crate::keys;
use crate::producer_state::{BatchMetadata, ProducerEntry, SequenceCheck, NO_COORDINATOR_EPOCH};
use crate::store::{LogClass, LogId, Store};

mod compaction;
mod lifecycle;
mod replication;

pub use compaction::{CleanOptions, Cleaned};
pub use lifecycle::{RetentionLimits, RetentionPoint, Trimmed};

/// Who wrote a batch (Kafka's `AppendOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendOrigin {
    /// A producer: sequences are checked and control batches refused.
    #[default]
    Client,
    /// The broker's own coordinators: transactional offset commits carry the producer's
    /// id and epoch but no sequence (-1), so only the epoch is checked.
    Coordinator,
}

/// Which records a reader may see (Fetch and ListOffsets `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Everything up to the high watermark.
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset, with the aborted transactions listed.
    ReadCommitted,
    /// Everything appended, up to the log end: what a follower replicates.
    Replica,
}

/// One aborted transaction as listed in a read_committed Fetch response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset right after the abort.
    pub last_stable_offset: i64,
}

/// How to append one batch.
#[derive(Debug, Clone, Copy)]
pub struct AppendOptions {
    /// Written into the batch's `partition_leader_epoch`; -1 means the log's latest epoch
    /// (for the broker's own coordinators, which do not track leadership).
    pub leader_epoch: i32,
    /// `max.message.bytes` of the topic: bigger batches get MESSAGE_TOO_LARGE.
    pub max_batch_bytes: usize,
    /// `Some(now)` when the topic uses `message.timestamp.type=LogAppendTime`.
    pub log_append_time_ms: Option<i64>,
    pub origin: AppendOrigin,
}

/// Where an appended (or recognised duplicate) batch sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's append time for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already in the log; nothing was written.
    pub duplicate: bool,
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct FetchedData {
    /// Whole batches, concatenated exactly as stored.
    pub records: Bytes,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// For read_committed reads: every aborted transaction overlapping `records`.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLookup {
    pub offset: i64,
    pub timestamp: i64,
}

/// What a written marker changes in memory.
struct MarkerChange {
    /// Size of the marker batch, added to the log's size.
    bytes: i64,
    producer_id: i64,
    entry: ProducerEntry,
    ended_txn_first_offset: Option<i64>,
}

/// The state of a producer after a data batch at `base_offset`. `unsequenced` batches are
/// a coordinator's (no sequence to track). Returns whether the batch opened a transaction.
fn producer_after_batch(
    previous: Option<&ProducerEntry>,
    header: &BatchHeader,
    unsequenced: bool,
    base_offset: i64,
    max_timestamp: i64,
) -> (ProducerEntry, bool) {
    let mut next = if unsequenced {
        match previous {
            Some(e) if e.epoch == header.producer_epoch => e.clone(),
            other => ProducerEntry {
                epoch: header.producer_epoch,
                batches: Default::default(),
                current_txn_first_offset: other.and_then(|e| e.current_txn_first_offset),
                last_timestamp: max_timestamp,
                coordinator_epoch: other.map_or(NO_COORDINATOR_EPOCH, |e| e.coordinator_epoch),
            },
        }
    } else {
        let meta = BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            first_offset: base_offset,
            last_offset: base_offset + i64::from(header.last_offset_delta),
            max_timestamp,
        };
        ProducerEntry::after_append(previous, header.producer_epoch, meta)
    };
    next.last_timestamp = max_timestamp;
    let started = header.is_transactional() && next.current_txn_first_offset.is_none();
    if started {
        next.current_txn_first_offset = Some(base_offset);
    }
    (next, started)
}

#[derive(Debug)]
struct LogState {
    log_start_offset: i64,
    log_end_offset: i64,
    /// Largest max-timestamp appended so far; the time index records each increase.
    max_timestamp: i64,
    /// Bytes of the batches in `[log_start_offset, log_end_offset)`, as persisted under
    /// [`keys::SIZE_SUFFIX`].
    size_bytes: i64,
    /// Compacted logs: everything below was cleaned, and held `clean_bytes` then.
    cleaner_checkpoint: i64,
    clean_bytes: i64,
    /// Bumped by every truncation, so a cleaning that began before one does not write.
    truncations: u64,
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id. The smallest key is the last
    /// stable offset.
    ongoing: BTreeMap<i64, i64>,
    /// Set once the log has more than one replica: the high watermark is then advanced by
    /// the replication layer instead of following the log end.
    replicated: bool,
    /// The high watermark of a replicated log (ignored otherwise).
    high_watermark: i64,
    /// Leader epoch → offset of its first batch (Kafka's `LeaderEpochFileCache`).
    epochs: BTreeMap<i32, i64>,
}

impl LogState {
    fn new(log_start_offset: i64) -> Self {
        Self {
            log_start_offset,
            log_end_offset: log_start_offset,
            max_timestamp: i64::MIN,
            size_bytes: 0,
            cleaner_checkpoint: log_start_offset,
            clean_bytes: 0,
            truncations: 0,
            producers: HashMap::new(),
            ongoing: BTreeMap::new(),
            replicated: false,
            high_watermark: log_start_offset,
            epochs: BTreeMap::new(),
        }
    }

    /// On a single replica every appended batch is committed, so the high watermark is the
    /// log end offset.
    fn high_watermark(&self) -> i64 {
        if self.replicated {
            self.high_watermark.min(self.log_end_offset)
        } else {
            self.log_end_offset
        }
    }

    fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.ongoing.keys().next().map_or(hw, |&first| first.min(hw))
    }

    fn latest_epoch(&self) -> Option<i32> {
        self.epochs.keys().next_back().copied()
    }

    fn apply_marker(&mut self, change: MarkerChange, new_epoch: Option<(i32, i64)>, offset: i64, timestamp: i64) {
        if let Some(first) = change.ended_txn_first_offset {
            self.ongoing.remove(&first);
        }
        if let Some((epoch, start)) = new_epoch {
            self.epochs.insert(epoch, start);
        }
        self.log_end_offset = offset + 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.size_bytes += change.bytes;
        self.producers.insert(change.producer_id, change.entry);
    }
}

/// One partition's log. Appends are serialised by an internal mutex; reads are lock-free
/// apart from reading the end offset.
pub struct PartitionLog {
    store: Store,
    id: LogId,
    class: LogClass,
    state: Mutex<LogState>,
    /// Serialises moving the log start offset (retention, DeleteRecords, a follower
    /// following its leader) without blocking appends during the scan it needs.
    trim: Mutex<()>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog").field("id", &self.id).field("class", &self.class).finish()
    }
}

fn corrupt(what: &'static str, reason: impl ToString) -> StorageError {
    StorageError::Corrupt { what, reason: reason.to_string() }
}

fn read_i64(bytes: &[u8], what: &'static str) -> Result<i64, StorageError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| corrupt(what, "value is not 8 bytes"))?;
    Ok(i64::from_be_bytes(array))
}

impl PartitionLog {
    pub(crate) fn open(store: Store, id: LogId, class: LogClass) -> Result<Self, StorageError> {
        let log_start_offset = match store.inner.db.get_cf(store.cf(keys::CF_PARTITION_STATE)?, id.0.to_be_bytes())? {
            Some(v) => read_i64(&v, "partition state")?,
            None => 0,
        };
        let log = Self { store, id, class, state: Mutex::new(LogState::new(log_start_offset)), trim: Mutex::new(()) };
        let mut recovered = LogState::new(log_start_offset);
        {
            let mut iter = log.iter(class.column_family())?;
            iter.seek_to_last();
            if iter.valid() {
                let value = iter.value().ok_or_else(|| corrupt("log", "iterator without value"))?;
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                recovered.log_end_offset = header.last_offset() + 1;
            }
            iter.status()?;
            let mut index = log.iter(keys::CF_TIME_INDEX)?;
            index.seek_to_last();
            if let Some((_, component)) = index.key().and_then(keys::split_key) {
                recovered.max_timestamp = keys::timestamp_from_component(component);
            }
            index.status()?;
            let mut producers = log.iter(keys::CF_PRODUCER_STATE)?;
            producers.seek_to_first();
            while producers.valid() {
                let (Some(key), Some(value)) = (producers.key(), producers.value()) else { break };
                let (_, producer_id) = keys::split_key(key).ok_or_else(|| corrupt("producer state", "short key"))?;
                let entry = ProducerEntry::decode(value)?;
                if let Some(first) = entry.current_txn_first_offset {
                    recovered.ongoing.insert(first, producer_id as i64);
                }
                recovered.producers.insert(producer_id as i64, entry);
                producers.next();
            }
            producers.status()?;
            let mut epochs = log.iter(keys::CF_LEADER_EPOCHS)?;
            epochs.seek_to_first();
            while epochs.valid() {
                let (Some(key), Some(value)) = (epochs.key(), epochs.value()) else { break };
                let (_, epoch) = keys::split_key(key).ok_or_else(|| corrupt("leader epochs", "short key"))?;
                recovered.epochs.insert(epoch as i32, read_i64(value, "leader epochs")?);
                epochs.next();
            }
            epochs.status()?;
        }
        if recovered.epochs.is_empty() && recovered.log_end_offset > recovered.log_start_offset {
            // Logs written before epochs were cached: their first batch names the epoch.
            let mut iter = log.iter(class.column_family())?;
            iter.seek_to_first();
            if let Some(value) = iter.value() {
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                recovered.epochs.insert(header.partition_leader_epoch.max(0), header.base_offset);
            }
        }
        recovered.size_bytes =
            match log.store.inner.db.get_cf(log.store.cf(keys::CF_PARTITION_STATE)?, log.size_key())? {
                Some(v) => read_i64(&v, "log size")?,
                // Written before sizes were kept: measured once, then kept up to date.
                None if recovered.log_end_offset > recovered.log_start_offset => {
                    let size = log.measure_size()?;
                    log.store.inner.db.put_cf(
                        log.store.cf(keys::CF_PARTITION_STATE)?,
                        log.size_key(),
                        size.to_be_bytes(),
                    )?;
                    size
                }
                None => 0,
            };
        if let Some(v) = log.store.inner.db.get_cf(log.store.cf(keys::CF_PARTITION_STATE)?, log.checkpoint_key())? {
            if v.len() != 16 {
                return Err(corrupt("cleaner checkpoint", "value is not 16 bytes"));
            }
            let offset = read_i64(&v[..8], "cleaner checkpoint")?;
            recovered.cleaner_checkpoint = offset.clamp(recovered.log_start_offset, recovered.log_end_offset);
            recovered.clean_bytes = read_i64(&v[8..], "cleaner checkpoint")?.clamp(0, recovered.size_bytes);
        }
        let checkpoint = log.store.inner.db.get_cf(log.store.cf(keys::CF_PARTITION_STATE)?, log.hw_key())?;
        recovered.high_watermark = match checkpoint {
            Some(v) => read_i64(&v, "high watermark")?.min(recovered.log_end_offset),
            None => recovered.log_end_offset,
        };
        *log.lock() = recovered;
        Ok(log)
    }

    pub fn id(&self) -> LogId {
        self.id
    }

    fn hw_key(&self) -> [u8; 16] {
        keys::log_key(self.id.0, keys::HIGH_WATERMARK_SUFFIX)
    }

    fn size_key(&self) -> [u8; 16] {
        keys::log_key(self.id.0, keys::SIZE_SUFFIX)
    }

    /// Stages the log's new size in `write`.
    fn stage_size(&self, write: &mut WriteBatch, size_bytes: i64) -> Result<(), StorageError> {
        write.put_cf(self.store.cf(keys::CF_PARTITION_STATE)?, self.size_key(), size_bytes.to_be_bytes());
        Ok(())
    }

    /// Sums the sizes of every stored batch (only for logs written before sizes were kept).
    fn measure_size(&self) -> Result<i64, StorageError> {
        let mut size = 0i64;
        let mut iter = self.iter(self.class.column_family())?;
        iter.seek_to_first();
        while let Some(value) = iter.value() {
            size += value.len() as i64;
            iter.next();
        }
        iter.status()?;
        Ok(size)
    }

    /// Records in `write` that `epoch` starts at `offset` when it is newer than every
    /// epoch seen; returns the entry to add to the cache once the write succeeded.
    fn note_epoch(
        &self,
        state: &LogState,
        write: &mut WriteBatch,
        epoch: i32,
        offset: i64,
    ) -> Result<Option<(i32, i64)>, StorageError> {
        if epoch < 0 || state.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return Ok(None);
        }
        write.put_cf(
            self.store.cf(keys::CF_LEADER_EPOCHS)?,
            keys::log_key(self.id.0, epoch as u64),
            offset.to_be_bytes(),
        );
        Ok(Some((epoch, offset)))
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the state half-updated (it is only
        // replaced after a successful write), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A raw iterator over this log's key range in `cf`.
    fn iter(&self, cf: &'static str) -> Result<DBRawIterator<'_>, StorageError> {
        let (from, to) = keys::log_range(self.id.0);
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(from.to_vec());
        opts.set_iterate_upper_bound(to.to_vec());
        Ok(self.store.inner.db.raw_iterator_cf_opt(self.store.cf(cf)?, opts))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.lock().log_end_offset
    }

    /// The offset below which every record is committed (replicated to the whole ISR). On
    /// a single replica this is the log end offset.
    pub fn high_watermark(&self) -> i64 {
        self.lock().high_watermark()
    }

    /// The offset below which every transaction is decided (Kafka's LSO): the first offset
    /// of the oldest open transaction, or the high watermark when none is open.
    pub fn last_stable_offset(&self) -> i64 {
        self.lock().last_stable_offset()
    }

    /// Producers with a transaction open in this log.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.lock().ongoing.iter().map(|(&first, &producer)| (producer, first)).collect()
    }

    /// How many producers this log keeps state for.
    pub fn producer_count(&self) -> usize {
        self.lock().producers.len()
    }

    /// Forgets every producer that has no transaction open here and has not written for
    /// `expiration_ms` (Kafka's `removeExpiredProducers`, run every
    /// `producer.id.expiration.check.interval.ms`), in memory and on disk. Without this,
    /// a log would keep one entry for every idempotent producer that ever wrote to it.
    /// Returns how many were forgotten.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<usize, StorageError> {
        let mut state = self.lock();
        let expired: Vec<i64> = state
            .producers
            .iter()
            .filter(|(_, entry)| entry.is_expired(now_ms, expiration_ms))
            .map(|(&producer_id, _)| producer_id)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let mut write = WriteBatch::default();
        let cf = self.store.cf(keys::CF_PRODUCER_STATE)?;
        for &producer_id in &expired {
            write.delete_cf(cf, keys::log_key(self.id.0, producer_id as u64));
        }
        self.store.write(write)?;
        for producer_id in &expired {
            state.producers.remove(producer_id);
        }
        Ok(expired.len())
    }

    /// Validates `batch`, assigns its offsets and appends it, or recognises it as a retry.
    pub fn append(&self, batch: &[u8], options: &AppendOptions) -> Result<AppendOutcome, AppendError> {
        if batch.len() > options.max_batch_bytes {
            return Err(AppendError::TooLarge { size: batch.len(), max: options.max_batch_bytes });
        }
        let header = record_batch::validate(batch)?;
        if header.is_control() && options.origin == AppendOrigin::Client {
            return Err(BatchError::Invalid("control batches are written only by the broker".into()).into());
        }
        let unsequenced = options.origin == AppendOrigin::Coordinator && header.base_sequence < 0;
        let mut state = self.lock();
        let producer = if header.has_producer_id() {
            let entry = state.producers.get(&header.producer_id);
            if let Some(open) = entry.and_then(|e| e.current_txn_first_offset) {
                if !header.is_transactional() {
                    return Err(AppendError::InvalidTxnState {
                        producer_id: header.producer_id,
                        reason: format!("non-transactional batch while its transaction from offset {open} is open"),
                    });
                }
            }
            if unsequenced {
                if let Some(current) = entry.map(|e| e.epoch).filter(|&e| header.producer_epoch < e) {
                    return Err(AppendError::InvalidProducerEpoch {
                        producer_id: header.producer_id,
                        epoch: header.producer_epoch,
                        current,
                    });
                }
                Some(entry.cloned())
            } else {
                match ProducerEntry::check(
                    entry,
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence,
                    header.last_sequence(),
                )? {
                    SequenceCheck::Duplicate(original) => {
                        return Ok(AppendOutcome {
                            base_offset: original.first_offset,
                            last_offset: original.last_offset,
                            log_append_time_ms: if options.log_append_time_ms.is_some() {
                                original.max_timestamp
                            } else {
                                -1
                            },
                            log_start_offset: state.log_start_offset,
                            duplicate: true,
                        });
                    }
                    SequenceCheck::Append => Some(entry.cloned()),
                }
            }
        } else {
            None
        };

        let base_offset = state.log_end_offset;
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        let leader_epoch =
            if options.leader_epoch < 0 { state.latest_epoch().unwrap_or(0) } else { options.leader_epoch };
        let mut stored = BytesMut::from(batch);
        record_batch::assign_offset(&mut stored, base_offset, leader_epoch);
        let max_timestamp = match options.log_append_time_ms {
            Some(now) => {
                record_batch::set_log_append_time(&mut stored, now);
                now
            }
            None => header.max_timestamp,
        };

        let mut write = WriteBatch::default();
        write.put_cf(
            self.store.cf(self.class.column_family())?,
            keys::log_key(self.id.0, keys::offset_component(base_offset)),
            &stored,
        );
        if max_timestamp > state.max_timestamp {
            write.put_cf(
                self.store.cf(keys::CF_TIME_INDEX)?,
                keys::log_key(self.id.0, keys::timestamp_component(max_timestamp)),
                base_offset.to_be_bytes(),
            );
        }
        let new_epoch = self.note_epoch(&state, &mut write, leader_epoch, base_offset)?;
        let mut started_txn = false;
        let new_producer_entry = producer.map(|previous| {
            let (next, started) =
                producer_after_batch(previous.as_ref(), &header, unsequenced, base_offset, max_timestamp);
            started_txn = started;
            next
        });
        if let Some(entry) = &new_producer_entry {
            write.put_cf(
                self.store.cf(keys::CF_PRODUCER_STATE)?,
                keys::log_key(self.id.0, header.producer_id as u64),
                entry.encode(),
            );
        }
        let size_bytes = state.size_bytes + stored.len() as i64;
        self.stage_size(&mut write, size_bytes)?;
        self.store.write(write)?;

        debug_assert!(last_offset >= state.log_end_offset);
        state.size_bytes = size_bytes;
        if let Some((epoch, start)) = new_epoch {
            state.epochs.insert(epoch, start);
        }
        state.log_end_offset = last_offset + 1;
        state.max_timestamp = state.max_timestamp.max(max_timestamp);
        if let Some(entry) = new_producer_entry {
            state.producers.insert(header.producer_id, entry);
        }
        if started_txn {
            state.ongoing.insert(base_offset, header.producer_id);
        }
        Ok(AppendOutcome {
            base_offset,
            last_offset,
            log_append_time_ms: options.log_append_time_ms.unwrap_or(-1),
            log_start_offset: state.log_start_offset,
            duplicate: false,
        })
    }

    /// Writes a transaction marker for `producer_id` (Kafka's `appendEndTxnMarker`) and
    /// returns its offset. The producer's open transaction here, if any, ends; an aborted
    /// one is recorded in the transaction index. A marker with an older epoch than the
    /// producer's is refused (INVALID_PRODUCER_EPOCH), and so is one whose
    /// `coordinator_epoch` is older than that of the producer's last marker here
    /// (TRANSACTION_COORDINATOR_FENCED: it comes from a deposed coordinator, whose view of
    /// the transaction may be stale); a marker for a producer with nothing open is still
    /// written, as Kafka does.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, AppendError> {
        let mut state = self.lock();
        if let Some(current) = state.producers.get(&producer_id).map(|e| e.epoch).filter(|&e| producer_epoch < e) {
            return Err(AppendError::InvalidProducerEpoch { producer_id, epoch: producer_epoch, current });
        }
        if let Some(current) =
            state.producers.get(&producer_id).map(|e| e.coordinator_epoch).filter(|&e| coordinator_epoch < e)
        {
            return Err(AppendError::TransactionCoordinatorFenced { producer_id, coordinator_epoch, current });
        }
        let offset = state.log_end_offset;
        let mut batch = record_batch::control_batch(producer_id, producer_epoch, control, coordinator_epoch, now_ms);
        record_batch::assign_offset(&mut batch, offset, leader_epoch);
        let mut write = WriteBatch::default();
        let new_epoch = self.note_epoch(&state, &mut write, leader_epoch, offset)?;
        let marker = EndTxnMarker { control, coordinator_epoch };
        let change =
            self.stage_marker(&state, &mut write, &batch, offset, producer_id, producer_epoch, marker, now_ms)?;
        self.store.write(write)?;
        state.apply_marker(change, new_epoch, offset, now_ms);
        Ok(offset)
    }

    /// Stages the writes of a transaction marker at `offset`: the batch, the time index,
    /// the producer's state and, for the abort of an open transaction, its entry in the
    /// transaction index.
    #[allow(clippy::too_many_arguments)]
    fn stage_marker(
        &self,
        state: &LogState,
        write: &mut WriteBatch,
        batch: &[u8],
        offset: i64,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        timestamp: i64,
    ) -> Result<MarkerChange, StorageError> {
        let entry = state.producers.get(&producer_id);
        let first_offset = entry.and_then(|e| e.current_txn_first_offset);
        let new_entry = ProducerEntry::after_marker(entry, producer_epoch, marker.coordinator_epoch, timestamp);
        write.put_cf(
            self.store.cf(self.class.column_family())?,
            keys::log_key(self.id.0, keys::offset_component(offset)),
            batch,
        );
        if timestamp > state.max_timestamp {
            write.put_cf(
                self.store.cf(keys::CF_TIME_INDEX)?,
                keys::log_key(self.id.0, keys::timestamp_component(timestamp)),
                offset.to_be_bytes(),
            );
        }
        write.put_cf(
            self.store.cf(keys::CF_PRODUCER_STATE)?,
            keys::log_key(self.id.0, producer_id as u64),
            new_entry.encode(),
        );
        self.stage_size(write, state.size_bytes + batch.len() as i64)?;
        if let (ControlType::Abort, Some(first)) = (marker.control, first_offset) {
            // Kafka's `lastStableOffset(completedTxn)`: the next open transaction of another
            // producer, or just past this marker.
            let last_stable_offset =
                state.ongoing.iter().find(|&(_, &p)| p != producer_id).map_or(offset + 1, |(&first, _)| first);
            let mut value = Vec::with_capacity(24);
            value.extend_from_slice(&producer_id.to_be_bytes());
            value.extend_from_slice(&first.to_be_bytes());
            value.extend_from_slice(&last_stable_offset.to_be_bytes());
            write.put_cf(
                self.store.cf(keys::CF_TXN_INDEX)?,
                keys::log_key(self.id.0, keys::offset_component(offset)),
                value,
            );
        }
        Ok(MarkerChange {
            bytes: batch.len() as i64,
            producer_id,
            entry: new_entry,
            ended_txn_first_offset: first_offset,
        })
    }

    /// Aborted transactions that overlap `[fetch_offset, upper_bound)` (Kafka's
    /// `TransactionIndex.collectAbortedTxns`). The index is ordered by marker offset; the
    /// scan stops at the first abort after which the stable offset had passed the range,
    /// since every later abort then began beyond it.
    pub fn aborted_transactions(&self, fetch_offset: i64, upper_bound: i64) -> Result<Vec<AbortedTxn>, StorageError> {
        let mut found = Vec::new();
        if upper_bound <= fetch_offset {
            return Ok(found);
        }
        let mut iter = self.iter(keys::CF_TXN_INDEX)?;
        iter.seek(keys::log_key(self.id.0, keys::offset_component(fetch_offset)));
        while iter.valid() {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else { break };
            let (_, last_offset) = keys::split_key(key).ok_or_else(|| corrupt("txn index", "short key"))?;
            if value.len() != 24 {
                return Err(corrupt("txn index", "value is not 24 bytes"));
            }
            let txn = AbortedTxn {
                producer_id: read_i64(&value[..8], "txn index")?,
                first_offset: read_i64(&value[8..16], "txn index")?,
                last_offset: last_offset as i64,
                last_stable_offset: read_i64(&value[16..], "txn index")?,
            };
            if txn.first_offset < upper_bound {
                found.push(txn);
            }
            if txn.last_stable_offset >= upper_bound {
                break;
            }
            iter.next();
        }
        iter.status()?;
        Ok(found)
    }

    /// Reads whole batches starting with the one that holds `fetch_offset`, up to
    /// `max_bytes`, never past the high watermark. With `min_one_batch` the first batch is
    /// returned even when it alone exceeds `max_bytes` (KIP-74), so a consumer can always
    /// make progress.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<FetchedData, StorageError> {
        self.read_with(fetch_offset, max_bytes, min_one_batch, Isolation::ReadUncommitted)
    }

    /// [`Self::read`] with an isolation level: read_committed stops at the last stable
    /// offset and lists the aborted transactions the returned batches overlap.
    pub fn read_with(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<FetchedData, StorageError> {
        let (log_start_offset, high_watermark, last_stable_offset, log_end_offset) = {
            let state = self.lock();
            (state.log_start_offset, state.high_watermark(), state.last_stable_offset(), state.log_end_offset)
        };
        let limit = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
            Isolation::Replica => log_end_offset,
        };
        // As Kafka: an offset between the high watermark and the log end is in range (it
        // just has nothing committed to read yet).
        if fetch_offset < log_start_offset || fetch_offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start: log_start_offset,
                log_end: log_end_offset,
            });
        }
        let mut out = BytesMut::new();
        let mut next_offset = fetch_offset;
        if fetch_offset < limit {
            let mut iter = self.iter(self.class.column_family())?;
            iter.seek_for_prev(keys::log_key(self.id.0, keys::offset_component(fetch_offset)));
            if iter.valid() {
                let value = iter.value().ok_or_else(|| corrupt("log", "iterator without value"))?;
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                if header.last_offset() < fetch_offset {
                    iter.next();
                }
            } else {
                iter.seek(keys::log_key(self.id.0, keys::offset_component(fetch_offset)));
            }
            while iter.valid() {
                let (Some(key), Some(value)) = (iter.key(), iter.value()) else { break };
                let base = keys::split_key(key).map_or(u64::MAX, |(_, offset)| offset);
                if base >= keys::offset_component(limit) {
                    break;
                }
                if (!out.is_empty() || !min_one_batch) && out.len() + value.len() > max_bytes {
                    break;
                }
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                next_offset = header.last_offset() + 1;
                out.extend_from_slice(value);
                if out.len() >= max_bytes {
                    break;
                }
                iter.next();
            }
            iter.status()?;
        }
        let aborted = match isolation {
            Isolation::ReadUncommitted | Isolation::Replica => None,
            Isolation::ReadCommitted => Some(self.aborted_transactions(fetch_offset, next_offset)?),
        };
        Ok(FetchedData { records: out.freeze(), high_watermark, last_stable_offset, log_start_offset, aborted })
    }

    fn batch_at(&self, base_offset: i64) -> Result<Option<Bytes>, StorageError> {
        let value = self.store.inner.db.get_cf(
            self.store.cf(self.class.column_family())?,
            keys::log_key(self.id.0, keys::offset_component(base_offset)),
        )?;
        Ok(value.map(Bytes::from))
    }

    /// The earliest record whose timestamp is at or after `target_ms` (ListOffsets by time).
    ///
    /// The first time-index entry at or above the target names the batch that raised the
    /// running maximum past it, so every earlier batch is older and that batch holds the
    /// answer. After a trim that batch may be gone: the batches kept after it, up to the
    /// next entry, are then read instead (none of them raised the maximum).
    pub fn lookup_timestamp(&self, target_ms: i64) -> Result<Option<TimestampLookup>, StorageError> {
        let log_start = self.log_start_offset();
        let mut index = self.iter(keys::CF_TIME_INDEX)?;
        index.seek(keys::log_key(self.id.0, keys::timestamp_component(target_ms)));
        while index.valid() {
            let value = index.value().ok_or_else(|| corrupt("time index", "no value"))?;
            let base_offset = read_i64(value, "time index")?;
            index.next();
            let next_entry = match index.value() {
                Some(next) => read_i64(next, "time index")?,
                None => i64::MAX,
            };
            let mut batches = self.iter(self.class.column_family())?;
            batches.seek_for_prev(keys::log_key(self.id.0, keys::offset_component(base_offset.max(log_start))));
            if !batches.valid() {
                batches.seek(keys::log_key(self.id.0, keys::offset_component(base_offset.max(log_start))));
            }
            while let (Some(key), Some(batch)) = (batches.key(), batches.value()) {
                let base = keys::split_key(key).map_or(i64::MAX, |(_, b)| b as i64);
                if base >= next_entry.max(base_offset + 1) {
                    break;
                }
                let stamps = record_batch::record_timestamps(&Bytes::copy_from_slice(batch))
                    .map_err(|e| corrupt("log batch", e))?;
                if let Some(&(offset, timestamp)) =
                    stamps.iter().find(|&&(offset, ts)| ts >= target_ms && offset >= log_start)
                {
                    return Ok(Some(TimestampLookup { offset, timestamp }));
                }
                batches.next();
            }
            batches.status()?;
        }
        index.status()?;
        Ok(None)
    }

    /// The record with the largest timestamp (ListOffsets `-3`, KIP-734).
    pub fn max_timestamp_record(&self) -> Result<Option<TimestampLookup>, StorageError> {
        let log_start = self.log_start_offset();
        let mut index = self.iter(keys::CF_TIME_INDEX)?;
        index.seek_to_last();
        if !index.valid() {
            index.status()?;
            return Ok(None);
        }
        let value = index.value().ok_or_else(|| corrupt("time index", "no value"))?;
        let base_offset = read_i64(value, "time index")?;
        let batches = match self.batch_at(base_offset)? {
            Some(batch) if base_offset >= log_start => vec![batch],
            // The batch holding the maximum was deleted by retention: the largest among
            // the batches kept.
            _ => self.batches_from(log_start)?,
        };
        let mut best: Option<TimestampLookup> = None;
        for batch in batches {
            let stamps = record_batch::record_timestamps(&batch).map_err(|e| corrupt("log batch", e))?;
            for (offset, timestamp) in stamps {
                if offset >= log_start && best.is_none_or(|b| timestamp > b.timestamp) {
                    best = Some(TimestampLookup { offset, timestamp });
                }
            }
        }
        Ok(best)
    }

    /// Every stored batch from the one holding `offset` on.
    fn batches_from(&self, offset: i64) -> Result<Vec<Bytes>, StorageError> {
        let mut out = Vec::new();
        let mut iter = self.iter(self.class.column_family())?;
        iter.seek_for_prev(keys::log_key(self.id.0, keys::offset_component(offset)));
        if !iter.valid() {
            iter.seek(keys::log_key(self.id.0, keys::offset_component(offset)));
        }
        while let Some(value) = iter.value() {
            out.push(Bytes::copy_from_slice(value));
            iter.next();
        }
        iter.status()?;
        Ok(out)
    }
}
