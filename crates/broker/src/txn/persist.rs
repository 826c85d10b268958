//! The records of `__transaction_state`: key = the transactional id (UTF-8), value = the
//! JSON form of [`TxnValue`] (Kafka's `TransactionLogValue`), null for a removed id. The
//! last record per key wins, as after log compaction.

use std::collections::BTreeSet;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_and_names_match_kafka() {
        let value = TxnValue {
            producer_id: 4,
            last_producer_id: -1,
            producer_epoch: 2,
            last_producer_epoch: 1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("t".to_string(), 0), ("__consumer_offsets".to_string(), 12)].into_iter().collect(),
            txn_start_ms: 5,
            last_update_ms: 6,
        };
        let json = serde_json::to_vec(&value).unwrap();
        assert_eq!(serde_json::from_slice::<TxnValue>(&json).unwrap(), value);
        for state in [TxnState::Empty, TxnState::CompleteAbort, TxnState::PrepareEpochFence] {
            assert_eq!(TxnState::from_name(state.name()), Some(state));
        }
    }
}
