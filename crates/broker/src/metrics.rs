//! Prometheus metrics, named after Kafka's JMX metrics where one exists
//! (`kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec` →
//! `kafka_server_brokertopicmetrics_messagesin_total`), and a minimal `/metrics` HTTP
//! endpoint (`rivulet.metrics.listener`).

use std::sync::LazyLock;

use std::sync::Weak;

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// All of the broker's metrics.
pub struct Metrics {
    pub registry: Registry,
    pub messages_in: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub connections: IntGauge,
    pub failed_produce: IntCounter,
    /// SASL authentications by listener, mechanism and outcome (`success` / `failure`, and
    /// `reauthentication_success` / `reauthentication_failure` for KIP-368's): Kafka's
    /// `successful-authentication-total`, `failed-authentication-total`,
    /// `successful-reauthentication-total` and `failed-reauthentication-total`.
    pub authentications: IntCounterVec,
    /// Connections closed because their SASL session expired without re-authentication
    /// (Kafka's `expired-connections-killed-count`).
    pub expired_connections_killed: IntCounter,
    /// Connections refused because their address held `max.connections.per.ip` already.
    pub connections_rejected_per_ip: IntCounter,
    /// New connections held back by a connection creation rate (KIP-612), by listener and
    /// quota: `broker` or `listener` (`max.connection.creation.rate`: accepted late) and
    /// `ip` (`connection_creation_rate` quotas: closed after the delay, unanswered). Kafka's
    /// `connection-accept-throttle-time` and `ip-connection-accept-throttle-time`.
    pub connections_throttled: IntCounterVec,
    /// How long those connections were held, by the same labels.
    pub connection_throttle_seconds: CounterVec,
    /// Responses that told their client to wait (`throttle_time_ms`, the connection muted
    /// meanwhile), by the quota that set the longer throttle: `Produce`, `Fetch` or `Request`
    /// (Kafka's `QuotaType` of its `throttle-time` sensors).
    pub quota_throttled_responses: IntCounterVec,
    /// How long those responses told clients to wait, by the same label.
    pub quota_throttle_seconds: CounterVec,
    /// Requests (or parts of one) the authorizer denied, by API and resource type.
    pub authorization_denied: IntCounterVec,
    /// ACL bindings created and deleted through CreateAcls / DeleteAcls (`operation`).
    pub acl_changes: IntCounterVec,
    /// Per local partition replica (Kafka's `kafka.log:type=Log` size and offsets), read
    /// from the logs at every scrape.
    pub log_size: IntGaugeVec,
    pub log_start_offset: IntGaugeVec,
    pub log_end_offset: IntGaugeVec,
    /// Producers whose state the local replicas keep (Kafka's
    /// `kafka.server:type=ReplicaManager,name=ProducerIdCount`), read at every scrape.
    pub producer_id_count: IntGauge,
    /// Memory RocksDB holds, by kind (`memtables`, `table_readers`, `block_cache`): what a
    /// growing resident size is made of.
    pub storage_memory: IntGaugeVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let messages_in = IntCounter::new("kafka_server_brokertopicmetrics_messagesin_total", "Records appended to logs")?;
    let bytes_in = IntCounter::new("kafka_server_brokertopicmetrics_bytesin_total", "Record-batch bytes appended")?;
    let bytes_out =
        IntCounter::new("kafka_server_brokertopicmetrics_bytesout_total", "Record-batch bytes served by Fetch")?;
    let failed_produce = IntCounter::new(
        "kafka_server_brokertopicmetrics_failedproducerequests_total",
        "Produce partition appends that failed",
    )?;
    let requests =
        IntCounterVec::new(Opts::new("kafka_network_requestmetrics_requests_total", "Requests handled"), &["request"])?;
    let request_seconds = HistogramVec::new(
        HistogramOpts::new("kafka_network_requestmetrics_totaltime_seconds", "Time from decode to response encoded")
            .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
        &["request"],
    )?;
    let authentications = IntCounterVec::new(
        Opts::new("kafka_server_socketservermetrics_authentication_total", "SASL authentications by outcome"),
        &["listener", "mechanism", "outcome"],
    )?;
    registry.register(Box::new(authentications.clone()))?;
    let expired_connections_killed = IntCounter::new(
        "kafka_server_socketservermetrics_expired_connections_killed_total",
        "Connections closed when their SASL session expired without re-authentication",
    )?;
    registry.register(Box::new(expired_connections_killed.clone()))?;
    let connections_rejected_per_ip = IntCounter::new(
        "kafka_server_socketservermetrics_connections_rejected_per_ip_total",
        "Connections refused because their address held max.connections.per.ip already",
    )?;
    registry.register(Box::new(connections_rejected_per_ip.clone()))?;
    let connections_throttled = IntCounterVec::new(
        Opts::new(
            "kafka_server_socketservermetrics_connection_accept_throttled_total",
            "New connections held back by max.connection.creation.rate (broker, listener) or an IP's connection_creation_rate (ip: closed)",
        ),
        &["listener", "quota"],
    )?;
    registry.register(Box::new(connections_throttled.clone()))?;
    let connection_throttle_seconds = CounterVec::new(
        Opts::new(
            "kafka_server_socketservermetrics_connection_accept_throttle_time_seconds_total",
            "Time new connections were held back by a connection creation rate",
        ),
        &["listener", "quota"],
    )?;
    registry.register(Box::new(connection_throttle_seconds.clone()))?;
    let quota_throttled_responses = IntCounterVec::new(
        Opts::new(
            "kafka_server_quota_throttled_responses_total",
            "Responses throttled by a client quota, by quota type",
        ),
        &["quota_type"],
    )?;
    registry.register(Box::new(quota_throttled_responses.clone()))?;
    let quota_throttle_seconds = CounterVec::new(
        Opts::new("kafka_server_quota_throttle_time_seconds_total", "Throttle time told to clients, by quota type"),
        &["quota_type"],
    )?;
    registry.register(Box::new(quota_throttle_seconds.clone()))?;
    let authorization_denied = IntCounterVec::new(
        Opts::new("kafka_server_authorizer_denied_total", "Operations the authorizer denied"),
        &["request", "resource_type"],
    )?;
    registry.register(Box::new(authorization_denied.clone()))?;
    let acl_changes = IntCounterVec::new(
        Opts::new("kafka_server_authorizer_acl_changes_total", "ACL bindings created or deleted"),
        &["operation"],
    )?;
    registry.register(Box::new(acl_changes.clone()))?;
    let connections = IntGauge::new("kafka_server_socketservermetrics_connection_count", "Open client connections")?;
    let per_partition = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["topic", "partition"]);
    let log_size = per_partition("kafka_log_log_size", "Bytes of a partition's record batches")?;
    let log_start_offset = per_partition("kafka_log_log_logstartoffset", "A partition's log start offset")?;
    let log_end_offset = per_partition("kafka_log_log_logendoffset", "A partition's log end offset")?;
    let storage_memory = IntGaugeVec::new(
        Opts::new("rivulet_storage_memory_bytes", "Memory the storage engine holds, by kind"),
        &["kind"],
    )?;
    registry.register(Box::new(storage_memory.clone()))?;
    let producer_id_count = IntGauge::new(
        "kafka_server_replicamanager_produceridcount",
        "Producers whose idempotence state the local replicas keep",
    )?;
    registry.register(Box::new(producer_id_count.clone()))?;
    registry.register(Box::new(log_size.clone()))?;
    registry.register(Box::new(log_start_offset.clone()))?;
    registry.register(Box::new(log_end_offset.clone()))?;
    registry.register(Box::new(messages_in.clone()))?;
    registry.register(Box::new(bytes_in.clone()))?;
    registry.register(Box::new(bytes_out.clone()))?;
    registry.register(Box::new(failed_produce.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_seconds.clone()))?;
    registry.register(Box::new(connections.clone()))?;
    Ok(Metrics {
        registry,
        messages_in,
        bytes_in,
        bytes_out,
        requests,
        request_seconds,
        connections,
        failed_produce,
        authentications,
        expired_connections_killed,
        connections_rejected_per_ip,
        connections_throttled,
        connection_throttle_seconds,
        quota_throttled_responses,
        quota_throttle_seconds,
        authorization_denied,
        acl_changes,
        log_size,
        log_start_offset,
        log_end_offset,
        producer_id_count,
        storage_memory,
    })
}

