//! Listening sockets and the accept loop, with Kafka's `ConnectionQuotas` limits on what it
//! accepts: in Kafka's order, `max.connection.creation.rate` (broker-wide and per listener:
//! the acceptor waits), an address's `connection_creation_rate` quota (the connection is
//! closed after the throttle), `max.connections.per.ip` and `max.connections` (closed at
//! once).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::connection;
use crate::metrics::METRICS;
use crate::quota::{bounded_throttle, QuotaWindow, Rate};
use crate::request_context::KafkaPrincipal;
use crate::security::tls;

/// How long a client on a TLS listener has to complete its handshake. A peer that opens a
/// socket and sends nothing (or half a handshake) is dropped after it, so it cannot hold
/// one of `max.connections` for the whole idle timeout.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot resolve listener {host}:{port}: {reason}")]
    Resolve { host: String, port: u16, reason: String },
    #[error("cannot listen on {address}: {reason}")]
    Bind { address: SocketAddr, reason: String },
}

/// A bound socket and the name of the configured listener (`listeners`) it serves, which
/// every request accepted on it carries in its `RequestContext`.
#[derive(Debug)]
pub struct BoundListener {
    pub name: Arc<str>,
    pub socket: TcpListener,
}

/// Binds every configured listener. A host name is bound on each address it resolves to
/// (so `localhost` serves both 127.0.0.1 and ::1); an empty host binds all interfaces.
pub async fn bind(broker: &Broker) -> Result<Vec<BoundListener>, ServeError> {
    let mut listeners = Vec::new();
    let mut bound: Vec<SocketAddr> = Vec::new();
    for listener in &broker.config.listeners {
        let name: Arc<str> = Arc::from(listener.name.as_str());
        let host = if listener.host.is_empty() { "0.0.0.0" } else { listener.host.as_str() };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, listener.port))
            .await
            .map_err(|e| ServeError::Resolve { host: host.to_string(), port: listener.port, reason: e.to_string() })?
            .collect();
        let count = addresses.len();
        for address in addresses {
            if bound.contains(&address) {
                continue;
            }
            match TcpListener::bind(address).await {
                Ok(socket) => {
                    tracing::info!(%address, listener = %listener.name, "listening");
                    bound.push(address);
                    listeners.push(BoundListener { name: name.clone(), socket });
                }
                // A host with IPv6 disabled still resolves localhost to ::1; serving the
                // other addresses is enough unless nothing could be bound.
                Err(e) if count > 1 => {
                    tracing::warn!(%address, error = %e, "cannot listen on one address of the listener")
                }
                Err(e) => return Err(ServeError::Bind { address, reason: e.to_string() }),
            }
        }
    }
    if listeners.is_empty() {
        let address: SocketAddr = ([0, 0, 0, 0], 0).into();
        return Err(ServeError::Bind { address, reason: "no listener address could be bound".into() });
    }
    Ok(listeners)
}

/// Connections held per client address, against `max.connections.per.ip` and its
/// overrides (Kafka's `ConnectionQuotas`), over all listeners.
pub struct PerIpLimits {
    default: usize,
    overrides: BTreeMap<IpAddr, usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it frees its place.
pub struct IpPermit {
    limits: Arc<PerIpLimits>,
    ip: IpAddr,
}

impl PerIpLimits {
    pub fn new(default: usize, overrides: BTreeMap<IpAddr, usize>) -> Arc<Self> {
        Arc::new(PerIpLimits { default, overrides, open: Mutex::new(HashMap::new()) })
    }

    fn limit(&self, ip: IpAddr) -> usize {
        self.overrides.get(&ip).copied().unwrap_or(self.default)
    }

