//! The broker's periodic passes over its logs — retention, the log cleaner and the expiry
//! of idle producers — each run on a blocking thread, because a pass scans and deletes on
//! disk. Between two passes a task waits the period its setting gives; the period is read
//! from the configuration in effect before every wait, so a dynamic broker config (for
//! example `log.cleaner.backoff.ms`) applies from the next pass on, without a restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::broker::Broker;
use crate::config::BrokerConfig;

/// Runs `pass(broker, now_ms)` every `period(config)` milliseconds (the first after one
/// period, so the broker finishes starting) until the broker is dropped.
pub(crate) fn spawn_blocking_pass(
    broker: &Arc<Broker>,
    what: &'static str,
    period: fn(&BrokerConfig) -> u64,
    pass: fn(&Broker, i64),
) {
    let weak = Arc::downgrade(broker);
    tokio::spawn(async move {
        loop {
            let wait = {
                let Some(broker) = weak.upgrade() else { break };
                period(&broker.replicas.effective_config())
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let Some(broker) = weak.upgrade() else { break };
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            if let Err(e) = tokio::task::spawn_blocking(move || pass(&broker, now_ms)).await {
                tracing::error!(error = %e, what, "background pass failed");
            }
        }
    });
}
