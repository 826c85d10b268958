//! The log cleaner (Kafka's `LogCleaner`): every `log.cleaner.backoff.ms`, each local
//! replica of a topic whose `cleanup.policy` includes `compact` — the internal topics
//! included, so their replay stays bounded — is cleaned when due (see
//! `rivulet_storage::log::compaction` for the rules).
//!
//! Every replica cleans its own copy, as in Kafka: cleaning never changes offsets and
//! stays below the high watermark, so replicas keep agreeing on every offset that still
//! holds a record. One log is cleaned at a time, on a blocking thread, its I/O bounded by
//! `log.cleaner.io.max.bytes.per.second`.

use std::sync::Arc;
use std::time::Duration;

use rivulet_storage::log::{CleanOptions, Cleaned};

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::replication::class_of;
use crate::replication::topics::Topic;

/// A cleaning that removed at least this much also compacts the log's key range in
/// RocksDB, so the overwritten batches' space comes back now.
const COMPACT_AFTER_BYTES: i64 = 4 * 1024 * 1024;

/// Runs the cleaner every `log.cleaner.backoff.ms` until the broker is dropped, unless
/// `log.cleaner.enable=false`.
pub fn start(broker: &Arc<Broker>) {
    if !broker.config.log_cleaner_enable {
        tracing::info!("log cleaner disabled (log.cleaner.enable=false): compacted topics are not cleaned");
        return;
    }
    crate::background::spawn_blocking_pass(
        broker,
        "log cleaner",
        |config| config.log_cleaner_backoff_ms,
        |broker, now_ms| {
            run_pass(broker, now_ms);
        },
    );
}

/// The cleaner's settings for `topic`; the broker-level ones (buffer size, I/O bound) as
/// the dynamic broker configs say now.
fn options(config: &BrokerConfig, topic: &Topic, now_ms: i64) -> CleanOptions {
    let settings = &topic.settings;
    CleanOptions {
        now_ms,
        delete_retention_ms: settings.delete_retention_ms,
        min_compaction_lag_ms: settings.min_compaction_lag_ms,
        max_compaction_lag_ms: settings.max_compaction_lag_ms,
        min_cleanable_ratio: settings.min_cleanable_dirty_ratio,
        dedupe_buffer_bytes: config.log_cleaner_dedupe_buffer_size,
        io_max_bytes_per_second: config.log_cleaner_io_max_bytes_per_second,
    }
}

/// Cleans every local replica of a compacted topic that is due. Returns how many logs
/// were cleaned.
pub fn run_pass(broker: &Broker, now_ms: i64) -> usize {
    let mut cleaned_logs = 0;
    let config = broker.replicas.effective_config();
    for topic in broker.replicas.topics.all() {
        if !topic.settings.compacted {
            continue;
        }
        let options = options(&config, &topic, now_ms);
        for replica in topic.replicas.iter().filter(|r| r.is_local()) {
            let started = std::time::Instant::now();
            match replica.log.clean(&options) {
                Ok(Some(cleaned)) => {
                    cleaned_logs += 1;
                    log_cleaned(&replica.topic, replica.index, &cleaned, started.elapsed());
                    if cleaned.bytes_before - cleaned.bytes_after >= COMPACT_AFTER_BYTES {
                        let (from, to) = rivulet_storage::keys::log_range(replica.log.id().0);
                        if let Err(e) = broker.store.compact_range(class_of(topic.record.internal), &from, &to) {
                            tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "reclaiming cleaned space failed");
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "cleaning the log failed")
                }
            }
        }
    }
    if cleaned_logs > 0 {
        // The write-ahead log keeps every record the cleaning removed, and a restart replays
        // it, until each column family written alongside (sizes, indexes, producer state)
        // is flushed: without this, a busy compacted topic — `__consumer_offsets` above
        // all — makes every restart slower until the WAL reaches its size bound.
        if let Err(e) = broker.store.flush_memtables() {
            tracing::warn!(error = %e, "flushing memtables after cleaning failed");
        }
    }
    cleaned_logs
}

fn log_cleaned(topic: &str, partition: i32, cleaned: &Cleaned, elapsed: Duration) {
    tracing::info!(
        topic,
        partition,
        cleaned_up_to = cleaned.cleaned_up_to,
        records_removed = cleaned.records_removed,
        batches_rewritten = cleaned.batches_rewritten,
        batches_removed = cleaned.batches_removed,
        bytes_before = cleaned.bytes_before,
        bytes_after = cleaned.bytes_after,
        elapsed_ms = elapsed.as_millis() as u64,
        "cleaned log"
    );
}
