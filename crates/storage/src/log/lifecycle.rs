//! Removing a log's oldest records: moving the log start offset forward (DeleteRecords, a
//! follower following its leader), deciding how far retention may go, and resetting a
//! follower that fell behind its leader's log start.
//!
//! The unit of deletion is the record batch. Kafka deletes whole segment files because a
//! file is the smallest thing a filesystem frees cheaply; here a prefix of any length is one
//! RocksDB range delete, so the log keeps exactly what `retention.ms` / `retention.bytes`
//! allow instead of up to a segment more. A batch holding the new log start offset is kept
//! whole (Kafka likewise keeps the segment holding it): readers skip the records below.

use rivulet_protocol::record_batch::BatchHeader;
use rocksdb::WriteBatch;

use super::{corrupt, read_i64, PartitionLog};
use crate::error::StorageError;
use crate::keys;

/// What moving the log start offset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// The new log start offset.
    pub log_start_offset: i64,
    /// Every batch below this offset is gone (the first kept batch starts here, or the log
    /// is empty up to the log start).
    pub removed_below: i64,
    pub removed_batches: u64,
    pub removed_bytes: i64,
}

/// A topic's retention settings at the time of a check (Kafka's `retention.ms`,
/// `retention.bytes`; negative means unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionLimits {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub now_ms: i64,
}

/// The offset retention would move the log start to, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPoint {
    pub offset: i64,
    /// `retention.ms` (else `retention.bytes`) set the point.
    pub by_time: bool,
}

impl PartitionLog {
    /// Bytes held by the log's batches.
    pub fn size_bytes(&self) -> i64 {
        self.lock().size_bytes
    }

    /// How far retention may move the log start offset (Kafka's `deleteRetentionMsBreachedSegments`
    /// and `deleteRetentionSizeBreachedSegments`, one batch being one unit): past every batch
    /// whose newest record is older than `now - retention.ms`, and past the oldest batches
    /// while each fits wholly in what the log holds beyond `retention.bytes`. Never past
    /// the high watermark, so
    /// nothing a consumer has not been allowed to read yet is deleted. `None` when nothing
    /// is due.
    pub fn retention_point(&self, limits: &RetentionLimits) -> Result<Option<RetentionPoint>, StorageError> {
        let (log_start, high_watermark, size) = {
            let state = self.lock();
            (state.log_start_offset, state.high_watermark(), state.size_bytes)
        };
        let mut point: Option<RetentionPoint> = None;
        if limits.retention_ms >= 0 {
            let cutoff = limits.now_ms.saturating_sub(limits.retention_ms);
            // The time index holds the running maximum timestamp: the first entry at or
            // above the cutoff is the first batch that must stay; all before it expired.
            let mut index = self.iter(keys::CF_TIME_INDEX)?;
            index.seek(keys::log_key(self.id.0, keys::timestamp_component(cutoff)));
            let keep_from = match index.value() {
                Some(value) => read_i64(value, "time index")?,
                None => i64::MAX,
            };
            index.status()?;
            let offset = keep_from.min(high_watermark);
            if offset > log_start {
                point = Some(RetentionPoint { offset, by_time: true });
            }
        }
        if limits.retention_bytes >= 0 && size > limits.retention_bytes {
            let excess = size - limits.retention_bytes;
            let mut removed = 0i64;
            let mut offset = log_start;
            let mut iter = self.iter(self.class.column_family())?;
            iter.seek_to_first();
            while let Some(value) = iter.value() {
                if removed + value.len() as i64 > excess {
                    break;
                }
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                if header.last_offset() >= high_watermark {
                    break;
                }
                removed += value.len() as i64;
                offset = header.last_offset() + 1;
                iter.next();
            }
            iter.status()?;
            if offset > point.map_or(log_start, |p| p.offset) {
                point = Some(RetentionPoint { offset, by_time: false });
            }
        }
        Ok(point)
    }

