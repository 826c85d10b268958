//! Log compaction (Kafka's `LogCleaner`): keeping only the latest record of each key.
//!
//! A cleaning works on the *cleanable* part of a log: from the log start up to the last
//! stable offset and the high watermark, never into the log's last batch (Kafka never
//! cleans its active segment; here that batch is also what the log end is recovered from)
//! and never into records younger than `min.compaction.lag.ms`. It runs when the *dirty*
//! part — written since the last cleaning's end, the cleaner checkpoint — is at least
//! `min.cleanable.dirty.ratio` of the log, or when a dirty record is older than
//! `max.compaction.lag.ms`:
//!
//! 1. The dirty part is read into an offset map (key → offset of its latest record), up to
//!    `log.cleaner.dedupe.buffer.size` bytes of keys; where the map fills, this cleaning
//!    ends and the next one goes on.
//! 2. Every batch from the log start up to that end is rewritten without the records a
//!    later record of the same key supersedes, without records lacking a key, and without
//!    tombstones whose delete horizon (KIP-534: set when the cleaner first sees them, to
//!    now + `delete.retention.ms`) has passed. Offsets never change (see
//!    `rivulet_protocol::record_batch::rewrite`); a batch left with no record is deleted.
//! 3. Transactions: cleaning stops at the last stable offset, so every transaction below it
//!    is decided. Records of aborted transactions (found through the transaction index) are
//!    removed and never enter the map, so an aborted write never removes a committed one;
//!    committed transactional records are compacted like any others (Kafka Streams'
//!    exactly-once changelogs are written that way). A transaction marker stays while its
//!    transaction keeps a record; once none is left (all superseded, or aborted) the marker
//!    gets a delete horizon like a tombstone and goes when it has passed, with its entry
//!    in the transaction index.
//!
//! Producer state lives in its own column family, so removing a producer's batches does
//! not forget the producer.

use std::collections::HashMap;

use crate::log::AbortedTxn;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rivulet_protocol::record_batch::rewrite::{self, delete_horizon};
use rivulet_protocol::record_batch::BatchHeader;
use rocksdb::WriteBatch;

use super::{corrupt, read_i64, PartitionLog};
use crate::error::StorageError;
use crate::keys;

/// Bytes of rewritten batches committed per write (and per check that the log was not
/// truncated meanwhile).
const COMMIT_BYTES: usize = 4 * 1024 * 1024;
/// What one key costs in the offset map besides its bytes (Kafka's map spends 24 bytes per
/// entry on a hash and an offset; a hash map of owned keys spends about this much more).
const MAP_ENTRY_OVERHEAD: usize = 48;

/// A topic's compaction settings at the time of a cleaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanOptions {
    pub now_ms: i64,
    /// `delete.retention.ms`: how long tombstones stay after the cleaner first saw them.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this forces a cleaning.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`
    pub min_cleanable_ratio: f64,
    /// `log.cleaner.dedupe.buffer.size`: bound on the offset map.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second` (read and written); `f64::INFINITY` = unbounded.
    pub io_max_bytes_per_second: f64,
}

/// What a cleaning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// The new cleaner checkpoint: everything below was cleaned.
    pub cleaned_up_to: i64,
    pub batches_rewritten: u64,
    pub batches_removed: u64,
    pub records_removed: u64,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

/// Bounds the cleaner's I/O rate by sleeping (Kafka's `Throttler`).
struct Throttler {
    max_per_second: f64,
    started: Instant,
    bytes: f64,
}

impl Throttler {
    fn new(max_per_second: f64) -> Self {
        Self { max_per_second, started: Instant::now(), bytes: 0.0 }
    }