/// The process-wide metrics. Names and help texts are constants, so registration can only
/// fail on a programming error (a duplicate name), which the unit test below catches.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| build().expect("metric definitions are valid and unique"));

/// The text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&METRICS.registry.gather(), &mut buf) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Sets the per-partition gauges from the broker's logs (deleted topics disappear).
pub fn refresh_log_gauges(broker: &crate::broker::Broker) {
    METRICS.log_size.reset();
    METRICS.log_start_offset.reset();
    METRICS.log_end_offset.reset();
    let mut producers = 0;
    for topic in broker.replicas.topics.all() {
        for replica in topic.replicas.iter().filter(|r| r.is_local()) {
            let partition = replica.index.to_string();
            let labels = [topic.record.name.as_str(), partition.as_str()];
            METRICS.log_size.with_label_values(&labels).set(replica.log.size_bytes());
            METRICS.log_start_offset.with_label_values(&labels).set(replica.log.log_start_offset());
            METRICS.log_end_offset.with_label_values(&labels).set(replica.log.log_end_offset());
            producers += replica.log.producer_count();
        }
    }
    METRICS.producer_id_count.set(producers as i64);
    for (kind, bytes) in broker.store.memory_usage() {
        METRICS.storage_memory.with_label_values(&[kind]).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. Anything else gets 404.
pub async fn serve(listener: TcpListener, broker: Weak<crate::broker::Broker>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut request)).await
            else {
                return;
            };
            let head = String::from_utf8_lossy(&request[..n]);
            let (status, body) = if head.starts_with("GET /metrics") {
                match broker.upgrade() {
                    Some(broker) => {
                        refresh_log_gauges(&broker);
                        // The metrics clients pushed (KIP-714) after the broker's own.
                        ("200 OK", render() + &broker.telemetry.render())
                    }
                    None => ("200 OK", render()),
                }
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_register_and_render() {
        super::METRICS.messages_in.inc_by(3);
        super::METRICS.requests.with_label_values(&["Produce"]).inc();
        let text = super::render();
        assert!(text.contains("kafka_server_brokertopicmetrics_messagesin_total"));
        assert!(text.contains("request=\"Produce\""));
    }
}
