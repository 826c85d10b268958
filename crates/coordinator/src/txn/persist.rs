//! The records of `__transaction_state`, in Kafka's format: key `TransactionLogKey` (the
//! transactional id), value `TransactionLogValue` (see
//! `rivulet_protocol::coordinator_records`), null for a removed id, so Kafka's
//! `TransactionLogMessageFormatter` reads the topic. The last record per key wins, as
//! after log compaction.
//!
//! Earlier versions of Rivulet wrote the transactional id's UTF-8 bytes as the key and the
//! JSON form of [`TxnValue`] as the value. Those records are still read: a JSON value
//! starts with `{`, a Kafka value with its `int16` version (first byte 0); a tombstone's
//! key is taken as Kafka's when it parses as a version-0 `TransactionLogKey` that fills the
//! key exactly, which no earlier id can do unless it began with two NUL characters.

use std::collections::BTreeSet;

use rivulet_protocol::coordinator_records::{
    transaction_status, RecordFormatError, TransactionLogKey, TransactionLogValue,
};
use serde::{Deserialize, Serialize};

/// Kafka's `TransactionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    /// The name `kafka-transactions` and DescribeTransactions/ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
            TxnState::Dead,
            TxnState::PrepareEpochFence,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnValue {
    pub producer_id: i64,
    /// The id and epoch before the last bump, so a retried InitProducerId (KIP-360) is
    /// recognised.
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions in the open transaction, including the `__consumer_offsets` partition
    /// of any group whose offsets it commits.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the open transaction began; -1 when none is open.
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnState {
    /// Kafka's `TransactionState` id.
    fn id(self) -> i8 {
        match self {
            TxnState::Empty => transaction_status::EMPTY,
            TxnState::Ongoing => transaction_status::ONGOING,
            TxnState::PrepareCommit => transaction_status::PREPARE_COMMIT,
            TxnState::PrepareAbort => transaction_status::PREPARE_ABORT,
            TxnState::CompleteCommit => transaction_status::COMPLETE_COMMIT,
            TxnState::CompleteAbort => transaction_status::COMPLETE_ABORT,
            TxnState::Dead => transaction_status::DEAD,
            TxnState::PrepareEpochFence => transaction_status::PREPARE_EPOCH_FENCE,
        }
    }

    fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            transaction_status::EMPTY => TxnState::Empty,
            transaction_status::ONGOING => TxnState::Ongoing,
            transaction_status::PREPARE_COMMIT => TxnState::PrepareCommit,
            transaction_status::PREPARE_ABORT => TxnState::PrepareAbort,
            transaction_status::COMPLETE_COMMIT => TxnState::CompleteCommit,
            transaction_status::COMPLETE_ABORT => TxnState::CompleteAbort,
            transaction_status::DEAD => TxnState::Dead,
            transaction_status::PREPARE_EPOCH_FENCE => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }
}

/// Why a `__transaction_state` record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TxnRecordError {
    #[error(transparent)]
    Kafka(#[from] RecordFormatError),
    #[error("record written by an earlier version is not valid JSON: {0}")]
    Legacy(#[from] serde_json::Error),
    #[error("unknown transaction status {0}")]
    UnknownStatus(i8),
}

impl From<&TxnValue> for TransactionLogValue {
    fn from(v: &TxnValue) -> Self {
        let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
        // The set is ordered by topic then partition, so each topic's ids are adjacent.
        for (topic, partition) in &v.partitions {
            match partitions.last_mut() {
                Some((last, ids)) if last == topic => ids.push(*partition),
                _ => partitions.push((topic.clone(), vec![*partition])),
            }
        }
        TransactionLogValue {
            producer_id: v.producer_id,
            previous_producer_id: v.last_producer_id,
            next_producer_id: -1,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: v.last_producer_epoch,
            timeout_ms: v.timeout_ms,
            status: v.state.id(),
            partitions,
            last_update_timestamp_ms: v.last_update_ms,
            start_timestamp_ms: v.txn_start_ms,
            client_transaction_version: 0,
        }
    }
}

impl TryFrom<TransactionLogValue> for TxnValue {
    type Error = TxnRecordError;

    fn try_from(v: TransactionLogValue) -> Result<Self, TxnRecordError> {
        Ok(TxnValue {
            producer_id: v.producer_id,
            last_producer_id: v.previous_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: v.last_producer_epoch,
            timeout_ms: v.timeout_ms,
            state: TxnState::from_id(v.status).ok_or(TxnRecordError::UnknownStatus(v.status))?,
            partitions: v
                .partitions
                .into_iter()
                .flat_map(|(topic, ids)| ids.into_iter().map(move |id| (topic.clone(), id)))
                .collect(),
            txn_start_ms: v.start_timestamp_ms,
            last_update_ms: v.last_update_timestamp_ms,
        })
    }
}

/// A record's key and value bytes in Kafka's format (`None` value: a tombstone).
pub fn encode_record(transactional_id: &str, value: Option<&TxnValue>) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = TransactionLogKey { transactional_id: transactional_id.to_string() }.encode();
    (key.to_vec(), value.map(|v| TransactionLogValue::from(v).encode().to_vec()))
}