    fn account(&mut self, bytes: usize) {
        if !self.max_per_second.is_finite() || self.max_per_second <= 0.0 {
            return;
        }
        self.bytes += bytes as f64;
        let due = Duration::from_secs_f64(self.bytes / self.max_per_second);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Whether the cleaner keeps `record`, given the offset map and the batch's horizon.
/// Returns `(keep, is_tombstone_kept)`.
fn keep_record(
    record: &rivulet_protocol::kafka_protocol::records::Record,
    map: &HashMap<Bytes, i64>,
    horizon: Option<i64>,
    now_ms: i64,
) -> (bool, bool) {
    let Some(key) = &record.key else { return (false, false) };
    if map.get(key).is_some_and(|&latest| latest > record.offset) {
        return (false, false);
    }
    if record.value.is_none() {
        if horizon.is_some_and(|h| now_ms >= h) {
            return (false, false);
        }
        return (true, true);
    }
    (true, false)
}

/// The aborted transactions of a log section, by producer: `(first offset, marker offset)`.
struct Aborted(HashMap<i64, Vec<(i64, i64)>>);

impl Aborted {
    fn new(txns: Vec<AbortedTxn>) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for txn in txns {
            by_producer.entry(txn.producer_id).or_default().push((txn.first_offset, txn.last_offset));
        }
        Aborted(by_producer)
    }

    /// Whether a batch holds data of an aborted transaction.
    fn holds(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && self.0.get(&header.producer_id).is_some_and(|txns| {
                txns.iter().any(|&(first, marker)| first <= header.base_offset && header.base_offset < marker)
            })
    }
}

impl Aborted {
    /// Whether a control batch is the abort marker of an indexed aborted transaction.
    fn holds_marker(&self, header: &BatchHeader) -> bool {
        self.0.get(&header.producer_id).is_some_and(|txns| txns.iter().any(|&(_, marker)| marker == header.base_offset))
    }
}

/// Which transactions, read in offset order, still keep a record: a producer has at most
/// one open transaction, so its data batches up to the next marker are that transaction's.
#[derive(Default)]
struct Retained(HashMap<i64, bool>);

impl Retained {
    /// A data batch of `producer_id`'s transaction, keeping records or not.
    fn data(&mut self, producer_id: i64, keeps_records: bool) {
        *self.0.entry(producer_id).or_default() |= keeps_records;
    }

    /// The marker ending `producer_id`'s transaction: whether the transaction kept a record.
    fn marker(&mut self, producer_id: i64) -> bool {
        self.0.remove(&producer_id).unwrap_or(false)
    }
}

impl PartitionLog {
    /// The share of the log written since the last cleaning (0 when empty).
    pub fn dirty_ratio(&self) -> f64 {
        let state = self.lock();
        if state.size_bytes <= 0 {
            return 0.0;
        }
        (state.size_bytes - state.clean_bytes).max(0) as f64 / state.size_bytes as f64
    }

    /// Where cleaning must stop: the last stable offset, the high watermark, the last
    /// batch, and the first record younger than `min.compaction.lag.ms`.
    fn cleanable_end(&self, options: &CleanOptions, lso: i64) -> Result<i64, StorageError> {
        let mut end = lso;
        let mut iter = self.iter(self.class.column_family())?;
        iter.seek_to_last();
        if let Some((_, base)) = iter.key().and_then(keys::split_key) {
            end = end.min(base as i64);
        }
        iter.status()?;
        if options.min_compaction_lag_ms > 0 {
            let cutoff = options.now_ms.saturating_sub(options.min_compaction_lag_ms);
            let mut index = self.iter(keys::CF_TIME_INDEX)?;
            index.seek(keys::log_key(self.id.0, keys::timestamp_component(cutoff)));
            if let Some(value) = index.value() {
                end = end.min(read_i64(value, "time index")?);
            }
            index.status()?;
        }
        Ok(end)
    }