    /// Moves the log start offset forward to `offset` (Kafka's `maybeIncrementLogStartOffset`)
    /// and deletes every batch that then lies wholly below it, with its time-index and
    /// transaction-index entries; the leader-epoch cache keeps the epoch in force at the new
    /// start. The new start is persisted in the same write. `offset` may not pass the high
    /// watermark (OFFSET_OUT_OF_RANGE); an offset at or below the current start changes
    /// nothing (`None`). Producer state is kept: a producer whose batches were deleted can
    /// still be recognised when it retries (KIP-360).
    pub fn advance_log_start(&self, offset: i64) -> Result<Option<Trimmed>, StorageError> {
        // One trim at a time (retention and DeleteRecords may race); appends go on meanwhile.
        let _trimming = self.trim.lock().unwrap_or_else(|p| p.into_inner());
        let (log_start, high_watermark, generation) = {
            let state = self.lock();
            (state.log_start_offset, state.high_watermark(), state.truncations)
        };
        if offset <= log_start {
            return Ok(None);
        }
        if offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange { offset, log_start, log_end: high_watermark });
        }
        // Batches below the high watermark never change, so the scan needs no lock.
        let mut removed_below = offset;
        let mut removed_batches = 0u64;
        let mut removed_bytes = 0i64;
        {
            let mut iter = self.iter(self.class.column_family())?;
            iter.seek_to_first();
            while let Some(value) = iter.value() {
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                if header.last_offset() >= offset {
                    removed_below = header.base_offset.min(offset);
                    break;
                }
                removed_batches += 1;
                removed_bytes += value.len() as i64;
                iter.next();
            }
            iter.status()?;
        }
        let (first_key, _) = keys::log_range(self.id.0);
        let cut_key = keys::log_key(self.id.0, keys::offset_component(removed_below));
        let mut write = WriteBatch::default();
        write.delete_range_cf(self.store.cf(self.class.column_family())?, first_key, cut_key);
        write.delete_range_cf(self.store.cf(keys::CF_TXN_INDEX)?, first_key, cut_key);
        // Time-index entries pointing below the cut go, except the newest of them: the
        // batches after the cut that did not raise the running maximum are found through it.
        {
            let time_cf = self.store.cf(keys::CF_TIME_INDEX)?;
            let mut index = self.iter(keys::CF_TIME_INDEX)?;
            index.seek_to_first();
            let mut previous: Option<Vec<u8>> = None;
            while let (Some(key), Some(value)) = (index.key(), index.value()) {
                if read_i64(value, "time index")? >= removed_below {
                    break;
                }
                if let Some(older) = previous.replace(key.to_vec()) {
                    write.delete_cf(time_cf, older);
                }
                index.next();
            }
            index.status()?;
        }
        write.put_cf(self.store.cf(keys::CF_PARTITION_STATE)?, self.id.0.to_be_bytes(), offset.to_be_bytes());

        let mut state = self.lock();
        if state.log_start_offset != log_start || state.truncations != generation {
            // Truncated meanwhile (a new leader's history may sit below the cut): try again.
            return Ok(None);
        }
        let size_bytes = (state.size_bytes - removed_bytes).max(0);
        self.stage_size(&mut write, size_bytes)?;
        // Kafka's `LeaderEpochFileCache.truncateFromStart`: epochs starting below the new
        // log start collapse into the newest of them, now starting at the log start.
        let below: Vec<(i32, i64)> = state.epochs.iter().filter(|&(_, &s)| s < offset).map(|(&e, &s)| (e, s)).collect();
        let epochs_cf = self.store.cf(keys::CF_LEADER_EPOCHS)?;
        let mut new_epochs = state.epochs.clone();
        if let Some(&(newest, _)) = below.last() {
            for &(epoch, _) in &below {
                new_epochs.remove(&epoch);
                if epoch != newest {
                    write.delete_cf(epochs_cf, keys::log_key(self.id.0, epoch as u64));
                }
            }
            let superseded = new_epochs.range(newest..).next().is_some_and(|(_, &s)| s <= offset);
            if superseded {
                write.delete_cf(epochs_cf, keys::log_key(self.id.0, newest as u64));
            } else {
                write.put_cf(epochs_cf, keys::log_key(self.id.0, newest as u64), offset.to_be_bytes());
                new_epochs.insert(newest, offset);
            }
        }
        self.store.write(write)?;
        state.log_start_offset = offset;
        state.size_bytes = size_bytes;
        state.epochs = new_epochs;
        if state.cleaner_checkpoint <= offset {
            state.cleaner_checkpoint = offset;
            state.clean_bytes = 0;
        } else {
            state.clean_bytes = (state.clean_bytes - removed_bytes).max(0);
        }
        Ok(Some(Trimmed { log_start_offset: offset, removed_below, removed_batches, removed_bytes }))
    }

    /// Deletes the whole log and starts it again, empty, at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): what a follower does when its log ends before its
    /// leader's log start, so there is nothing to copy in between.
    pub fn reset_to(&self, offset: i64) -> Result<(), StorageError> {
        let _trimming = self.trim.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.lock();
        let (first_key, last_key) = keys::log_range(self.id.0);
        let mut write = WriteBatch::default();
        for cf in [self.class.column_family(), keys::CF_TIME_INDEX, keys::CF_TXN_INDEX, keys::CF_LEADER_EPOCHS] {
            write.delete_range_cf(self.store.cf(cf)?, first_key, last_key);
        }
        let state_cf = self.store.cf(keys::CF_PARTITION_STATE)?;
        write.put_cf(state_cf, self.id.0.to_be_bytes(), offset.to_be_bytes());
        write.put_cf(state_cf, self.hw_key(), offset.to_be_bytes());
        self.stage_size(&mut write, 0)?;
        self.store.write(write)?;
        let replicated = state.replicated;
        let truncations = state.truncations + 1;
        let producers = std::mem::take(&mut state.producers);
        *state = super::LogState::new(offset);
        state.replicated = replicated;
        state.truncations = truncations;
        // Producer state is kept for the same reason as in `advance_log_start`.
        state.producers = producers;
        Ok(())
    }

    /// The key range `[log start, removed_below)` a trim emptied, for reclaiming its space.
    pub fn trimmed_range(&self, trimmed: &Trimmed) -> ([u8; 16], [u8; 16]) {
        let (first_key, _) = keys::log_range(self.id.0);
        (first_key, keys::log_key(self.id.0, keys::offset_component(trimmed.removed_below)))
    }
}