    /// A place for one more connection from `ip`, or its limit if it holds that many.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<IpPermit, usize> {
        let limit = self.limit(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                open.remove(&ip);
            }
            return Err(limit);
        }
        *count += 1;
        Ok(IpPermit { limits: self.clone(), ip })
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// One connection-creation rate and its limit.
struct LimitedRate {
    limit: f64,
    rate: Mutex<Rate>,
}

impl LimitedRate {
    fn new(limit: u32) -> Self {
        LimitedRate { limit: f64::from(limit), rate: Mutex::new(Rate::new()) }
    }
}

/// How many idle per-address rates are kept before the idle ones are dropped.
const IDLE_IP_RATES: usize = 1024;

/// New connections per second, as Kafka's `ConnectionQuotas` limits them (KIP-612), over
/// the same window as client quotas, a throttle lasting at most one sample:
///
/// * `max.connection.creation.rate` for the broker (every listener but the inter-broker one
///   when there are several: Kafka's protected listener) and
///   `listener.name.<listener>.max.connection.creation.rate` for one listener: every new
///   connection counts, and over a limit the listener's acceptor waits the throttle before
///   it takes the connection (the longer of the two).
/// * an address's `connection_creation_rate` quota (a client quota of an `ip` entity): a
///   connection over it is not served and, as Kafka's `ConnectionThrottledException`
///   does, closed once the throttle has passed; it then counts in no rate.
pub struct ConnectionRates {
    window: QuotaWindow,
    broker: Option<LimitedRate>,
    listeners: HashMap<String, LimitedRate>,
    protected: Option<String>,
    ips: Mutex<HashMap<IpAddr, Rate>>,
}

impl ConnectionRates {
    pub fn new(config: &BrokerConfig, window: QuotaWindow) -> Arc<Self> {
        let inter_broker = &config.security.inter_broker.listener;
        Arc::new(ConnectionRates {
            window,
            broker: config.max_connection_creation_rate.map(LimitedRate::new),
            listeners: config
                .listener_max_connection_creation_rate
                .iter()
                .map(|(name, limit)| (name.clone(), LimitedRate::new(*limit)))
                .collect(),
            protected: (config.listeners.len() > 1 && !inter_broker.is_empty()).then(|| inter_broker.clone()),
            ips: Mutex::new(HashMap::new()),
        })
    }

    fn max_throttle(&self) -> Duration {
        self.window.sample
    }

    /// The broker-wide rate, unless `listener` is the protected one.
    fn broker_rate(&self, listener: &str) -> Option<&LimitedRate> {
        self.broker.as_ref().filter(|_| self.protected.as_deref() != Some(listener))
    }

    /// Adds `amount` connections to `limited` and returns the throttle it calls for.
    fn add(&self, limited: &LimitedRate, amount: f64, now: Instant) -> Duration {
        let mut rate = limited.rate.lock().unwrap_or_else(|p| p.into_inner());
        rate.record(self.window, amount, now);
        let (measured, window_size) = rate.measure(self.window, now);
        bounded_throttle(measured, limited.limit, window_size, self.max_throttle())
    }

    /// Counts a new connection on `listener` against `max.connection.creation.rate`; over a
    /// limit, how long the acceptor waits before taking it and which limit (`broker` or
    /// `listener`) asked for the longer wait.
    pub fn record_accept(&self, listener: &str, now: Instant) -> Option<(Duration, &'static str)> {
        let broker = self.broker_rate(listener).map_or(Duration::ZERO, |b| self.add(b, 1.0, now));
        let own = self.listeners.get(listener).map_or(Duration::ZERO, |l| self.add(l, 1.0, now));
        match (broker, own) {
            (broker, own) if broker.is_zero() && own.is_zero() => None,
            (broker, own) if broker >= own => Some((broker, "broker")),
            (_, own) => Some((own, "listener")),
        }
    }