    /// Cleans the log if it is due (see the module documentation). `None` when nothing
    /// was due or the log changed underneath (a truncation); the next cleaning retries.
    pub fn clean(&self, options: &CleanOptions) -> Result<Option<Cleaned>, StorageError> {
        // Retention and DeleteRecords wait: a batch rewritten here must not come back
        // after they deleted it.
        let _trimming = self.trim.lock().unwrap_or_else(|p| p.into_inner());
        let (log_start, lso, checkpoint, size, generation) = {
            let state = self.lock();
            (
                state.log_start_offset,
                state.last_stable_offset(),
                state.cleaner_checkpoint,
                state.size_bytes,
                state.truncations,
            )
        };
        let end = self.cleanable_end(options, lso)?;
        let dirty_start = checkpoint.max(log_start);
        if end <= dirty_start {
            return Ok(None);
        }
        // Below the last stable offset every transaction is decided: the aborted ones are
        // in the transaction index, the rest committed.
        let aborted = Aborted::new(self.aborted_transactions(log_start, end)?);
        let mut throttle = Throttler::new(options.io_max_bytes_per_second);

        // 1. The offset map of the dirty part.
        let mut map: HashMap<Bytes, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut map_end = end;
        let mut oldest_dirty_timestamp = i64::MAX;
        {
            let mut iter = self.iter(self.class.column_family())?;
            iter.seek(keys::log_key(self.id.0, keys::offset_component(dirty_start)));
            while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
                let base = keys::split_key(key).map_or(i64::MAX, |(_, b)| b as i64);
                if base >= end {
                    break;
                }
                throttle.account(value.len());
                let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
                oldest_dirty_timestamp = oldest_dirty_timestamp.min(header.max_timestamp);
                let skipped = header.is_control() || aborted.holds(&header);
                if !skipped {
                    let batch = Bytes::copy_from_slice(value);
                    for record in rewrite::decode_records(&batch).map_err(|e| corrupt("log batch", e))? {
                        let Some(k) = record.key else { continue };
                        if !map.contains_key(&k) {
                            map_bytes += k.len() + MAP_ENTRY_OVERHEAD;
                        }
                        map.insert(k, record.offset);
                    }
                }
                if map_bytes >= options.dedupe_buffer_bytes {
                    // The map is full: clean up to here this time.
                    map_end = header.last_offset() + 1;
                    break;
                }
                iter.next();
            }
            iter.status()?;
        }
        let ratio = if size > 0 { self.dirty_ratio() } else { 0.0 };
        let overdue = options.max_compaction_lag_ms >= 0
            && oldest_dirty_timestamp < options.now_ms.saturating_sub(options.max_compaction_lag_ms);
        if ratio < options.min_cleanable_ratio && !overdue {
            return Ok(None);
        }

        // 2. Rewrite everything below the map's end.
        let mut cleaned = Cleaned { cleaned_up_to: map_end, ..Cleaned::default() };
        let mut write = WriteBatch::default();
        let mut pending_bytes = 0usize;
        let mut size_delta = 0i64;
        let mut clean_bytes = 0i64;
        let log_cf = self.store.cf(self.class.column_family())?;
        let txn_index_cf = self.store.cf(keys::CF_TXN_INDEX)?;
        let mut txns = Retained::default();
        let mut iter = self.iter(self.class.column_family())?;
        iter.seek_to_first();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let base = keys::split_key(key).map_or(i64::MAX, |(_, b)| b as i64);
            if base >= map_end {
                break;
            }
            throttle.account(value.len());
            cleaned.bytes_before += value.len() as i64;
            let header = BatchHeader::parse(value).map_err(|e| corrupt("log batch", e))?;
            let batch = Bytes::copy_from_slice(value);
            let records = rewrite::decode_records(&batch).map_err(|e| corrupt("log batch", e))?;
            let horizon = delete_horizon(&header);
            let mut kept = Vec::with_capacity(records.len());
            let mut needs_horizon = false;
            if header.is_control() {
                // A marker stays while its transaction keeps a record; once it keeps none it
                // is a tombstone of sorts (Kafka's `CleanedTransactionMetadata`): it gets a
                // delete horizon, and goes when that has passed.
                let empty = !txns.marker(header.producer_id);
                if !empty || horizon.is_none_or(|h| options.now_ms < h) {
                    needs_horizon = empty && horizon.is_none();
                    kept = records.clone();
                } else if aborted.holds_marker(&header) {
                    write.delete_cf(txn_index_cf, keys::log_key(self.id.0, keys::offset_component(header.base_offset)));
                }
            } else if !aborted.holds(&header) {
                for record in &records {
                    let (keep, tombstone) = keep_record(record, &map, horizon, options.now_ms);
                    if keep {
                        needs_horizon |= tombstone && horizon.is_none();
                        kept.push(record.clone());
                    }
                }
            }
            if header.is_transactional() && !header.is_control() {
                txns.data(header.producer_id, !kept.is_empty());
            }
            if kept.len() == records.len() && !needs_horizon {
                clean_bytes += value.len() as i64;
                cleaned.bytes_after += value.len() as i64;
                iter.next();
                continue;
            }
            cleaned.records_removed += (records.len() - kept.len()) as u64;
            if kept.is_empty() {
                write.delete_cf(log_cf, key);
                cleaned.batches_removed += 1;
                size_delta -= value.len() as i64;
            } else {
                let new_horizon = needs_horizon.then(|| options.now_ms.saturating_add(options.delete_retention_ms));
                let rewritten = rewrite::rebuild(&batch, &kept, new_horizon).map_err(|e| corrupt("log batch", e))?;
                throttle.account(rewritten.len());
                size_delta += rewritten.len() as i64 - value.len() as i64;
                clean_bytes += rewritten.len() as i64;
                cleaned.bytes_after += rewritten.len() as i64;
                cleaned.batches_rewritten += 1;
                write.put_cf(log_cf, key, &rewritten);
            }
            pending_bytes += value.len();
            if pending_bytes >= COMMIT_BYTES {
                if !self.commit_cleaning(std::mem::take(&mut write), size_delta, generation, map_end)? {
                    return Ok(None);
                }
                pending_bytes = 0;
                size_delta = 0;
            }
            iter.next();
        }
        iter.status()?;
        drop(iter);