/// Reads one stored record, in Kafka's format or the format of earlier versions.
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<(String, Option<TxnValue>), TxnRecordError> {
    let legacy = match value {
        Some(v) => v.first() == Some(&b'{'),
        None => TransactionLogKey::decode(key).is_err(),
    };
    if legacy {
        let id = String::from_utf8_lossy(key).into_owned();
        let value = value.map(serde_json::from_slice::<TxnValue>).transpose()?;
        return Ok((id, value));
    }
    let id = TransactionLogKey::decode(key)?.transactional_id;
    let value = value.map(|v| TransactionLogValue::decode(v).map_err(TxnRecordError::from)).transpose()?;
    Ok((id, value.map(TxnValue::try_from).transpose()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnValue {
        TxnValue {
            producer_id: 4,
            last_producer_id: -1,
            producer_epoch: 2,
            last_producer_epoch: 1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("t".to_string(), 0), ("t".to_string(), 3), ("__consumer_offsets".to_string(), 12)]
                .into_iter()
                .collect(),
            txn_start_ms: 5,
            last_update_ms: 6,
        }
    }

    #[test]
    fn records_round_trip_in_kafkas_format() {
        let value = ongoing();
        let (key, bytes) = encode_record("tx-1", Some(&value));
        // TransactionLogKey v0: version, then the id as an int16-prefixed string.
        assert_eq!(key, [&[0u8, 0, 0, 4][..], b"tx-1"].concat());
        let bytes = bytes.unwrap();
        assert_eq!(bytes[..2], [0, 1]);
        let kafka = TransactionLogValue::decode(&bytes).unwrap();
        assert_eq!(kafka.partitions, vec![("__consumer_offsets".to_string(), vec![12]), ("t".to_string(), vec![0, 3])]);
        assert_eq!(kafka.status, 1);
        assert_eq!(decode_record(&key, Some(bytes.as_slice())).unwrap(), ("tx-1".to_string(), Some(value)));
        assert_eq!(decode_record(&key, None).unwrap(), ("tx-1".to_string(), None));
    }

    #[test]
    fn records_of_earlier_versions_are_read() {
        let value = ongoing();
        let json = serde_json::to_vec(&value).unwrap();
        assert_eq!(decode_record(b"tx-1", Some(json.as_slice())).unwrap(), ("tx-1".to_string(), Some(value)));
        assert_eq!(decode_record(b"tx-1", None).unwrap(), ("tx-1".to_string(), None));
    }

    #[test]
    fn every_state_has_kafkas_id() {
        for id in 0..8 {
            assert_eq!(TxnState::from_id(id).map(TxnState::id), Some(id));
        }
        assert_eq!(TxnState::from_id(8), None);
    }

    #[test]
    fn value_round_trips_and_names_match_kafka() {
        let value = ongoing();
        let json = serde_json::to_vec(&value).unwrap();
        assert_eq!(serde_json::from_slice::<TxnValue>(&json).unwrap(), value);
        for state in [TxnState::Empty, TxnState::CompleteAbort, TxnState::PrepareEpochFence] {
            assert_eq!(TxnState::from_name(state.name()), Some(state));
        }
    }
}