#[cfg(test)]
mod tests {
    use rivulet_protocol::record_batch::BatchBuilder;

    use super::*;
    use crate::log::{AppendOptions, AppendOrigin};
    use crate::store::{LogClass, LogId, Store, StoreOptions};

    fn options() -> AppendOptions {
        AppendOptions {
            leader_epoch: 0,
            max_batch_bytes: 1 << 20,
            log_append_time_ms: None,
            origin: AppendOrigin::Client,
        }
    }

    fn batch(records: usize, timestamp: i64) -> Vec<u8> {
        let builder = (0..records).fold(BatchBuilder::new(), |b, i| {
            b.record(timestamp, Some(format!("k{i}").into_bytes().into()), Some(vec![b'v'; 100].into()))
        });
        builder.build().expect("batch").to_vec()
    }

    fn open(dir: &std::path::Path) -> (Store, PartitionLog) {
        let store = Store::open(&StoreOptions::new(dir)).unwrap();
        let log = store.open_log(LogId(7), LogClass::User).unwrap();
        (store, log)
    }

    #[test]
    fn advancing_the_log_start_deletes_whole_batches_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = open(dir.path());
        let mut sizes = Vec::new();
        for i in 0..5 {
            let b = batch(10, 1_000 + i);
            sizes.push(b.len() as i64);
            log.append(&b, &options()).unwrap();
        }
        assert_eq!(log.size_bytes(), sizes.iter().sum::<i64>());
        // Offset 25 is inside the third batch [20, 30): it stays, the first two go.
        let trimmed = log.advance_log_start(25).unwrap().unwrap();
        assert_eq!(trimmed.removed_below, 20);
        assert_eq!(trimmed.removed_batches, 2);
        assert_eq!(log.log_start_offset(), 25);
        assert_eq!(log.size_bytes(), sizes[2..].iter().sum::<i64>());
        assert!(matches!(log.read(10, 1 << 20, true), Err(StorageError::OffsetOutOfRange { log_start: 25, .. })));
        let data = log.read(25, 1 << 20, true).unwrap();
        assert_eq!(BatchHeader::parse(&data.records).unwrap().base_offset, 20);
        assert_eq!(data.log_start_offset, 25);
        // Going back or standing still changes nothing; passing the high watermark is refused.
        assert_eq!(log.advance_log_start(25).unwrap(), None);
        assert_eq!(log.advance_log_start(3).unwrap(), None);
        assert!(matches!(log.advance_log_start(51), Err(StorageError::OffsetOutOfRange { .. })));
        drop(log);
        drop(store);
        let (_store, log) = open(dir.path());
        assert_eq!(log.log_start_offset(), 25);
        assert_eq!(log.log_end_offset(), 50);
        assert_eq!(log.size_bytes(), sizes[2..].iter().sum::<i64>());
        // The whole log can go: start = end, appends continue from there.
        log.advance_log_start(50).unwrap().unwrap();
        assert_eq!(log.size_bytes(), 0);
        assert_eq!(log.read(50, 1 << 20, true).unwrap().records.len(), 0);
        assert_eq!(log.append(&batch(1, 2_000), &options()).unwrap().base_offset, 50);
    }

    #[test]
    fn retention_by_time_and_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, log) = open(dir.path());
        let now = 1_000_000;
        // Batches 0..4 at now-5000+i*1000: [-5000, -4000, -3000, -2000, -1000].
        let mut sizes = Vec::new();
        for i in 0..5 {
            let b = batch(10, now - 5_000 + i * 1_000);
            sizes.push(b.len() as i64);
            log.append(&b, &options()).unwrap();
        }
        let limits = |ms, bytes| RetentionLimits { retention_ms: ms, retention_bytes: bytes, now_ms: now };
        // Older than 2500 ms: the first three batches (their newest record is 5000, 4000, 3000 ms old).
        let point = log.retention_point(&limits(2_500, -1)).unwrap().unwrap();
        assert_eq!(point, RetentionPoint { offset: 30, by_time: true });
        // Everything expired: up to the high watermark, i.e. the whole log.
        assert_eq!(log.retention_point(&limits(0, -1)).unwrap().unwrap().offset, 50);
        assert_eq!(log.retention_point(&limits(10_000, -1)).unwrap(), None);
        // Keep at most two batches' worth of bytes.
        let two = sizes[3] + sizes[4];
        assert_eq!(
            log.retention_point(&limits(-1, two)).unwrap().unwrap(),
            RetentionPoint { offset: 30, by_time: false }
        );
        // As Kafka: a unit goes only when it fits wholly in the excess, so up to one batch
        // more than the limit may stay.
        assert_eq!(log.retention_point(&limits(-1, two - 1)).unwrap().unwrap().offset, 30);
        assert_eq!(log.retention_point(&limits(-1, sizes[4])).unwrap().unwrap().offset, 40);
        assert_eq!(log.retention_point(&limits(-1, -1)).unwrap(), None);
        log.advance_log_start(30).unwrap().unwrap();
        assert_eq!(log.retention_point(&limits(2_500, two)).unwrap(), None);
    }

    #[test]
    fn timestamp_lookup_still_finds_records_after_a_trim() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, log) = open(dir.path());
        // The second batch raises the running maximum to 9000; the later ones stay below it.
        for ts in [1_000, 9_000, 3_000, 4_000, 5_000] {
            log.append(&batch(1, ts), &options()).unwrap();
        }
        log.advance_log_start(2).unwrap().unwrap();
        let found = log.lookup_timestamp(3_500).unwrap().unwrap();
        assert_eq!((found.offset, found.timestamp), (3, 4_000));
        let found = log.lookup_timestamp(0).unwrap().unwrap();
        assert_eq!(found.offset, 2);
        assert_eq!(log.lookup_timestamp(9_500).unwrap(), None);
    }

    #[test]
    fn leader_epochs_collapse_to_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, log) = open(dir.path());
        for epoch in 0..3 {
            log.append(&batch(10, 1_000), &AppendOptions { leader_epoch: epoch, ..options() }).unwrap();
        }
        log.advance_log_start(15).unwrap().unwrap();
        assert_eq!(log.epoch_start_offset(0), None);
        assert_eq!(log.epoch_start_offset(1), Some(15));
        assert_eq!(log.epoch_start_offset(2), Some(20));
        log.advance_log_start(20).unwrap().unwrap();
        assert_eq!(log.epoch_start_offset(1), None);
        assert_eq!(log.epoch_start_offset(2), Some(20));
    }

    #[test]
    fn reset_starts_an_empty_log_at_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, log) = open(dir.path());
        log.append(&batch(10, 1_000), &options()).unwrap();
        log.reset_to(500).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (500, 500, 0));
        assert_eq!(log.read(500, 1024, true).unwrap().records.len(), 0);
    }
}
