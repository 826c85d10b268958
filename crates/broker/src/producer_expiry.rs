//! Expiry of idle producers (Kafka's `UnifiedLog.removeExpiredProducers`, run by the
//! `PeriodicProducerExpirationCheck` task): every `producer.id.expiration.check.interval.ms`,
//! each local replica forgets the idempotent producers that have no transaction open in
//! it and have not written to it for `producer.id.expiration.ms`. Without this every
//! producer that ever wrote stays in memory and on disk for the life of the partition.
//!
//! Every replica expires on its own, as in Kafka: the state is a cache of what the log
//! says, and an expired producer's next batch is accepted with any sequence, as a new
//! producer's would be.

use std::sync::Arc;

use crate::broker::Broker;

/// Runs the expiry every `producer.id.expiration.check.interval.ms` until the broker is
/// dropped.
pub fn start(broker: &Arc<Broker>) {
    crate::background::spawn_blocking_pass(
        broker,
        "producer expiry",
        |config| config.producer_id_expiration_check_interval_ms,
        |broker, now_ms| {
            run_pass(broker, now_ms);
        },
    );
}

/// One pass over every local replica, with `producer.id.expiration.ms` as it is now
/// (a dynamic broker config). Returns how many producers were forgotten.
pub fn run_pass(broker: &Broker, now_ms: i64) -> usize {
    let expiration_ms = broker.replicas.effective_config().producer_id_expiration_ms;
    let mut expired = 0;
    for topic in broker.replicas.topics.all() {
        for replica in topic.replicas.iter().filter(|r| r.is_local()) {
            match replica.log.expire_producers(now_ms, expiration_ms) {
                Ok(0) => {}
                Ok(n) => {
                    expired += n;
                    tracing::debug!(topic = %replica.topic, partition = replica.index, expired = n,
                        "removed expired producer state");
                }
                Err(e) => tracing::error!(topic = %replica.topic, partition = replica.index, error = %e,
                    "expiring producer state failed"),
            }
        }
    }
    if expired > 0 {
        tracing::info!(expired, expiration_ms, "producers idle longer than producer.id.expiration.ms forgotten");
    }
    expired
}
