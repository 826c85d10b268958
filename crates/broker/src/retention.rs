//! Time- and size-based retention (Kafka's `LogManager.cleanupLogs` →
//! `UnifiedLog.deleteOldSegments`): every `log.retention.check.interval.ms`, each partition
//! this broker leads whose topic's `cleanup.policy` includes `delete` has its log start
//! offset moved past the batches that `retention.ms` / `retention.bytes` no longer allow,
//! and their space is given back.
//!
//! Only leaders apply retention; followers move their log start to the one their leader
//! reports in every fetch response, so all replicas keep the same records. See
//! `rivulet_storage::log::lifecycle` for why the unit of deletion is the batch.

use std::sync::Arc;

use rivulet_storage::log::{RetentionLimits, Trimmed};
use rivulet_storage::LogClass;

use crate::broker::Broker;
use crate::replication::class_of;
use crate::replication::replica::Replica;

/// A trim that freed at least this much also rewrites the SST files overlapping it, so the
/// space comes back now; smaller ones wait for RocksDB's own compactions.
const COMPACT_AFTER_BYTES: i64 = 4 * 1024 * 1024;

/// What one retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub partitions_trimmed: usize,
    pub bytes_removed: i64,
}

/// Runs retention every `log.retention.check.interval.ms` until the broker is dropped.
pub fn start(broker: &Arc<Broker>) {
    crate::background::spawn_blocking_pass(
        broker,
        "retention",
        |config| config.log_retention_check_interval_ms,
        |broker, now_ms| {
            run_pass(broker, now_ms);
        },
    );
}

/// One retention pass over every partition this broker leads.
pub fn run_pass(broker: &Broker, now_ms: i64) -> PassSummary {
    let mut summary = PassSummary::default();
    for topic in broker.replicas.topics.all() {
        if !topic.settings.delete_retention || topic.record.internal {
            continue;
        }
        let limits = RetentionLimits {
            retention_ms: topic.settings.retention_ms,
            retention_bytes: topic.settings.retention_bytes,
            now_ms,
        };
        if limits.retention_ms < 0 && limits.retention_bytes < 0 {
            continue;
        }
        for replica in topic.replicas.iter().filter(|r| r.is_leader()) {
            match apply(broker, replica, &limits, class_of(topic.record.internal)) {
                Ok(Some(trimmed)) => {
                    summary.partitions_trimmed += 1;
                    summary.bytes_removed += trimmed.removed_bytes;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "retention failed")
                }
            }
        }
    }
    if summary.partitions_trimmed > 0 {
        // The write-ahead log still holds what was deleted until every memtable that
        // refers to it is flushed.
        if let Err(e) = broker.store.flush_memtables() {
            tracing::warn!(error = %e, "flushing memtables after retention failed");
        }
    }
    summary
}

fn apply(
    broker: &Broker,
    replica: &Replica,
    limits: &RetentionLimits,
    class: LogClass,
) -> Result<Option<Trimmed>, rivulet_storage::StorageError> {
    let Some(point) = replica.log.retention_point(limits)? else { return Ok(None) };
    let Some(trimmed) = replica.log.advance_log_start(point.offset)? else { return Ok(None) };
    if point.by_time {
        tracing::info!(topic = %replica.topic, partition = replica.index, log_start_offset = trimmed.log_start_offset,
            batches = trimmed.removed_batches, bytes = trimmed.removed_bytes, retention_ms = limits.retention_ms,
            "deleted records due to retention time breach");
    } else {
        tracing::info!(topic = %replica.topic, partition = replica.index, log_start_offset = trimmed.log_start_offset,
            batches = trimmed.removed_batches, bytes = trimmed.removed_bytes, retention_bytes = limits.retention_bytes,
            "deleted records due to retention size breach");
    }
    reclaim(broker, replica, &trimmed, class);
    Ok(Some(trimmed))
}

/// Gives a trim's disk space back (see [`rivulet_storage::Store::reclaim`]).
pub fn reclaim(broker: &Broker, replica: &Replica, trimmed: &Trimmed, class: LogClass) {
    let (from, to) = replica.log.trimmed_range(trimmed);
    if let Err(e) = broker.store.reclaim(class, &from, &to, trimmed.removed_bytes >= COMPACT_AFTER_BYTES) {
        tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "reclaiming deleted space failed");
    }
}
