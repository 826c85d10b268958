//! Idempotent-producer state per (log, producer id), mirroring Kafka's
//! `ProducerStateManager` / `ProducerAppendInfo`.
//!
//! For each producer the log keeps its epoch and the metadata of its last
//! [`BATCHES_TO_RETAIN`] batches, so a retried batch is recognised and acknowledged with
//! its original offset instead of being written twice.

use std::collections::VecDeque;

use bytes::{Buf, BufMut};

use crate::error::{AppendError, StorageError};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`: the client keeps at most five
/// batches in flight, so five are enough to recognise any retry.
pub const BATCHES_TO_RETAIN: usize = 5;

/// Where one of a producer's batches landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// What the log knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    /// First offset of the producer's open transaction in this log, if one is open
    /// (Kafka's `currentTxnFirstOffset`): the last stable offset cannot pass it.
    pub current_txn_first_offset: Option<i64>,
    /// Timestamp of the producer's last write here (Kafka's `lastTimestamp`: the batch's
    /// max timestamp, or the marker's): the producer expires `producer.id.expiration.ms`
    /// after it.
    pub last_timestamp: i64,
    /// Epoch of the transaction coordinator that wrote the producer's last marker here
    /// ([`NO_COORDINATOR_EPOCH`] before any): a marker from an older coordinator is one a
    /// deposed coordinator still sends, and is fenced.
    pub coordinator_epoch: i32,
}

/// Kafka's default `coordinatorEpoch` for a producer that has had no marker yet.
pub const NO_COORDINATOR_EPOCH: i32 = -1;

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            current_txn_first_offset: None,
            last_timestamp: 0,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
        }
    }
}

/// The outcome of checking a new batch against the producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already in the log: acknowledge with the original offsets.
    Duplicate(BatchMetadata),
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (next == 0 && last == i32::MAX)
}

impl ProducerEntry {
    /// Checks a batch from `producer_id` with `epoch` and sequences `first..=last`.
    ///
    /// `entry` is `None` when the log has never seen this producer (or its state was
    /// removed): then any sequence is accepted, as Kafka does.
    pub fn check(
        entry: Option<&ProducerEntry>,
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        last_sequence: i32,
    ) -> Result<SequenceCheck, AppendError> {
        let Some(entry) = entry else {
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(AppendError::InvalidProducerEpoch { producer_id, epoch, current: entry.epoch });
        }
        if epoch == entry.epoch {
            if let Some(dup) =
                entry.batches.iter().find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
            {
                return Ok(SequenceCheck::Duplicate(*dup));
            }
            let last = entry.batches.back().map_or(-1, |b| b.last_sequence);
            if !in_sequence(last, first_sequence) {
                return Err(AppendError::OutOfOrderSequence {
                    producer_id,
                    epoch,
                    first_sequence,
                    last_sequence: last,
                });
            }
        } else if first_sequence != 0 {
            // A bumped epoch starts again at sequence 0.
            return Err(AppendError::OutOfOrderSequence { producer_id, epoch, first_sequence, last_sequence: -1 });
        }
        Ok(SequenceCheck::Append)
    }

    /// The state after appending `batch` with `epoch`.
    pub fn after_append(entry: Option<&ProducerEntry>, epoch: i16, batch: BatchMetadata) -> ProducerEntry {
        let mut next = match entry {
            Some(e) if e.epoch == epoch => e.clone(),
            _ => ProducerEntry {
                epoch,
                batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
                current_txn_first_offset: entry.and_then(|e| e.current_txn_first_offset),
                last_timestamp: batch.max_timestamp,
                // Kafka keeps it across a producer epoch bump: a coordinator's fencing does
                // not depend on which producer epoch it ends.
                coordinator_epoch: entry.map_or(NO_COORDINATOR_EPOCH, |e| e.coordinator_epoch),
            },
        };
        if next.batches.len() == BATCHES_TO_RETAIN {
            next.batches.pop_front();
        }
        next.batches.push_back(batch);
        next.last_timestamp = batch.max_timestamp;
        next
    }

    /// Kafka's `ProducerStateManager.isProducerExpired`: no transaction open here, and no
    /// write for `expiration_ms`. An expired producer is forgotten; its next batch is then
    /// accepted with any sequence, as for a producer never seen.
    pub fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.current_txn_first_offset.is_none() && now_ms.saturating_sub(self.last_timestamp) >= expiration_ms
    }

    /// The state after a transaction marker written with `epoch` at `timestamp` by a
    /// coordinator of `coordinator_epoch`: the transaction is closed, a newer epoch (a
    /// fenced or bumped producer) forgets the old sequences, and markers from coordinators
    /// older than this one are fenced from now on.
    pub fn after_marker(
        entry: Option<&ProducerEntry>,
        epoch: i16,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> ProducerEntry {
        let mut next = match entry {
            Some(e) if e.epoch == epoch => e.clone(),
            _ => ProducerEntry { epoch, ..ProducerEntry::default() },
        };
        next.current_txn_first_offset = None;
        next.last_timestamp = timestamp;
        next.coordinator_epoch = coordinator_epoch;
        next
    }

    /// Binary form stored in RocksDB: epoch, count, 32 bytes per batch, the open
    /// transaction's first offset (-1 for none), the last timestamp, then the coordinator
    /// epoch. Older entries end earlier: without the coordinator epoch they read as having
    /// had no marker (so no coordinator is fenced by them); without the timestamp they
    /// read with their last batch's (or none, so they expire at the first check); without
    /// the transaction offset they read as having no open transaction.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(3 + self.batches.len() * 32 + 20);
        buf.put_i16(self.epoch);
        buf.put_u8(self.batches.len() as u8);
        for b in &self.batches {
            buf.put_i32(b.first_sequence);
            buf.put_i32(b.last_sequence);
            buf.put_i64(b.first_offset);
            buf.put_i64(b.last_offset);
            buf.put_i64(b.max_timestamp);
        }
        buf.put_i64(self.current_txn_first_offset.unwrap_or(-1));
        buf.put_i64(self.last_timestamp);
        buf.put_i32(self.coordinator_epoch);
        buf
    }

    pub fn decode(mut bytes: &[u8]) -> Result<Self, StorageError> {
        let corrupt = |reason: &str| StorageError::Corrupt { what: "producer state", reason: reason.to_string() };
        if bytes.len() < 3 {
            return Err(corrupt("too short"));
        }
        let epoch = bytes.get_i16();
        let count = bytes.get_u8() as usize;
        let tail = bytes.len().checked_sub(count * 32);
        if count > BATCHES_TO_RETAIN || !matches!(tail, Some(0 | 8 | 16 | 20)) {
            return Err(corrupt("bad batch count"));
        }
        let batches: VecDeque<BatchMetadata> = (0..count)
            .map(|_| BatchMetadata {
                first_sequence: bytes.get_i32(),
                last_sequence: bytes.get_i32(),
                first_offset: bytes.get_i64(),
                last_offset: bytes.get_i64(),
                max_timestamp: bytes.get_i64(),
            })
            .collect();
        let current_txn_first_offset = if bytes.len() >= 8 { Some(bytes.get_i64()).filter(|&o| o >= 0) } else { None };
        let last_timestamp =
            if bytes.len() >= 8 { bytes.get_i64() } else { batches.back().map_or(i64::MIN, |b| b.max_timestamp) };
        let coordinator_epoch = if bytes.len() == 4 { bytes.get_i32() } else { NO_COORDINATOR_EPOCH };
        Ok(ProducerEntry { epoch, batches, current_txn_first_offset, last_timestamp, coordinator_epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first: i32, last: i32, offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_sequence: first,
            last_sequence: last,
            first_offset: offset,
            last_offset: offset + i64::from(last - first),
            max_timestamp: 0,
        }
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut entry = None;
        for i in 0..7 {
            let check = ProducerEntry::check(entry.as_ref(), 1, 0, i * 2, i * 2 + 1).unwrap();
            assert_eq!(check, SequenceCheck::Append);
            entry = Some(ProducerEntry::after_append(entry.as_ref(), 0, meta(i * 2, i * 2 + 1, i64::from(i) * 2)));
        }
        let entry = entry.unwrap();
        assert_eq!(entry.batches.len(), BATCHES_TO_RETAIN);
        // The last five batches are recognised with their original offsets.
        assert_eq!(
            ProducerEntry::check(Some(&entry), 1, 0, 12, 13).unwrap(),
            SequenceCheck::Duplicate(meta(12, 13, 12))
        );
        assert_eq!(ProducerEntry::check(Some(&entry), 1, 0, 4, 5).unwrap(), SequenceCheck::Duplicate(meta(4, 5, 4)));
        assert!(matches!(
            ProducerEntry::check(Some(&entry), 1, 0, 16, 16),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            ProducerEntry::check(Some(&entry), 1, -1, 14, 14),
            Err(AppendError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(ProducerEntry::check(Some(&entry), 1, 1, 0, 3).unwrap(), SequenceCheck::Append);
        assert!(ProducerEntry::check(Some(&entry), 1, 1, 5, 6).is_err());
        assert_eq!(ProducerEntry::decode(&entry.encode()).unwrap(), entry);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let entry = ProducerEntry::after_append(None, 0, meta(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(ProducerEntry::check(Some(&entry), 1, 0, 0, 0).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn open_transaction_round_trips_and_old_entries_still_decode() {
        let mut entry = ProducerEntry::after_append(None, 2, meta(0, 1, 10));
        entry.current_txn_first_offset = Some(10);
        assert_eq!(ProducerEntry::decode(&entry.encode()).unwrap(), entry);
        let old_format = &entry.encode()[..3 + 32];
        let old = ProducerEntry::decode(old_format).unwrap();
        assert_eq!((old.epoch, old.batches.len(), old.current_txn_first_offset), (2, 1, None));
        // Written before the last timestamp was kept: it reads as the last batch's.
        let before_timestamps = ProducerEntry::decode(&entry.encode()[..3 + 32 + 8]).unwrap();
        assert_eq!(before_timestamps.last_timestamp, entry.batches[0].max_timestamp);
        assert_eq!(before_timestamps.current_txn_first_offset, Some(10));
        let closed = ProducerEntry::after_marker(Some(&entry), 3, 0, 77);
        assert_eq!((closed.epoch, closed.batches.len(), closed.current_txn_first_offset), (3, 0, None));
        assert_eq!(closed.last_timestamp, 77);
    }

    #[test]
    fn a_producer_expires_after_its_last_write_unless_a_transaction_is_open() {
        let mut batch = meta(0, 4, 0);
        batch.max_timestamp = 1_000;
        let entry = ProducerEntry::after_append(None, 0, batch);
        assert_eq!(entry.last_timestamp, 1_000);
        assert!(!entry.is_expired(1_999, 1_000));
        assert!(entry.is_expired(2_000, 1_000));
        let mut open = entry.clone();
        open.current_txn_first_offset = Some(0);
        assert!(!open.is_expired(i64::MAX, 1_000));
        // The marker's timestamp counts as a write.
        let closed = ProducerEntry::after_marker(Some(&open), 0, 0, 5_000);
        assert!(!closed.is_expired(5_999, 1_000));
        assert!(closed.is_expired(6_000, 1_000));
    }

    #[test]
    fn coordinator_epoch_round_trips_and_older_formats_read_as_none() {
        let open = ProducerEntry::after_append(None, 2, meta(0, 1, 10));
        assert_eq!(open.coordinator_epoch, NO_COORDINATOR_EPOCH);
        let mut entry = ProducerEntry::after_marker(Some(&open), 2, 7, 99);
        assert_eq!(entry.coordinator_epoch, 7);
        entry = ProducerEntry::after_append(Some(&entry), 2, meta(2, 3, 12));
        entry.current_txn_first_offset = Some(12);
        let encoded = entry.encode();
        assert_eq!(encoded.len(), 3 + 2 * 32 + 20);
        assert_eq!(ProducerEntry::decode(&encoded).unwrap(), entry);
        for tail in [0, 8, 16] {
            let old = ProducerEntry::decode(&encoded[..3 + 2 * 32 + tail]).unwrap();
            assert_eq!(old.coordinator_epoch, NO_COORDINATOR_EPOCH, "tail of {tail} bytes");
            assert_eq!(old.batches, entry.batches);
        }
        let before_epochs = ProducerEntry::decode(&encoded[..3 + 2 * 32 + 16]).unwrap();
        assert_eq!((before_epochs.current_txn_first_offset, before_epochs.last_timestamp), (Some(12), 0));
        assert!(ProducerEntry::decode(&encoded[..encoded.len() - 1]).is_err());
    }

    #[test]
    fn coordinator_epoch_survives_producer_epoch_bumps() {
        let marked = ProducerEntry::after_marker(None, 0, 4, 1);
        // A bumped producer epoch resets the sequences but not the coordinator's fencing.
        let bumped = ProducerEntry::after_append(Some(&marked), 1, meta(0, 0, 5));
        assert_eq!((bumped.epoch, bumped.batches.len(), bumped.coordinator_epoch), (1, 1, 4));
        let same = ProducerEntry::after_append(Some(&bumped), 1, meta(1, 1, 6));
        assert_eq!(same.coordinator_epoch, 4);
        let newer = ProducerEntry::after_marker(Some(&same), 2, 6, 2);
        assert_eq!((newer.epoch, newer.batches.len(), newer.coordinator_epoch), (2, 0, 6));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(ProducerEntry::decode(&[0, 0, 9]).is_err());
        assert!(ProducerEntry::decode(&[0]).is_err());
    }
}
