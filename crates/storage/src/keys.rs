//! Column families and key encodings.
//!
//! Logs are not given a column family each: every CF has its own memtables and pins WAL
//! files, so thousands of partitions would mean thousands of memtables. Instead CFs are
//! split by *role* (user logs, internal logs, indexes, state) and each log is a key range
//! `log_id (u64 BE) ‖ base_offset (u64 BE)` inside its CF. Big-endian keys sort in offset
//! order, so a fetch is one seek plus a forward scan, the log end is one reverse seek, and
//! dropping a log prefix (retention) or a whole log (topic deletion) is one range delete.

/// Record batches of user topics.
pub const CF_LOG: &str = "log";
/// Record batches of internal topics (`__consumer_offsets`, `__transaction_state`), kept
/// apart so their compaction and retention never interfere with user traffic.
pub const CF_LOG_INTERNAL: &str = "log_internal";
/// Time index: `log_id ‖ running max timestamp` → base offset of the batch that raised it.
pub const CF_TIME_INDEX: &str = "time_index";
/// Producer state: `log_id ‖ producer_id` → [`crate::producer_state::ProducerEntry`].
pub const CF_PRODUCER_STATE: &str = "producer_state";
/// Aborted transactions: `log_id ‖ offset of the ABORT marker` → producer id, first
/// offset of the transaction and the last stable offset once it ended (Kafka's
/// `TransactionIndex`). Read committed fetches list the aborted transactions they overlap.
pub const CF_TXN_INDEX: &str = "txn_index";
/// Partition state: `log_id` → log start offset, `log_id ‖ HIGH_WATERMARK_SUFFIX` → the
/// last high watermark of a replicated log (Kafka's high-watermark checkpoint), and
/// `log_id ‖ SIZE_SUFFIX` → the log's size in bytes, and `log_id ‖ CLEANER_CHECKPOINT_SUFFIX`
/// → where its last cleaning ended.
pub const CF_PARTITION_STATE: &str = "partition_state";
/// Leader epochs: `log_id ‖ epoch` → offset of the epoch's first batch (Kafka's
/// `leader-epoch-checkpoint`). Followers use it to find where their history diverges
/// from a new leader's (KIP-101, KIP-279).
pub const CF_LEADER_EPOCHS: &str = "leader_epochs";
/// Second key component of a log's high-watermark checkpoint in [`CF_PARTITION_STATE`].
pub const HIGH_WATERMARK_SUFFIX: u64 = 1;
/// Second key component of a log's size in bytes (the batches from the log start to the
/// log end) in [`CF_PARTITION_STATE`]: written with every append, so `retention.bytes` and
/// DescribeLogDirs never scan a log to measure it.
pub const SIZE_SUFFIX: u64 = 2;
/// Second key component of a log's cleaner checkpoint in [`CF_PARTITION_STATE`]: the offset
/// below which the log was cleaned and the bytes it then held there (compacted topics).
pub const CLEANER_CHECKPOINT_SUFFIX: u64 = 3;
/// The broker's own metadata (topics, id counters), as opaque values under string keys.
pub const CF_META: &str = "meta";

/// Every column family the database must have.
pub const ALL_CFS: &[&str] = &[
    CF_LOG,
    CF_LOG_INTERNAL,
    CF_TIME_INDEX,
    CF_PRODUCER_STATE,
    CF_TXN_INDEX,
    CF_PARTITION_STATE,
    CF_LEADER_EPOCHS,
    CF_META,
];

/// `log_id ‖ value` with both big-endian.
pub fn log_key(log_id: u64, value: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&log_id.to_be_bytes());
    key[8..].copy_from_slice(&value.to_be_bytes());
    key
}

/// Maps an offset (never negative in a log) to its key component.
pub fn offset_component(offset: i64) -> u64 {
    debug_assert!(offset >= 0);
    offset.max(0) as u64
}

/// Maps a signed timestamp to a u64 that sorts in the same order.
pub fn timestamp_component(timestamp_ms: i64) -> u64 {
    (timestamp_ms as u64) ^ (1 << 63)
}

/// Inverse of [`timestamp_component`].
pub fn timestamp_from_component(component: u64) -> i64 {
    (component ^ (1 << 63)) as i64
}

/// Splits a 16-byte key back into `(log_id, value)`.
pub fn split_key(key: &[u8]) -> Option<(u64, u64)> {
    let log_id = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let value = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    Some((log_id, value))
}

/// The key range `[log_id ‖ 0, (log_id + 1) ‖ 0)` holding a whole log.
pub fn log_range(log_id: u64) -> ([u8; 16], [u8; 16]) {
    (log_key(log_id, 0), log_key(log_id.saturating_add(1), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_log_then_offset() {
        assert!(log_key(1, 5) < log_key(1, 6));
        assert!(log_key(1, u64::MAX) < log_key(2, 0));
        assert_eq!(split_key(&log_key(3, 9)), Some((3, 9)));
    }

    #[test]
    fn timestamps_sort_signed() {
        let values = [-5i64, -1, 0, 1, 1_700_000_000_000];
        for pair in values.windows(2) {
            assert!(timestamp_component(pair[0]) < timestamp_component(pair[1]));
        }
        assert_eq!(timestamp_from_component(timestamp_component(-1)), -1);
    }
}