        // 3. The checkpoint, with the last rewrites.
        let mut checkpoint_value = Vec::with_capacity(16);
        checkpoint_value.extend_from_slice(&map_end.to_be_bytes());
        checkpoint_value.extend_from_slice(&clean_bytes.to_be_bytes());
        write.put_cf(self.store.cf(keys::CF_PARTITION_STATE)?, self.checkpoint_key(), checkpoint_value);
        if !self.commit_cleaning(write, size_delta, generation, map_end)? {
            return Ok(None);
        }
        let mut state = self.lock();
        state.cleaner_checkpoint = map_end;
        state.clean_bytes = clean_bytes.min(state.size_bytes);
        Ok(Some(cleaned))
    }

    /// Writes a part of a cleaning unless the log was truncated since it began (a new
    /// leader's history may now sit where the cleaned batches were).
    fn commit_cleaning(
        &self,
        mut write: WriteBatch,
        size_delta: i64,
        generation: u64,
        cleaned_up_to: i64,
    ) -> Result<bool, StorageError> {
        let mut state = self.lock();
        if state.truncations != generation || state.log_end_offset < cleaned_up_to {
            return Ok(false);
        }
        let size_bytes = (state.size_bytes + size_delta).max(0);
        self.stage_size(&mut write, size_bytes)?;
        self.store.write(write)?;
        state.size_bytes = size_bytes;
        Ok(true)
    }

    pub(crate) fn checkpoint_key(&self) -> [u8; 16] {
        keys::log_key(self.id.0, keys::CLEANER_CHECKPOINT_SUFFIX)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rivulet_protocol::record_batch::rewrite::decode_records;
    use rivulet_protocol::record_batch::BatchBuilder;

    use super::*;
    use crate::log::{AppendOptions, AppendOrigin, Isolation};
    use crate::store::{LogClass, LogId, Store, StoreOptions};

    fn options() -> AppendOptions {
        AppendOptions {
            leader_epoch: 0,
            max_batch_bytes: 1 << 20,
            log_append_time_ms: None,
            origin: AppendOrigin::Client,
        }
    }

    fn clean_options(now_ms: i64) -> CleanOptions {
        CleanOptions {
            now_ms,
            delete_retention_ms: 1_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_ratio: 0.0,
            dedupe_buffer_bytes: 1 << 20,
            io_max_bytes_per_second: f64::INFINITY,
        }
    }

    /// One batch of `(key, value)` records (`None` value = tombstone).
    fn batch(records: &[(&str, Option<&str>)]) -> Bytes {
        records
            .iter()
            .fold(BatchBuilder::new(), |b, (k, v)| {
                b.record(1_000, Some(Bytes::from(k.to_string())), v.map(|v| Bytes::from(v.to_string())))
            })
            .build()
            .expect("batch")
    }

    /// Every `(offset, key, value)` a consumer reading from the start sees.
    fn contents(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
        let data = log.read_with(log.log_start_offset(), 1 << 24, true, Isolation::ReadUncommitted).unwrap();
        let mut out = Vec::new();
        for batch in rivulet_protocol::record_batch::split_batches(&data.records).unwrap() {
            if BatchHeader::parse(&batch).unwrap().is_control() {
                continue;
            }
            for r in decode_records(&batch).unwrap() {
                let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((r.offset, text(r.key).unwrap(), text(r.value)));
            }
        }
        out
    }

    #[test]
    fn keeps_the_latest_value_of_each_key_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let log = store.open_log(LogId(3), LogClass::User).unwrap();
        log.append(&batch(&[("a", Some("a1")), ("b", Some("b1")), ("c", Some("c1"))]), &options()).unwrap();
        log.append(&batch(&[("a", Some("a2")), ("b", None)]), &options()).unwrap();
        log.append(&batch(&[("a", Some("a3"))]), &options()).unwrap();
        // The last batch is never cleaned: it is what the log end is recovered from.
        log.append(&batch(&[("z", Some("z1"))]), &options()).unwrap();
        let before = log.size_bytes();
        let cleaned = log.clean(&clean_options(10_000)).unwrap().unwrap();
        assert_eq!(cleaned.cleaned_up_to, 6);
        assert_eq!(cleaned.records_removed, 3);
        assert_eq!(
            contents(&log),
            vec![
                (2, "c".into(), Some("c1".into())),
                (4, "b".into(), None),
                (5, "a".into(), Some("a3".into())),
                (6, "z".into(), Some("z1".into())),
            ]
        );
        assert!(log.size_bytes() < before);
        assert_eq!(log.log_end_offset(), 7);
        // Nothing new is dirty: the next cleaning has nothing to do.
        assert_eq!(log.clean(&clean_options(10_000)).unwrap(), None);

        // The tombstone got a horizon of now + delete.retention.ms; once passed and the log
        // is dirty again, it goes.
        log.append(&batch(&[("c", Some("c2"))]), &options()).unwrap();
        log.append(&batch(&[("y", Some("y1"))]), &options()).unwrap();
        log.clean(&clean_options(11_500)).unwrap().unwrap();
        assert_eq!(
            contents(&log).iter().map(|(o, k, _)| (*o, k.as_str())).collect::<Vec<_>>(),
            vec![(5, "a"), (6, "z"), (7, "c"), (8, "y")]
        );
        // The log end and the size survive a reopen.
        let size = log.size_bytes();
        drop(log);
        let log = store.open_log(LogId(3), LogClass::User).unwrap();
        assert_eq!(log.log_end_offset(), 9);
        assert_eq!(log.size_bytes(), size);
        // Only the last batch, never cleaned, is dirty.
        assert!(log.dirty_ratio() < 0.5, "{}", log.dirty_ratio());
    }

    #[test]
    fn aborted_records_go_and_never_remove_committed_ones() {
        use rivulet_protocol::record_batch::ControlType;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let log = store.open_log(LogId(5), LogClass::User).unwrap();
        let txn_batch = |producer_id: i64, key: &str, value: &str| {
            BatchBuilder::new()
                .producer(producer_id, 0, 0)
                .transactional(true)
                .record(1_000, Some(Bytes::from(key.to_string())), Some(Bytes::from(value.to_string())))
                .build()
                .expect("batch")
        };
        log.append(&batch(&[("a", Some("a1"))]), &options()).unwrap();
        log.append(&txn_batch(5, "a", "aborted"), &options()).unwrap();
        log.append_marker(5, 0, ControlType::Abort, 0, 0, 1_000).unwrap();
        log.append(&txn_batch(6, "b", "committed"), &options()).unwrap();
        log.append_marker(6, 0, ControlType::Commit, 0, 0, 1_000).unwrap();
        log.append(&batch(&[("a", Some("a2")), ("b", Some("b2"))]), &options()).unwrap();
        log.append(&batch(&[("z", Some("z1"))]), &options()).unwrap();
        let cleaned = log.clean(&clean_options(10_000)).unwrap().unwrap();
        // a1 and the committed b are superseded by offset 5; the aborted a goes regardless.
        assert_eq!(cleaned.records_removed, 3);
        assert_eq!(
            contents(&log),
            vec![
                (5, "a".into(), Some("a2".into())),
                (6, "b".into(), Some("b2".into())),
                (7, "z".into(), Some("z1".into()))
            ]
        );
        // Without the later writes, the aborted write must not have removed a1.
        let log = store.open_log(LogId(6), LogClass::User).unwrap();
        log.append(&batch(&[("a", Some("a1"))]), &options()).unwrap();
        log.append(&txn_batch(7, "a", "aborted"), &options()).unwrap();
        log.append_marker(7, 0, ControlType::Abort, 0, 0, 1_000).unwrap();
        log.append(&batch(&[("z", Some("z1"))]), &options()).unwrap();
        log.clean(&clean_options(10_000)).unwrap().unwrap();
        assert_eq!(contents(&log), vec![(0, "a".into(), Some("a1".into())), (3, "z".into(), Some("z1".into()))]);
    }

    /// `(offset, is a marker)` of every batch left in the log.
    fn batches(log: &PartitionLog) -> Vec<(i64, bool)> {
        let data = log.read_with(log.log_start_offset(), 1 << 24, true, Isolation::ReadUncommitted).unwrap();
        rivulet_protocol::record_batch::split_batches(&data.records)
            .unwrap()
            .iter()
            .map(|b| {
                let header = BatchHeader::parse(b).unwrap();
                (header.base_offset, header.is_control())
            })
            .collect()
    }

    #[test]
    fn markers_of_transactions_without_records_go_after_the_delete_horizon() {
        use rivulet_protocol::record_batch::ControlType;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let log = store.open_log(LogId(8), LogClass::User).unwrap();
        let txn_batch = |producer_id: i64, key: &str| {
            BatchBuilder::new()
                .producer(producer_id, 0, 0)
                .transactional(true)
                .record(1_000, Some(Bytes::from(key.to_string())), Some(Bytes::from("v")))
                .build()
                .expect("batch")
        };
        log.append(&txn_batch(5, "a"), &options()).unwrap(); // 0: aborted
        log.append_marker(5, 0, ControlType::Abort, 0, 0, 1_000).unwrap(); // 1
        log.append(&txn_batch(6, "b"), &options()).unwrap(); // 2: committed, superseded at 6
        log.append_marker(6, 0, ControlType::Commit, 0, 0, 1_000).unwrap(); // 3
        log.append(&txn_batch(7, "c"), &options()).unwrap(); // 4: committed, kept
        log.append_marker(7, 0, ControlType::Commit, 0, 0, 1_000).unwrap(); // 5
        log.append(&batch(&[("b", Some("b2"))]), &options()).unwrap(); // 6
        log.append(&batch(&[("z", Some("z1"))]), &options()).unwrap(); // 7
        assert_eq!(log.aborted_transactions(0, 8).unwrap().len(), 1);

        // First cleaning: the data go, the empty transactions' markers get a horizon.
        log.clean(&clean_options(10_000)).unwrap().unwrap();
        assert_eq!(batches(&log), vec![(1, true), (3, true), (4, false), (5, true), (6, false), (7, false)]);
        // Before the horizon (10 000 + 1 000) they stay, whatever else is cleaned.
        log.append(&batch(&[("y", Some("y1"))]), &options()).unwrap();
        log.clean(&clean_options(10_500)).unwrap().unwrap();
        assert_eq!(batches(&log).iter().filter(|(_, marker)| *marker).count(), 3);
        // After it, the markers of the emptied transactions go, with the abort's index
        // entry; the marker of the transaction that still holds "c" stays.
        log.append(&batch(&[("x", Some("x1"))]), &options()).unwrap();
        log.clean(&clean_options(11_500)).unwrap().unwrap();
        assert_eq!(batches(&log), vec![(4, false), (5, true), (6, false), (7, false), (8, false), (9, false)]);
        assert!(log.aborted_transactions(0, 10).unwrap().is_empty());
        // A read_committed consumer still sees exactly the committed records.
        let committed = log.read_with(0, 1 << 24, true, Isolation::ReadCommitted).unwrap();
        assert!(committed.aborted.unwrap_or_default().is_empty());
        assert_eq!(
            contents(&log).iter().map(|(o, k, _)| (*o, k.as_str())).collect::<Vec<_>>(),
            vec![(4, "c"), (6, "b"), (7, "z"), (8, "y"), (9, "x")]
        );
    }

    #[test]
    fn the_dirty_ratio_and_the_compaction_lag_hold_cleaning_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions::new(dir.path())).unwrap();
        let log = store.open_log(LogId(4), LogClass::User).unwrap();
        for i in 0..4 {
            log.append(&batch(&[("k", Some(&format!("v{i}")))]), &options()).unwrap();
        }
        // Records are at t=1000: with a lag of 5 s at t=3000 they are too young.
        let young = CleanOptions { min_compaction_lag_ms: 5_000, ..clean_options(3_000) };
        assert_eq!(log.clean(&young).unwrap(), None);
        let strict = CleanOptions { min_cleanable_ratio: 1.1, ..clean_options(10_000) };
        assert_eq!(log.clean(&strict).unwrap(), None);
        // ... unless a dirty record is older than max.compaction.lag.ms.
        let overdue = CleanOptions { max_compaction_lag_ms: 1_000, ..strict };
        assert_eq!(log.clean(&overdue).unwrap().unwrap().records_removed, 2);
        assert_eq!(contents(&log).iter().map(|(o, _, _)| *o).collect::<Vec<_>>(), vec![2, 3]);
    }
}
