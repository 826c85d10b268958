//! What replication needs from a partition log: appending batches that already carry
//! their offsets (a follower copying its leader), truncating divergent history, the
//! leader-epoch cache behind OffsetForLeaderEpoch, and a high watermark advanced by the
//! replication layer rather than by appends.

use std::collections::{BTreeMap, HashMap};

use rivulet_protocol::record_batch::{self, BatchError, BatchHeader};
use rocksdb::WriteBatch;

use super::{corrupt, producer_after_batch, read_i64, LogState, PartitionLog};
use crate::error::{AppendError, StorageError};
use crate::keys;
use crate::producer_state::{ProducerEntry, NO_COORDINATOR_EPOCH};

impl PartitionLog {
    /// Marks the log as one of several replicas: from now on its high watermark moves only
    /// through [`Self::advance_high_watermark`] (and truncation).
    pub fn set_replicated(&self, replicated: bool) {
        self.lock().replicated = replicated;
    }

    /// Moves the high watermark forward to `offset` (never past the log end, never back)
    /// and checkpoints it. Returns whether it moved.
    pub fn advance_high_watermark(&self, offset: i64) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let target = offset.min(state.log_end_offset);
        if !state.replicated || target <= state.high_watermark {
            return Ok(false);
        }
        // The checkpoint is a hint for restarts, so it is written without a sync.
        self.store.inner.db.put_cf(self.store.cf(keys::CF_PARTITION_STATE)?, self.hw_key(), target.to_be_bytes())?;
        state.high_watermark = target;
        Ok(true)
    }

    /// The newest leader epoch this log has batches (or a leadership) for.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.lock().latest_epoch()
    }

    /// The first offset written in `epoch`, if the log has that epoch.
    pub fn epoch_start_offset(&self, epoch: i32) -> Option<i64> {
        self.lock().epochs.get(&epoch).copied()
    }

    /// Records that this replica leads from `epoch` on, starting at the current log end
    /// (Kafka's leader does the same when it takes over), so OffsetForLeaderEpoch can
    /// answer for an epoch before its first batch.
    pub fn begin_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        let mut state = self.lock();
        let mut write = WriteBatch::default();
        let start = state.log_end_offset;
        if let Some((epoch, start)) = self.note_epoch(&state, &mut write, epoch, start)? {
            self.store.write(write)?;
            state.epochs.insert(epoch, start);
        }
        Ok(())
    }

    /// The epoch and end offset answering OffsetForLeaderEpoch for `requested` (Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`): the end of the largest epoch not above the
    /// requested one, i.e. the start of the next epoch, or the log end for the latest.
    /// `(-1, -1)` when the requested epoch is unknown or newer than any here.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let state = self.lock();
        if requested < 0 {
            return (-1, -1);
        }
        if state.latest_epoch() == Some(requested) {
            return (requested, state.log_end_offset);
        }
        let Some((_, &next_start)) = state.epochs.range(requested.saturating_add(1)..).next() else {
            return (-1, -1);
        };
        match state.epochs.range(..=requested).next_back() {
            Some((&epoch, _)) => (epoch, next_start),
            None => (requested, next_start),
        }
    }

    /// Appends a batch copied from the leader, keeping its offsets and leader epoch. The
    /// producer state, open transactions, transaction index and epochs follow exactly as
    /// on the leader, so this replica can take over and still recognise retries.
    pub fn append_replicated(&self, batch: &[u8]) -> Result<i64, AppendError> {
        // The leader's log may be compacted: a batch may hold fewer records than offsets.
        let header = record_batch::validate_stored(batch)?;
        let mut state = self.lock();
        // A batch past the log end is a gap the leader's cleaner made (whole batches of a
        // compacted log removed after this replica fetched last): Kafka's followers accept
        // it, and refusing it left a follower retrying forever, never back in the ISR. A
        // batch before the log end overlaps what is here: a divergence to truncate.
        if header.base_offset < state.log_end_offset {
            return Err(AppendError::Batch(BatchError::Invalid(format!(
                "replicated batch at offset {} is before the log end {}",
                header.base_offset, state.log_end_offset
            ))));
        }
        let mut write = WriteBatch::default();
        let new_epoch = self.note_epoch(&state, &mut write, header.partition_leader_epoch, header.base_offset)?;
        if header.is_control() {
            // The marker's coordinator epoch is kept even if older than the one known here,
            // as Kafka's followers do: the leader already judged it, and this replica must
            // fence later markers exactly as the leader does if it takes over.
            let marker = record_batch::end_txn_marker(batch)?
                .ok_or_else(|| BatchError::Invalid("control batch without a control record".into()))?;
            let change = self.stage_marker(
                &state,
                &mut write,
                batch,
                header.base_offset,
                header.producer_id,
                header.producer_epoch,
                marker,
                header.max_timestamp,
            )?;
            self.store.write(write)?;
            state.apply_marker(change, new_epoch, header.base_offset, header.max_timestamp);
            return Ok(header.last_offset());
        }
        write.put_cf(
            self.store.cf(self.class.column_family())?,
            keys::log_key(self.id.0, keys::offset_component(header.base_offset)),
            batch,
        );
        if header.max_timestamp > state.max_timestamp {
            write.put_cf(
                self.store.cf(keys::CF_TIME_INDEX)?,
                keys::log_key(self.id.0, keys::timestamp_component(header.max_timestamp)),
                header.base_offset.to_be_bytes(),
            );
        }
        let producer = header.has_producer_id().then(|| {
            let previous = state.producers.get(&header.producer_id);
            producer_after_batch(previous, &header, header.base_sequence < 0, header.base_offset, header.max_timestamp)
        });
        if let Some((entry, _)) = &producer {
            write.put_cf(
                self.store.cf(keys::CF_PRODUCER_STATE)?,
                keys::log_key(self.id.0, header.producer_id as u64),
                entry.encode(),
            );
        }
        let size_bytes = state.size_bytes + batch.len() as i64;
        self.stage_size(&mut write, size_bytes)?;
        self.store.write(write)?;
        state.size_bytes = size_bytes;
        if let Some((epoch, start)) = new_epoch {
            state.epochs.insert(epoch, start);
        }
        state.log_end_offset = header.last_offset() + 1;
        state.max_timestamp = state.max_timestamp.max(header.max_timestamp);
        if let Some((entry, started)) = producer {
            if started {
                state.ongoing.insert(header.base_offset, header.producer_id);
            }
            state.producers.insert(header.producer_id, entry);
        }
        Ok(header.last_offset())
    }

    /// Removes every batch from `offset` on (the whole batch holding `offset`, if it
    /// straddles it), as a follower does with history the leader does not have. Indexes,
    /// epochs and producer state are rebuilt to match what remains.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut state = self.lock();
        if offset >= state.log_end_offset {
            return Ok(());
        }
        let log_cf = self.store.cf(self.class.column_family())?;
        let mut point = offset.max(state.log_start_offset);
        {
            let mut iter = self.iter(self.class.column_family())?;
            iter.seek_for_prev(keys::log_key(self.id.0, keys::offset_component(point)));
            if let Some(value) = iter.value() {
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                if header.base_offset < point && header.last_offset() >= point {
                    point = header.base_offset;
                }
            }
            iter.status()?;
        }
        let (_, log_end_key) = keys::log_range(self.id.0);
        let from = keys::log_key(self.id.0, keys::offset_component(point));
        let mut removed_bytes = 0i64;
        {
            let mut iter = self.iter(self.class.column_family())?;
            iter.seek(from);
            while let Some(value) = iter.value() {
                removed_bytes += value.len() as i64;
                iter.next();
            }
            iter.status()?;
        }
        let size_bytes = (state.size_bytes - removed_bytes).max(0);
        let mut write = WriteBatch::default();
        self.stage_size(&mut write, size_bytes)?;
        write.delete_range_cf(log_cf, from, log_end_key);
        write.delete_range_cf(self.store.cf(keys::CF_TXN_INDEX)?, from, log_end_key);
        let epochs: BTreeMap<i32, i64> =
            state.epochs.iter().filter(|&(_, &s)| s < point).map(|(&e, &s)| (e, s)).collect();
        for (&epoch, _) in state.epochs.iter().filter(|&(_, &s)| s >= point) {
            write.delete_cf(self.store.cf(keys::CF_LEADER_EPOCHS)?, keys::log_key(self.id.0, epoch as u64));
        }
        let mut max_timestamp = i64::MIN;
        {
            let mut index = self.iter(keys::CF_TIME_INDEX)?;
            index.seek_to_first();
            while index.valid() {
                let (Some(key), Some(value)) = (index.key(), index.value()) else { break };
                if read_i64(value, "time index")? >= point {
                    write.delete_cf(self.store.cf(keys::CF_TIME_INDEX)?, key);
                } else if let Some((_, component)) = keys::split_key(key) {
                    max_timestamp = max_timestamp.max(keys::timestamp_from_component(component));
                }
                index.next();
            }
            index.status()?;
        }
        // Producer state is rebuilt from the batches that remain, as Kafka rebuilds it
        // from its snapshots and the log after a truncation.
        let (producers, ongoing) = self.replay_producers(point)?;
        let (log_start_key, _) = keys::log_range(self.id.0);
        write.delete_range_cf(self.store.cf(keys::CF_PRODUCER_STATE)?, log_start_key, log_end_key);
        for (producer_id, entry) in &producers {
            write.put_cf(
                self.store.cf(keys::CF_PRODUCER_STATE)?,
                keys::log_key(self.id.0, *producer_id as u64),
                entry.encode(),
            );
        }
        let high_watermark = state.high_watermark.min(point);
        write.put_cf(self.store.cf(keys::CF_PARTITION_STATE)?, self.hw_key(), high_watermark.to_be_bytes());
        self.store.write(write)?;
        install_truncated(&mut state, point, high_watermark, max_timestamp, producers, ongoing, epochs);
        state.size_bytes = size_bytes;
        state.truncations += 1;
        if state.cleaner_checkpoint > point {
            state.cleaner_checkpoint = point.max(state.log_start_offset);
        }
        state.clean_bytes = state.clean_bytes.min(size_bytes);
        Ok(())
    }

    /// Producer state and open transactions after the batches below `end`.
    #[allow(clippy::type_complexity)]
    fn replay_producers(&self, end: i64) -> Result<(HashMap<i64, ProducerEntry>, BTreeMap<i64, i64>), StorageError> {
        let mut producers: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut ongoing = BTreeMap::new();
        let mut iter = self.iter(self.class.column_family())?;
        iter.seek_to_first();
        while iter.valid() {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else { break };
            if keys::split_key(key).is_some_and(|(_, base)| base >= keys::offset_component(end)) {
                break;
            }
            let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
            if header.has_producer_id() {
                let previous = producers.get(&header.producer_id);
                if header.is_control() {
                    if let Some(first) = previous.and_then(|e| e.current_txn_first_offset) {
                        ongoing.remove(&first);
                    }
                    let coordinator_epoch = record_batch::end_txn_marker(value)
                        .map_err(|e| corrupt("log batch", e))?
                        .map(|m| m.coordinator_epoch)
                        .or(previous.map(|e| e.coordinator_epoch))
                        .unwrap_or(NO_COORDINATOR_EPOCH);
                    let next = ProducerEntry::after_marker(
                        previous,
                        header.producer_epoch,
                        coordinator_epoch,
                        header.max_timestamp,
                    );
                    producers.insert(header.producer_id, next);
                } else {
                    let (next, started) = producer_after_batch(
                        previous,
                        &header,
                        header.base_sequence < 0,
                        header.base_offset,
                        header.max_timestamp,
                    );
                    if started {
                        ongoing.insert(header.base_offset, header.producer_id);
                    }
                    producers.insert(header.producer_id, next);
                }
            }
            iter.next();
        }
        iter.status()?;
        Ok((producers, ongoing))
    }
}

/// Installs the in-memory state after a truncation to `point`.
fn install_truncated(
    state: &mut LogState,
    point: i64,
    high_watermark: i64,
    max_timestamp: i64,
    producers: HashMap<i64, ProducerEntry>,
    ongoing: BTreeMap<i64, i64>,
    epochs: BTreeMap<i32, i64>,
) {
    state.log_end_offset = point;
    state.high_watermark = high_watermark;
    state.max_timestamp = max_timestamp;
    state.producers = producers;
    state.ongoing = ongoing;
    state.epochs = epochs;
}