    /// Counts a new connection from `ip` against its `connection_creation_rate` quota
    /// `limit`; over it, the connection is taken back from every rate (it will not be
    /// served) and the time to hold it before closing it is returned.
    pub fn record_ip(&self, listener: &str, ip: IpAddr, limit: f64, now: Instant) -> Duration {
        let mut ips = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        let rate = ips.entry(ip).or_insert_with(Rate::new);
        rate.record(self.window, 1.0, now);
        let (measured, window_size) = rate.measure(self.window, now);
        let throttle = bounded_throttle(measured, limit, window_size, self.max_throttle());
        if !throttle.is_zero() {
            rate.record(self.window, -1.0, now);
        }
        if ips.len() > IDLE_IP_RATES {
            ips.retain(|_, rate| !rate.is_idle(self.window, now));
        }
        drop(ips);
        if !throttle.is_zero() {
            if let Some(broker) = self.broker_rate(listener) {
                self.add(broker, -1.0, now);
            }
            if let Some(own) = self.listeners.get(listener) {
                self.add(own, -1.0, now);
            }
        }
        throttle
    }
}

/// Accepts connections on every listener until `shutdown` turns true.
pub async fn run(broker: Arc<Broker>, listeners: Vec<BoundListener>, shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(broker.config.max_connections));
    let per_ip =
        PerIpLimits::new(broker.config.max_connections_per_ip, broker.config.max_connections_per_ip_overrides.clone());
    let rates = ConnectionRates::new(&broker.config, broker.quotas.window());
    let mut tasks = Vec::new();
    for BoundListener { name, socket: listener } in listeners {
        let acceptor =
            broker.config.security.tls.get(&*name).map(|t| tokio_rustls::TlsAcceptor::from(t.server.clone()));
        let broker = broker.clone();
        let permits = permits.clone();
        let per_ip = per_ip.clone();
        let rates = rates.clone();
        let mut shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = shutdown.changed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Usually EMFILE: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // KIP-612: over max.connection.creation.rate the acceptor waits before it
                // takes the connection, as Kafka's does; new ones queue in the backlog.
                if let Some((wait, quota)) = rates.record_accept(&name, Instant::now()) {
                    METRICS.connections_throttled.with_label_values(&[&name, quota]).inc();
                    METRICS.connection_throttle_seconds.with_label_values(&[&name, quota]).inc_by(wait.as_secs_f64());
                    tracing::debug!(%peer, ?wait, quota, "max.connection.creation.rate reached: delaying the connection");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => break,
                    }
                }
                // An address over its connection_creation_rate quota: the connection is
                // held unanswered for the throttle, then closed (Kafka's
                // ConnectionThrottledException).
                if let Some(limit) = broker.quotas.ip_connection_rate(peer.ip()) {
                    let throttle = rates.record_ip(&name, peer.ip(), limit, Instant::now());
                    if !throttle.is_zero() {
                        METRICS.connections_throttled.with_label_values(&[&name, "ip"]).inc();
                        METRICS
                            .connection_throttle_seconds
                            .with_label_values(&[&name, "ip"])
                            .inc_by(throttle.as_secs_f64());
                        tracing::debug!(%peer, ?throttle, "connection_creation_rate of the address exceeded: closing the connection after the throttle");
                        tokio::spawn(async move {
                            tokio::time::sleep(throttle).await;
                            drop(stream);
                        });
                        continue;
                    }
                }
                let ip_permit = match per_ip.try_acquire(peer.ip()) {
                    Ok(permit) => permit,
                    Err(limit) => {
                        // Kafka's "Rejected connection from ..., address already has the
                        // configured maximum of N connections": closed at once, unanswered.
                        tracing::info!(%peer, limit, "refusing connection: max.connections.per.ip reached for this address");
                        METRICS.connections_rejected_per_ip.inc();
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max_connections = broker.config.max_connections, "refusing connection: max.connections reached");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let name = name.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => connection::serve(broker, stream, peer, name, None).await,
                        Some(acceptor) => serve_tls(broker, acceptor, stream, peer, name).await,
                    }
                    drop(permit);
                    drop(ip_permit);
                });
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Completes the TLS handshake of a connection accepted on a TLS listener, then serves it.
/// A verified client certificate makes the connection's principal `User:<subject DN>`.
async fn serve_tls(
    broker: Arc<Broker>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
) {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|certificate| tls::subject_name(certificate.as_ref()));
            // `ssl.principal.mapping.rules` turn the subject into the principal's name; a
            // subject no rule matches fails the connection, as Kafka's `SslPrincipalMapper`.
            let principal = match subject {
                None => None,
                Some(subject) => {
                    let rules = broker.config.security.tls.get(&*name).map(|t| t.principal_rules.clone());
                    match rules.map_or_else(|| Some(subject.clone()), |rules| rules.apply(&subject)) {
                        Some(mapped) => Some(KafkaPrincipal::user(&mapped)),
                        None => {
                            METRICS.authentications.with_label_values(&[&name, "SSL", "failure"]).inc();
                            tracing::info!(%peer, listener = %name, %subject, "no ssl.principal.mapping.rules rule applies to the client certificate: closing");
                            return;
                        }
                    }
                }
            };
            connection::serve(broker, stream, peer, name, principal).await;
        }
        Ok(Err(e)) => {
            METRICS.authentications.with_label_values(&[&name, "SSL", "failure"]).inc();
            tracing::info!(%peer, listener = %name, error = %e, "TLS handshake failed: closing");
        }
        Err(_) => {
            METRICS.authentications.with_label_values(&[&name, "SSL", "failure"]).inc();
            tracing::info!(%peer, listener = %name, "TLS handshake not completed in time: closing");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rivulet_protocol::client::{decode_response, encode_request};
    use rivulet_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use rivulet_protocol::kafka_protocol::messages::{
        DescribeGroupsRequest, FindCoordinatorRequest, GroupId, JoinGroupRequest,
    };
    use rivulet_protocol::kafka_protocol::protocol::{Request, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::config::BrokerConfig;

    async fn send<R: Request>(stream: &mut TcpStream, correlation_id: i32, version: i16, request: &R) -> R::Response {
        let frame = encode_request(correlation_id, "context-test-client", version, request).unwrap();
        stream.write_all(&frame).await.unwrap();
        let size = stream.read_i32().await.unwrap();
        let mut body = vec![0u8; usize::try_from(size).unwrap()];
        stream.read_exact(&mut body).await.unwrap();
        let (correlation, response) = decode_response::<R>(body.into(), version).unwrap();
        assert_eq!(correlation, correlation_id);
        response
    }

    /// The listener's name reaches the accept loop, and the peer and client id reach a
    /// handler through the request context: a group member's `client_id` and
    /// `client_host` are what the joining connection's context carried.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listener_name_peer_and_client_id_reach_the_handlers() {
        let dir = tempfile::tempdir().unwrap();
        let props: BTreeMap<String, String> = [
            ("listeners", "CLIENTS://127.0.0.1:0"),
            ("listener.security.protocol.map", "CLIENTS:PLAINTEXT"),
            ("log.dirs", dir.path().to_str().unwrap()),
            ("group.initial.rebalance.delay.ms", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (config, _) = BrokerConfig::from_properties(props).unwrap();
        let broker = Broker::open(config).await.unwrap();
        let listeners = bind(&broker).await.unwrap();
        assert_eq!(listeners.iter().map(|l| &*l.name).collect::<Vec<_>>(), ["CLIENTS"]);
        let address = listeners[0].socket.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let serving = tokio::spawn(run(broker.clone(), listeners, stopped));

        let mut stream = TcpStream::connect(address).await.unwrap();
        let group = "context-test-group";
        let mut correlation_id = 0;
        let mut found = false;
        for _ in 0..100 {
            correlation_id += 1;
            let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(group));
            if send(&mut stream, correlation_id, 3, &request).await.error_code == 0 {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(found, "no group coordinator within 10 s");

        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))]);
        correlation_id += 1;
        let joined = send(&mut stream, correlation_id, 3, &join).await;
        assert_eq!(joined.error_code, 0, "JoinGroup failed");

        correlation_id += 1;
        let describe = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str(group))]);
        let described = send(&mut stream, correlation_id, 5, &describe).await;
        let members = &described.groups[0].members;
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].member_id, joined.member_id);
        assert_eq!(members[0].client_id.as_str(), "context-test-client");
        let local = stream.local_addr().unwrap();
        assert_eq!(members[0].client_host.as_str(), format!("/{}", local.ip()));

        stop.send(true).unwrap();
        serving.await.unwrap();
        broker.shutdown();
    }

    fn rates(extra: &[(&str, &str)]) -> Arc<ConnectionRates> {
        let mut props: BTreeMap<String, String> = [
            ("listeners", "CLIENTS://127.0.0.1:0,BROKERS://127.0.0.1:0"),
            ("listener.security.protocol.map", "CLIENTS:PLAINTEXT,BROKERS:PLAINTEXT"),
            ("inter.broker.listener.name", "BROKERS"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (config, _) = BrokerConfig::from_properties(props).unwrap();
        ConnectionRates::new(&config, QuotaWindow { samples: 2, sample: Duration::from_secs(1) })
    }

    #[test]
    fn connection_creation_rates_delay_the_acceptor_up_to_one_sample() {
        let r = rates(&[("max.connection.creation.rate", "2")]);
        let now = Instant::now();
        // Two a second over the one-second minimum window; a third is half a window early.
        assert_eq!(r.record_accept("CLIENTS", now), None);
        assert_eq!(r.record_accept("CLIENTS", now), None);
        assert_eq!(r.record_accept("CLIENTS", now), Some((Duration::from_millis(500), "broker")));
        // Far over: at most one sample.
        for _ in 0..10 {
            r.record_accept("CLIENTS", now);
        }
        assert_eq!(r.record_accept("CLIENTS", now), Some((Duration::from_secs(1), "broker")));
        // The inter-broker listener is protected from the broker-wide limit.
        assert_eq!(r.record_accept("BROKERS", now), None);

        let r = rates(&[("listener.name.brokers.max.connection.creation.rate", "1")]);
        assert_eq!(r.record_accept("BROKERS", now), None);
        assert_eq!(r.record_accept("BROKERS", now), Some((Duration::from_secs(1), "listener")));
        assert_eq!(r.record_accept("CLIENTS", now), None);
    }

    #[test]
    fn a_connection_over_its_address_rate_counts_in_no_rate() {
        let r = rates(&[("max.connection.creation.rate", "3")]);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(r.record_accept("CLIENTS", now), None);
            assert_eq!(r.record_ip("CLIENTS", local, 2.0, now), Duration::ZERO);
        }
        // Further ones from 127.0.0.1 are throttled, and taken back from every rate: the
        // broker still has room for a third, which 127.0.0.2 gets.
        for _ in 0..2 {
            assert_eq!(r.record_accept("CLIENTS", now), None);
            assert_eq!(r.record_ip("CLIENTS", local, 2.0, now), Duration::from_millis(500));
        }
        assert_eq!(r.record_accept("CLIENTS", now), None);
        assert_eq!(r.record_ip("CLIENTS", other, 2.0, now), Duration::ZERO);
        assert!(r.record_accept("CLIENTS", now).is_some());
    }

    #[test]
    fn per_ip_limits_count_each_address_and_free_on_drop() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let limits = PerIpLimits::new(2, [(other, 0)].into_iter().collect());
        let first = limits.try_acquire(local).unwrap();
        let _second = limits.try_acquire(local).unwrap();
        assert_eq!(limits.try_acquire(local).err(), Some(2));
        assert_eq!(limits.try_acquire(other).err(), Some(0));
        drop(first);
        assert!(limits.try_acquire(local).is_ok());
        assert!(limits.open.lock().unwrap().get(&other).is_none());
    }
}
