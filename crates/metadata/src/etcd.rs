//! Cluster metadata in etcd, which takes ZooKeeper's role for a Rivulet cluster.
//!
//! Key layout under a root (default `/rivulet`, or the path of the
//! `metadata.store=etcd://host:port/<root>` URL), mirroring Kafka's ZooKeeper tree
//! (`ZkData.scala`):
//!
//! | key | value |
//! |---|---|
//! | `<root>/cluster/id` | the cluster id, created once by whoever gets there first |
//! | `<root>/brokers/ids/<node id>` | a live broker's endpoints (JSON), bound to its lease |
//! | `<root>/brokers/topics/<name>` | the topic (JSON [`TopicRecord`]) with each partition's replicas |
//! | `<root>/brokers/partitions/<name>/<p>` | leader, leader epoch, ISR, controller epoch (JSON [`PartitionState`]) |
//! | `<root>/controller` | the controller's node id, bound to its lease |
//! | `<root>/controller_epoch` | the controller epoch (decimal) |
//! | `<root>/latest_producer_id_block` | end of the last reserved producer-id block |
//! | `<root>/latest_log_id` | end of the last reserved storage log ids |
//! | `<root>/config/brokers/<node id or <default>>` | dynamic broker configs (JSON map) |
//! | `<root>/config/users/<user>` | the user's SCRAM credentials by mechanism: salt, stored key, server key, iterations (JSON) |
//!
//! Every read-modify-write is an etcd transaction guarded by the key's `mod_revision`
//! (or `create_revision == 0` for a create), retried on conflict, so brokers racing on the
//! same key never lose an update. Partition states are also written by compare-and-swap;
//! the controller's writes additionally compare the `create_revision` of its own
//! `controller` key, so a deposed controller (whose key expired with its lease) cannot
//! write (the analogue of Kafka's controller-epoch check on ZooKeeper writes). Only small,
//! rarely changing records live here; offsets and anything per message stay in the
//! partition logs.
//!
//! etcd may be starting or restarting when a broker talks to it (every `docker compose
//! up`, every machine boot): it accepts connections before it serves, and resets or
//! refuses them meanwhile. Every call is therefore retried across such transient transport
//! errors, with backoff, for up to `metadata.store.connection.timeout.ms` (Kafka waits as
//! long for ZooKeeper with `zookeeper.connection.timeout.ms`); a permanent error (a refused
//! request, bad credentials) fails at once. A retried write may have been applied before
//! its answer was lost, so each write recognises its own earlier success: a create by the
//! id or lease it wrote, a compare-and-swap by re-reading.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{
    MetadataError, MetadataStore, NewTopic, PartitionRecord, PartitionState, ScramChange, TopicRecord,
    UserScramCredentials,
};

/// Producer ids reserved per etcd write (as Kafka's `ProducerIdManager` blocks).
const PRODUCER_ID_BLOCK: i64 = 1000;
/// How often a conflicting compare-and-swap is retried before giving up.
const CAS_ATTEMPTS: usize = 64;
/// How long calls are retried across transient errors unless configured otherwise
/// (`metadata.store.connection.timeout.ms`, as Kafka's `zookeeper.connection.timeout.ms`).
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_millis(18_000);
/// First and longest pause between retries of a call.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Connection to etcd: how long a connect may take, a call, and the HTTP/2 keep-alive
/// (interval, timeout) that notices a dead connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(5));

/// Where an etcd-backed store lives: endpoints and the root of its keys, the user to
/// authenticate as when etcd has authentication enabled, and TLS when etcd serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdLocation {
    pub endpoints: Vec<String>,
    pub root: String,
    pub credentials: Option<EtcdCredentials>,
    /// Set with [`EtcdLocation::with_tls`], which makes the endpoints `https://`.
    pub tls: Option<EtcdTls>,
}

/// TLS towards etcd (`metadata.store.ssl.*`, after Kafka's `zookeeper.ssl.*`): the
/// certificates etcd's is verified against and, for etcd's `--client-cert-auth`, the
/// broker's own. `Debug` leaves the private key out.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// Trust anchors (DER certificates) etcd's certificate chain must lead to.
    pub trust_anchors: Vec<Vec<u8>>,
    /// The certificate chain (PEM, own certificate first) and private key (PEM) offered
    /// to etcd, if any.
    pub identity: Option<(String, String)>,
    /// Whether etcd's certificate must name the host it is reached at
    /// (`metadata.store.ssl.endpoint.identification.algorithm=HTTPS`, the default).
    pub verify_host_name: bool,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("trust_anchors", &self.trust_anchors.len())
            .field("client_certificate", &self.identity.is_some())
            .field("verify_host_name", &self.verify_host_name)
            .finish()
    }
}

/// An etcd user and its password (etcd's `--user`). `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for EtcdCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCredentials").field("user", &self.user).finish_non_exhaustive()
    }
}

impl EtcdLocation {
    /// Parses `etcd://host:port[,host:port...][/root]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| format!("'{url}' does not start with etcd://"))?;
        let (hosts, root) = match rest.split_once('/') {
            Some((hosts, root)) if !root.trim_matches('/').is_empty() => {
                (hosts, format!("/{}", root.trim_matches('/')))
            }
            Some((hosts, _)) => (hosts, "/rivulet".to_string()),
            None => (rest, "/rivulet".to_string()),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                let (_, port) = h.rsplit_once(':').ok_or_else(|| format!("endpoint '{h}' has no port"))?;
                port.parse::<u16>().map_err(|_| format!("endpoint '{h}' has an invalid port"))?;
                Ok(format!("http://{h}"))
            })
            .collect::<Result<_, String>>()?;
        if endpoints.is_empty() {
            return Err(format!("'{url}' names no endpoint"));
        }
        Ok(Self { endpoints, root, credentials: None, tls: None })
    }

    /// The same location reached over TLS: `https://` endpoints.
    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        for endpoint in &mut self.endpoints {
            if let Some(address) = endpoint.strip_prefix("http://") {
                *endpoint = format!("https://{address}");
            }
        }
        self.tls = Some(tls);
        self
    }
}

/// The channel to etcd over TLS: etcd's certificate verified against the trust anchors
/// (and its host name, unless turned off), the broker's own certificate offered if it has
/// one. Built here rather than by etcd-client, whose TLS options always verify the name.
fn tls_channel(endpoints: &[String], tls: &EtcdTls) -> Result<etcd_client::Channel, MetadataError> {
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::CertificateDer;
    use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

    let invalid = |what: &str, e: &dyn std::fmt::Display| MetadataError::Etcd(format!("TLS to etcd: {what}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for der in &tls.trust_anchors {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| invalid("unusable trusted certificate", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| invalid("unusable trusted certificates", &e))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> =
        if tls.verify_host_name { verifier } else { Arc::new(AnyHostName(verifier)) };
    let mut config = ClientTlsConfig::new();
    if let Some((chain, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(chain, key));
    }
    let mut channels = Vec::with_capacity(endpoints.len());
    for url in endpoints {
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| invalid(url, &e))?
            .tls_config_with_verifier(config.clone(), verifier.clone())
            .map_err(|e| invalid(url, &e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .keep_alive_while_idle(true)
            .http2_keep_alive_interval(KEEP_ALIVE.0)
            .keep_alive_timeout(KEEP_ALIVE.1);
        channels.push(endpoint);
    }
    Ok(etcd_client::Channel::Tonic(Channel::balance_list(channels.into_iter())))
}

/// Verifies a server's certificate chain but not the name in it
/// (`metadata.store.ssl.endpoint.identification.algorithm` empty, as ZooKeeper's client
/// allows).
#[derive(Debug)]
struct AnyHostName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A live broker as registered in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// The endpoint other brokers reach it at (its first advertised listener).
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Every advertised listener, so a client is sent to each broker's listener of the name
    /// it came in on (as Kafka's registrations carry all endpoints). Empty in registrations
    /// written before listeners were recorded.
    #[serde(default)]
    pub listeners: Vec<ListenerEndpoint>,
}

/// One advertised listener of a broker: its name (`listeners`) and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl BrokerRegistration {
    /// The broker as a client of the listener `name` must reach it: that listener's address
    /// if the broker advertises one of the name, else its registered endpoint.
    pub fn for_listener(mut self, name: &str) -> Self {
        if let Some(l) = self.listeners.iter().find(|l| l.name == name) {
            self.host = l.host.clone();
            self.port = l.port;
        }
        self
    }
}

/// A partition state with the `mod_revision` that guards its next compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedState {
    pub state: PartitionState,
    pub revision: i64,
}

/// Everything a broker needs to know about its cluster, read at one etcd revision.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub revision: i64,
    /// Live brokers in node id order.
    pub brokers: Vec<BrokerRegistration>,
    /// Each live broker's incarnation: the revision its registration was created at.
    /// A partition state written before it speaks of an earlier life of that broker
    /// (Kafka's broker epoch).
    pub incarnations: HashMap<i32, i64>,
    pub controller: Option<i32>,
    pub controller_epoch: i32,
    /// Topics in name order.
    pub topics: Vec<TopicRecord>,
    pub states: HashMap<(String, i32), VersionedState>,
    /// Dynamic broker configurations by entity (`""` = the cluster default).
    pub broker_configs: crate::BrokerConfigs,
    /// Client-metrics subscriptions by name.
    pub client_metrics: crate::ClientMetricsConfigs,
    /// Every ACL, in binding order.
    pub acls: Vec<crate::AclBinding>,
    /// Every client-quota entity with its values.
    pub quotas: Vec<(crate::QuotaEntity, crate::QuotaValues)>,
}

/// The state a partition starts with: its first replica leads, every replica is in sync.
fn initial_state(replicas: &[i32]) -> PartitionState {
    PartitionState {
        leader: replicas.first().copied().unwrap_or(-1),
        leader_epoch: 0,
        isr: replicas.to_vec(),
        controller_epoch: 0,
    }
}

fn etcd_error(e: etcd_client::Error) -> MetadataError {
    MetadataError::Etcd(e.to_string())
}

/// Whether `e` may go away by itself: etcd not (yet) reachable, starting, restarting,
/// electing a leader or overloaded. Anything else is an answer and retrying repeats it.
fn is_transient(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => true,
            // A connection reset or closed mid-call surfaces as "Unknown" with the
            // transport error as its source.
            Code::Unknown | Code::Cancelled => {
                std::error::Error::source(status).is_some() || status.message().contains("transport error")
            }
            _ => false,
        },
        _ => false,
    }
}

fn corrupt(key: &str, reason: impl ToString) -> MetadataError {
    MetadataError::Corrupt { key: key.to_string(), reason: reason.to_string() }
}

/// Metadata shared by every broker of a cluster, in etcd.
pub struct EtcdMetadataStore {
    client: Client,
    root: String,
    /// The endpoints, as named in errors.
    endpoints: String,
    /// How long one call is retried across transient errors.
    connection_timeout: Duration,
    /// The current producer-id block: next id and block end.
    producer_ids: Mutex<(i64, i64)>,
    /// Whether etcd is reached over TLS (`metadata.store.ssl.client.enable`).
    tls: bool,
}

impl EtcdMetadataStore {
    /// Connects and makes sure the cluster id exists. An etcd that is not reachable yet is
    /// waited for up to `connection_timeout`; then the error names the endpoints.
    pub async fn connect(location: &EtcdLocation, connection_timeout: Duration) -> Result<Self, MetadataError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE.0, KEEP_ALIVE.1);
        if let Some(credentials) = &location.credentials {
            // etcd hands out a token that expires (`--auth-token-ttl`); the client fetches
            // a new one with the same credentials when it does.
            options =
                options.with_user(credentials.user.clone(), credentials.password.clone()).with_auto_token_refresh(true);
        }
        // The channel connects lazily: nothing is sent until the first call below.
        let client = match &location.tls {
            None => Client::connect(&location.endpoints, Some(options)).await,
            Some(tls) => Client::from_channel(tls_channel(&location.endpoints, tls)?, Some(options)).await,
        }
        .map_err(etcd_error)?;
        let store = Self {
            client,
            root: location.root.clone(),
            endpoints: location.endpoints.join(","),
            tls: location.tls.is_some(),
            connection_timeout,
            producer_ids: Mutex::new((0, 0)),
        };
        let key = store.key("cluster/id");
        let cluster_id = Uuid::new_v4().simple().to_string();
        // Created once; a later broker's attempt fails the compare and changes nothing.
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, cluster_id, None)]);
        store.txn("create the cluster id", txn).await?;
        Ok(store)
    }

    /// Runs `call` with a fresh handle on the client, again after each transient failure
    /// (with backoff, each retry logged) until it answers or `connection_timeout` has
    /// passed since the first attempt.
    async fn call<T, F, Fut>(&self, what: &'static str, mut call: F) -> Result<T, MetadataError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1u32;
        loop {
            let error = match call(self.client.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(e) if is_transient(&e) => e,
                Err(e) => return Err(etcd_error(e)),
            };
            let left = self.connection_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(MetadataError::Unreachable {
                    endpoints: self.endpoints.clone(),
                    timeout_ms: self.connection_timeout.as_millis() as u64,
                    reason: self.unreachable_reason(&error),
                });
            }
            let pause = backoff.min(left);
            tracing::warn!(
                endpoints = %self.endpoints,
                operation = what,
                attempt,
                retry_in_ms = pause.as_millis() as u64,
                error = %error,
                "etcd not reachable; retrying"
            );
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// Why etcd did not answer, with a hint when plain gRPC met a server that took the
    /// connection and dropped it, as an etcd serving TLS does (a refused connection is
    /// rather an etcd that is not there).
    fn unreachable_reason(&self, error: &etcd_client::Error) -> String {
        let reason = error.to_string();
        let refused = reason.contains("tcp connect error") || reason.contains("Connection refused");
        if self.tls || refused {
            return reason;
        }
        format!(
            "{reason}; etcd took the connection and dropped it: if it serves TLS (https client URLs), set \
             metadata.store.ssl.client.enable=true with metadata.store.ssl.truststore.location"
        )
    }

    async fn txn(&self, what: &'static str, txn: Txn) -> Result<etcd_client::TxnResponse, MetadataError> {
        self.call(what, |mut client| {
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })
        .await
    }

    async fn get_prefix(&self, what: &'static str, prefix: &str) -> Result<etcd_client::GetResponse, MetadataError> {
        self.call(what, |mut client| {
            let prefix = prefix.to_string();
            async move { client.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })
        .await
    }

    /// Creates `key` bound to `lease` unless it exists. Returns the key's
    /// `create_revision` when this call (or an earlier try of it whose answer was lost:
    /// the key carries this lease) created it, `None` when someone else holds it.
    async fn create_leased(
        &self,
        what: &'static str,
        key: &str,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<Option<i64>, MetadataError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(what, txn).await?;
        if response.succeeded() {
            return Ok(Some(response.header().map_or(0, |h| h.revision())));
        }
        Ok(response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => {
                get.kvs().first().filter(|kv| kv.lease() == lease).map(|kv| kv.create_revision())
            }
            _ => None,
        }))
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.root)
    }

    fn topic_key(&self, name: &str) -> String {
        self.key(&format!("brokers/topics/{name}"))
    }

    fn state_key(&self, topic: &str, partition: i32) -> String {
        self.key(&format!("brokers/partitions/{topic}/{partition}"))
    }

    /// Puts of the initial state of every partition of `record` that has replicas.
    fn initial_state_ops(&self, record: &TopicRecord, from: i32) -> Result<Vec<TxnOp>, MetadataError> {
        record
            .partitions
            .iter()
            .filter(|p| p.index >= from && !p.replicas.is_empty())
            .map(|p| {
                let key = self.state_key(&record.name, p.index);
                let json = serde_json::to_vec(&initial_state(&p.replicas)).map_err(|e| corrupt(&key, e))?;
                Ok(TxnOp::put(key, json, None))
            })
            .collect()
    }

    /// Reads the whole cluster (brokers, controller, topics, partition states) in one
    /// consistent etcd read.
    pub async fn snapshot(&self) -> Result<ClusterSnapshot, MetadataError> {
        let prefix = format!("{}/", self.root);
        let response = self.get_prefix("read the cluster", &prefix).await?;
        let mut snapshot =
            ClusterSnapshot { revision: response.header().map_or(0, |h| h.revision()), ..Default::default() };
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some(rest) = key.strip_prefix(&prefix) else { continue };
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                ["brokers", "ids", _] => {
                    let broker: BrokerRegistration =
                        serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?;
                    snapshot.incarnations.insert(broker.node_id, kv.create_revision());
                    snapshot.brokers.push(broker);
                }
                ["brokers", "topics", _] => {
                    snapshot.topics.push(serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?);
                }
                ["brokers", "partitions", topic, partition] => {
                    let partition: i32 = partition.parse().map_err(|e| corrupt(&key, e))?;
                    let state = serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?;
                    snapshot
                        .states
                        .insert((topic.to_string(), partition), VersionedState { state, revision: kv.mod_revision() });
                }
                ["config", "brokers", entity] => {
                    let entity = if *entity == "<default>" { "" } else { entity };
                    let configs = serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?;
                    snapshot.broker_configs.insert(entity.to_string(), configs);
                }
                ["config", "client-metrics", name @ ..] => {
                    let configs = serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?;
                    snapshot.client_metrics.insert(name.join("/"), configs);
                }
                ["acls", ..] => {
                    snapshot.acls.push(serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?);
                }
                ["quotas", ..] => {
                    let stored: crate::StoredQuota =
                        serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?;
                    snapshot.quotas.push((stored.entity, stored.values));
                }
                ["controller"] => {
                    snapshot.controller = String::from_utf8_lossy(kv.value()).parse().ok();
                }
                ["controller_epoch"] => {
                    snapshot.controller_epoch = String::from_utf8_lossy(kv.value()).parse().unwrap_or(0);
                }
                _ => {}
            }
        }
        snapshot.brokers.sort_by_key(|b| b.node_id);
        snapshot.topics.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.acls.sort();
        Ok(snapshot)
    }

    /// Waits until anything under the root changes after `revision` (or the watch ends,
    /// e.g. because etcd restarted), so the caller can read a new snapshot.
    pub async fn wait_for_change(&self, revision: i64) -> Result<(), MetadataError> {
        let prefix = format!("{}/", self.root);
        let mut stream = self
            .call("watch the cluster", |mut client| {
                let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
                let prefix = prefix.clone();
                async move { client.watch(prefix, Some(options)).await }
            })
            .await?;
        while let Some(response) = stream.message().await.map_err(etcd_error)? {
            if response.canceled() || response.compact_revision() > 0 || !response.events().is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Replaces a partition's state if it is still at `expected_revision` (and, with a
    /// controller lease, only while that controller holds its role). Returns the new
    /// revision, or `None` when someone else changed it first.
    pub async fn update_partition_state(
        &self,
        topic: &str,
        partition: i32,
        expected_revision: i64,
        state: &PartitionState,
        controller: Option<&ControllerLease>,
    ) -> Result<Option<i64>, MetadataError> {
        let key = self.state_key(topic, partition);
        let json = serde_json::to_vec(state).map_err(|e| corrupt(&key, e))?;
        let mut compares = vec![Compare::mod_revision(key.clone(), CompareOp::Equal, expected_revision)];
        if let Some(lease) = controller {
            compares.push(Compare::create_revision(self.key("controller"), CompareOp::Equal, lease.create_revision));
        }
        let txn = Txn::new().when(compares).and_then([TxnOp::put(key, json, None)]);
        // After a lost answer the retry fails the compare: the caller re-reads, as after
        // any lost race, and finds its own state.
        let response = self.txn("write a partition state", txn).await?;
        Ok(response.succeeded().then(|| response.header().map_or(0, |h| h.revision())))
    }

    /// Rewrites one partition's record (inside its topic's record) and its state together,
    /// by compare-and-swap on both (and, with a controller lease, only while that
    /// controller holds its role): `change` sees both as they are and returns what they
    /// become, or `None` when nothing is to be written. Returns whether this call wrote.
    pub async fn update_partition<F>(
        &self,
        topic: &str,
        partition: i32,
        controller: Option<&ControllerLease>,
        change: F,
    ) -> Result<bool, MetadataError>
    where
        F: Fn(&PartitionRecord, &PartitionState) -> Result<Option<(PartitionRecord, PartitionState)>, MetadataError>,
    {
        let topic_key = self.topic_key(topic);
        let state_key = self.state_key(topic, partition);
        let mut attempted: Option<(PartitionRecord, PartitionState)> = None;
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, topic_revision) =
                self.read_topic(topic).await?.ok_or_else(|| MetadataError::UnknownTopic(topic.to_string()))?;
            let (state_bytes, state_revision) = self.get(&state_key).await?;
            let state: PartitionState = serde_json::from_slice(
                &state_bytes.ok_or_else(|| corrupt(&state_key, "no partition state for a replicated partition"))?,
            )
            .map_err(|e| corrupt(&state_key, e))?;
            let position = record
                .partitions
                .iter()
                .position(|p| p.index == partition)
                .ok_or_else(|| MetadataError::UnknownTopic(format!("{topic}-{partition}")))?;
            // The compare failed because an earlier try of this very write was applied.
            if attempted.as_ref().is_some_and(|(p, s)| *p == record.partitions[position] && *s == state) {
                return Ok(true);
            }
            let Some((next_partition, next_state)) = change(&record.partitions[position], &state)? else {
                return Ok(false);
            };
            record.partitions[position] = next_partition.clone();
            let topic_json = serde_json::to_vec(&record).map_err(|e| corrupt(&topic_key, e))?;
            let state_json = serde_json::to_vec(&next_state).map_err(|e| corrupt(&state_key, e))?;
            let mut compares = vec![
                Compare::mod_revision(topic_key.clone(), CompareOp::Equal, topic_revision),
                Compare::mod_revision(state_key.clone(), CompareOp::Equal, state_revision),
            ];
            if let Some(lease) = controller {
                compares.push(Compare::create_revision(
                    self.key("controller"),
                    CompareOp::Equal,
                    lease.create_revision,
                ));
            }
            let txn = Txn::new().when(compares).and_then([
                TxnOp::put(topic_key.clone(), topic_json, None),
                TxnOp::put(state_key.clone(), state_json, None),
            ]);
            if self.txn("change a partition's replicas", txn).await?.succeeded() {
                return Ok(true);
            }
            if controller.is_some_and(|lease| !lease.is_alive()) {
                return Ok(false);
            }
            attempted = Some((next_partition, next_state));
        }
        Err(MetadataError::Etcd(format!("{topic_key}: too many concurrent updates")))
    }

    /// The value and `mod_revision` of `key` (revision 0 when absent).
    async fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, i64), MetadataError> {
        let response = self
            .call("read a key", |mut client| {
                let key = key.to_string();
                async move { client.get(key, None).await }
            })
            .await?;
        Ok(match response.kvs().first() {
            Some(kv) => (Some(kv.value().to_vec()), kv.mod_revision()),
            None => (None, 0),
        })
    }

    /// Reserves `count` consecutive values of the counter at `key`; returns the first.
    async fn reserve(&self, key: &str, count: i64, minimum: i64) -> Result<i64, MetadataError> {
        for _ in 0..CAS_ATTEMPTS {
            let (value, revision) = self.get(key).await?;
            let current = match value {
                None => minimum,
                Some(v) => {
                    let text = String::from_utf8(v).map_err(|e| corrupt(key, e))?;
                    text.parse::<i64>().map_err(|e| corrupt(key, e))?.max(minimum)
                }
            };
            let txn = Txn::new().when([Compare::mod_revision(key, CompareOp::Equal, revision)]).and_then([TxnOp::put(
                key,
                (current + count).to_string(),
                None,
            )]);
            // A retry whose first try was applied fails the compare and reserves anew:
            // a block is skipped, never handed out twice.
            if self.txn("reserve ids", txn).await?.succeeded() {
                return Ok(current);
            }
        }
        Err(MetadataError::Etcd(format!("{key}: too many concurrent updates")))
    }

    async fn read_topic(&self, name: &str) -> Result<Option<(TopicRecord, i64)>, MetadataError> {
        let key = self.topic_key(name);
        match self.get(&key).await? {
            (None, _) => Ok(None),
            (Some(bytes), revision) => {
                let record = serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, e))?;
                Ok(Some((record, revision)))
            }
        }
    }

    /// Registers this broker under `brokers/ids/<node id>` with a lease of `ttl`, kept
    /// alive in the background. A node id already registered by a live broker is refused,
    /// as Kafka refuses a second broker with the same id. When the returned handle is
    /// dropped (or the process dies) the lease expires and the registration disappears.
    pub async fn register_broker(
        &self,
        registration: &BrokerRegistration,
        ttl: Duration,
    ) -> Result<BrokerLease, MetadataError> {
        let key = self.key(&format!("brokers/ids/{}", registration.node_id));
        let value = serde_json::to_vec(registration).map_err(|e| corrupt(&key, e))?;
        let lease = Lease::grant(self, ttl).await?;
        let Some(incarnation) = self.create_leased("register the broker", &key, value, lease.id).await? else {
            lease.revoke().await;
            return Err(MetadataError::NodeExists(registration.node_id));
        };
        tracing::info!(node_id = registration.node_id, key = %key, incarnation, "broker registered in etcd");
        Ok(BrokerLease { _lease: lease, incarnation })
    }

    /// Every live broker, in node id order.
    pub async fn live_brokers(&self) -> Result<Vec<BrokerRegistration>, MetadataError> {
        let prefix = self.key("brokers/ids/");
        let response = self.get_prefix("read the live brokers", &prefix).await?;
        let mut brokers = response
            .kvs()
            .iter()
            .map(|kv| serde_json::from_slice::<BrokerRegistration>(kv.value()).map_err(|e| corrupt(&prefix, e)))
            .collect::<Result<Vec<_>, _>>()?;
        brokers.sort_by_key(|b| b.node_id);
        Ok(brokers)
    }

    /// Tries once to become the controller: succeeds when no live controller holds the
    /// key, and then bumps the controller epoch. Returns the new epoch and the lease that
    /// keeps the role, or `None` when another broker is the controller.
    pub async fn try_become_controller(
        &self,
        node_id: i32,
        ttl: Duration,
    ) -> Result<Option<(i32, ControllerLease)>, MetadataError> {
        let key = self.key("controller");
        let lease = Lease::grant(self, ttl).await?;
        let Some(create_revision) =
            self.create_leased("campaign for controller", &key, node_id.to_string(), lease.id).await?
        else {
            lease.revoke().await;
            return Ok(None);
        };
        let epoch = self.reserve(&self.key("controller_epoch"), 1, 0).await? + 1;
        let epoch = i32::try_from(epoch).map_err(|e| corrupt(&key, e))?;
        tracing::info!(node_id, controller_epoch = epoch, "elected controller");
        Ok(Some((epoch, ControllerLease { lease, create_revision, epoch })))
    }

    /// The current controller's node id, if there is one.
    pub async fn controller(&self) -> Result<Option<i32>, MetadataError> {
        let key = self.key("controller");
        match self.get(&key).await?.0 {
            None => Ok(None),
            Some(v) => {
                let text = String::from_utf8(v).map_err(|e| corrupt(&key, e))?;
                text.parse().map(Some).map_err(|e| corrupt(&key, e))
            }
        }
    }
}

/// An etcd lease kept alive by a background task until dropped.
struct Lease {
    id: i64,
    client: Client,
    keeper: tokio::task::JoinHandle<()>,
    /// Until when etcd has promised to keep the lease (extended by every keep-alive
    /// answer); `None` once etcd said it expired.
    valid_until: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Lease {
    async fn grant(store: &EtcdMetadataStore, ttl: Duration) -> Result<Self, MetadataError> {
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted_at = Instant::now();
        // A grant retried after a lost answer leaves an unused lease, which expires.
        let id = store
            .call("grant a lease", |mut client| async move { client.lease_grant(seconds, None).await })
            .await?
            .id();
        let client = store.client.clone();
        let valid_until = Arc::new(std::sync::Mutex::new(Some(granted_at + Duration::from_secs(seconds as u64))));
        let period = Duration::from_secs((seconds as u64 / 3).max(1));
        let until = valid_until.clone();
        let mut keeper_client = client.clone();
        // Keep-alives are retried over new streams (etcd may restart) until etcd answers
        // that the lease is gone; meanwhile `valid_until` says how long it surely lives.
        let keeper = tokio::spawn(async move {
            loop {
                match keeper_client.lease_keep_alive(id).await {
                    Ok((mut keeper, mut responses)) => loop {
                        // etcd restarts the TTL when it receives the keep-alive, which is
                        // after this instant: counting from here never overestimates.
                        let sent = Instant::now();
                        if let Err(e) = keeper.keep_alive().await {
                            tracing::debug!(lease = id, error = %e, "lease keep-alive failed; retrying");
                            break;
                        }
                        match responses.message().await {
                            Ok(Some(response)) if response.ttl() > 0 => {
                                let ttl = Duration::from_secs(response.ttl() as u64);
                                *until.lock().unwrap_or_else(|p| p.into_inner()) = Some(sent + ttl);
                            }
                            Ok(Some(_)) => {
                                tracing::warn!(lease = id, "lease expired");
                                *until.lock().unwrap_or_else(|p| p.into_inner()) = None;
                                return;
                            }
                            Ok(None) | Err(_) => break,
                        }
                        tokio::time::sleep(period).await;
                    },
                    Err(e) => tracing::debug!(lease = id, error = %e, "lease keep-alive stream failed; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Ok(Self { id, client, keeper, valid_until })
    }

    fn is_alive(&self) -> bool {
        self.valid_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|until| Instant::now() < until)
    }

    async fn revoke(mut self) {
        self.keeper.abort();
        if let Err(e) = self.client.lease_revoke(self.id).await {
            tracing::debug!(lease = self.id, error = %e, "lease revoke failed; it expires on its own");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Without keep-alives etcd expires the lease after its TTL.
        self.keeper.abort();
    }
}

/// Keeps a broker registered while held.
pub struct BrokerLease {
    _lease: Lease,
    incarnation: i64,
}

impl BrokerLease {
    /// The revision this registration was created at (see [`ClusterSnapshot::incarnations`]).
    pub fn incarnation(&self) -> i64 {
        self.incarnation
    }

    /// False once the lease may have expired: the registration is gone or going.
    pub fn is_alive(&self) -> bool {
        self._lease.is_alive()
    }
}

/// Keeps the controller role while held.
pub struct ControllerLease {
    lease: Lease,
    /// The `create_revision` of the `controller` key this controller wrote; its writes
    /// compare it so they fail once another controller took over.
    create_revision: i64,
    pub epoch: i32,
}

impl ControllerLease {
    /// False once the lease may have expired: another broker may be controller now.
    pub fn is_alive(&self) -> bool {
        self.lease.is_alive()
    }
}

#[async_trait]
impl MetadataStore for EtcdMetadataStore {
    async fn cluster_id(&self) -> Result<String, MetadataError> {
        let key = self.key("cluster/id");
        let bytes = self.get(&key).await?.0.ok_or_else(|| corrupt(&key, "missing"))?;
        String::from_utf8(bytes).map_err(|e| corrupt(&key, e))
    }

    async fn topics(&self) -> Result<Vec<TopicRecord>, MetadataError> {
        let prefix = self.key("brokers/topics/");
        let response = self.get_prefix("read the topics", &prefix).await?;
        let mut topics = response
            .kvs()
            .iter()
            .map(|kv| serde_json::from_slice::<TopicRecord>(kv.value()).map_err(|e| corrupt(&prefix, e)))
            .collect::<Result<Vec<_>, _>>()?;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    async fn create_topic(&self, topic: NewTopic) -> Result<TopicRecord, MetadataError> {
        let key = self.topic_key(&topic.name);
        if self.get(&key).await?.0.is_some() {
            return Err(MetadataError::TopicExists(topic.name));
        }
        let first_log_id = self.reserve(&self.key("latest_log_id"), i64::from(topic.partitions), 1).await?;
        let record = TopicRecord {
            partitions: (0..topic.partitions)
                .map(|index| PartitionRecord {
                    index,
                    log_id: (first_log_id + i64::from(index)) as u64,
                    leader_epoch: 0,
                    replicas: topic.assignment.get(index as usize).cloned().unwrap_or_default(),
                    ..Default::default()
                })
                .collect(),
            name: topic.name,
            topic_id: Uuid::new_v4(),
            replication_factor: topic.replication_factor,
            configs: topic.configs,
            internal: topic.internal,
        };
        let json = serde_json::to_vec(&record).map_err(|e| corrupt(&key, e))?;
        let mut ops = vec![TxnOp::put(key.clone(), json, None)];
        ops.extend(self.initial_state_ops(&record, 0)?);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then(ops)
            .or_else([TxnOp::get(key.clone(), None)]);
        let response = self.txn("create a topic", txn).await?;
        if response.succeeded() {
            return Ok(record);
        }
        // Ours after all when it carries the topic id this call chose (an earlier try
        // was applied, its answer lost).
        let existing_id = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice::<TopicRecord>(kv.value()).ok())
                .map(|t| t.topic_id),
            _ => None,
        });
        if existing_id == Some(record.topic_id) {
            return Ok(record);
        }
        Err(MetadataError::TopicExists(record.name))
    }

    async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        assignment: Vec<Vec<i32>>,
    ) -> Result<TopicRecord, MetadataError> {
        let key = self.topic_key(name);
        let mut written: Option<TopicRecord> = None;
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, revision) =
                self.read_topic(name).await?.ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            // The compare failed because an earlier try of this very write was applied.
            if written.as_ref() == Some(&record) {
                return Ok(record);
            }
            let current = record.partitions.len() as i32;
            if total <= current {
                return Err(MetadataError::PartitionsNotIncreased { current, requested: total });
            }
            let first_log_id = self.reserve(&self.key("latest_log_id"), i64::from(total - current), 1).await?;
            for (i, index) in (current..total).enumerate() {
                record.partitions.push(PartitionRecord {
                    index,
                    log_id: (first_log_id + i as i64) as u64,
                    leader_epoch: 0,
                    replicas: assignment.get(i).cloned().unwrap_or_default(),
                    ..Default::default()
                });
            }
            let json = serde_json::to_vec(&record).map_err(|e| corrupt(&key, e))?;
            let mut ops = vec![TxnOp::put(key.clone(), json, None)];
            ops.extend(self.initial_state_ops(&record, current)?);
            let txn = Txn::new().when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)]).and_then(ops);
            if self.txn("add partitions", txn).await?.succeeded() {
                return Ok(record);
            }
            written = Some(record);
        }
        Err(MetadataError::Etcd(format!("{key}: too many concurrent updates")))
    }

    async fn set_topic_configs(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<TopicRecord, MetadataError> {
        let key = self.topic_key(name);
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, revision) =
                self.read_topic(name).await?.ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            if record.configs == configs {
                // Already applied (or a retry of this very write).
                return Ok(record);
            }
            record.configs = configs.clone();
            let json = serde_json::to_vec(&record).map_err(|e| corrupt(&key, e))?;
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
                .and_then([TxnOp::put(key.clone(), json, None)]);
            if self.txn("alter topic configs", txn).await?.succeeded() {
                return Ok(record);
            }
        }
        Err(MetadataError::Etcd(format!("{key}: too many concurrent updates")))
    }

    async fn broker_configs(&self) -> Result<crate::BrokerConfigs, MetadataError> {
        Ok(self.snapshot().await?.broker_configs)
    }

    async fn set_broker_configs(
        &self,
        entity: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let key = self.key(&format!("config/brokers/{}", crate::broker_config_entity_name(entity)));
        let op = if configs.is_empty() {
            TxnOp::delete(key.clone(), None)
        } else {
            TxnOp::put(key.clone(), serde_json::to_vec(&configs).map_err(|e| corrupt(&key, e))?, None)
        };
        self.txn("store broker configs", Txn::new().and_then([op])).await?;
        Ok(())
    }

    async fn client_metrics_configs(&self) -> Result<crate::ClientMetricsConfigs, MetadataError> {
        Ok(self.snapshot().await?.client_metrics)
    }

    async fn set_client_metrics_configs(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let key = self.key(&format!("config/client-metrics/{name}"));
        let op = if configs.is_empty() {
            TxnOp::delete(key.clone(), None)
        } else {
            TxnOp::put(key.clone(), serde_json::to_vec(&configs).map_err(|e| corrupt(&key, e))?, None)
        };
        self.txn("store client metrics configs", Txn::new().and_then([op])).await?;
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<TopicRecord, MetadataError> {
        let key = self.topic_key(name);
        let mut tried: Option<TopicRecord> = None;
        for _ in 0..CAS_ATTEMPTS {
            let (record, revision) = match (self.read_topic(name).await?, tried) {
                (Some(found), _) => found,
                // Gone after a delete was sent: it was applied (or raced another delete).
                (None, Some(deleted)) => return Ok(deleted),
                (None, None) => return Err(MetadataError::UnknownTopic(name.to_string())),
            };
            let states = self.key(&format!("brokers/partitions/{name}/"));
            let txn = Txn::new().when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)]).and_then([
                TxnOp::delete(key.clone(), None),
                TxnOp::delete(states, Some(DeleteOptions::new().with_prefix())),
            ]);
            if self.txn("delete a topic", txn).await?.succeeded() {
                return Ok(record);
            }
            tried = Some(record);
        }
        Err(MetadataError::Etcd(format!("{key}: too many concurrent updates")))
    }

    async fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let start = self.reserve(&self.key("latest_producer_id_block"), PRODUCER_ID_BLOCK, 0).await?;
            *ids = (start, start + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    async fn scram_users(&self) -> Result<std::collections::BTreeMap<String, UserScramCredentials>, MetadataError> {
        let prefix = self.key("config/users/");
        let response = self.get_prefix("read the SCRAM users", &prefix).await?;
        let mut out = std::collections::BTreeMap::new();
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some(user) = key.strip_prefix(&prefix) else { continue };
            let credentials = serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?;
            out.insert(user.to_string(), credentials);
        }
        Ok(out)
    }

    async fn user_scram_credentials(&self, user: &str) -> Result<UserScramCredentials, MetadataError> {
        let key = self.key(&format!("config/users/{user}"));
        match self.get(&key).await?.0 {
            None => Ok(UserScramCredentials::new()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, e)),
        }
    }

    async fn alter_user_scram_credentials(&self, user: &str, change: ScramChange) -> Result<bool, MetadataError> {
        let key = self.key(&format!("config/users/{user}"));
        for _ in 0..CAS_ATTEMPTS {
            let (value, revision) = self.get(&key).await?;
            let mut credentials: UserScramCredentials = match value {
                None => UserScramCredentials::new(),
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, e))?,
            };
            if !change.apply(&mut credentials) {
                return Ok(false);
            }
            let op = if credentials.is_empty() {
                TxnOp::delete(key.clone(), None)
            } else {
                TxnOp::put(key.clone(), serde_json::to_vec(&credentials).map_err(|e| corrupt(&key, e))?, None)
            };
            // Another broker's change in between fails the compare: read it and apply
            // this one on top. (An absent key compares as revision 0.)
            let txn = Txn::new().when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)]).and_then([op]);
            if self.txn("store SCRAM credentials", txn).await?.succeeded() {
                return Ok(true);
            }
        }
        Err(MetadataError::Etcd(format!("{key}: too many concurrent updates")))
    }

    async fn acls(&self) -> Result<Vec<crate::AclBinding>, MetadataError> {
        let prefix = self.key("acls/");
        let response = self.get_prefix("read the ACLs", &prefix).await?;
        let mut out = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            out.push(serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?);
        }
        out.sort();
        Ok(out)
    }

    async fn create_acls(&self, acls: &[crate::AclBinding]) -> Result<(), MetadataError> {
        let mut ops = Vec::with_capacity(acls.len());
        for acl in acls {
            let key = self.key(&format!("acls/{}", acl.storage_key()));
            let json = serde_json::to_vec(acl).map_err(|e| corrupt(&key, e))?;
            ops.push(TxnOp::put(key, json, None));
        }
        self.acl_txn("store ACLs", ops).await
    }

    async fn client_quotas(&self) -> Result<Vec<(crate::QuotaEntity, crate::QuotaValues)>, MetadataError> {
        let prefix = self.key("quotas/");
        let response = self.get_prefix("read the client quotas", &prefix).await?;
        let mut out = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let stored: crate::StoredQuota = serde_json::from_slice(kv.value()).map_err(|e| corrupt(&key, e))?;
            out.push((stored.entity, stored.values));
        }
        Ok(out)
    }

    async fn alter_client_quotas(
        &self,
        entity: &crate::QuotaEntity,
        changes: &[(String, Option<f64>)],
    ) -> Result<(), MetadataError> {
        let key = self.key(&format!("quotas/{}", entity.storage_key()));
        for _ in 0..CAS_ATTEMPTS {
            let (value, revision) = self.get(&key).await?;
            let mut values = match value {
                None => crate::QuotaValues::new(),
                Some(bytes) => {
                    serde_json::from_slice::<crate::StoredQuota>(&bytes).map_err(|e| corrupt(&key, e))?.values
                }
            };
            crate::model::apply_quota_changes(&mut values, changes);
            let op = if values.is_empty() {
                TxnOp::delete(key.clone(), None)
            } else {
                let stored = crate::StoredQuota { entity: entity.clone(), values };
                TxnOp::put(key.clone(), serde_json::to_vec(&stored).map_err(|e| corrupt(&key, e))?, None)
            };
            let txn = Txn::new().when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)]).and_then([op]);
            if self.txn("store client quotas", txn).await?.succeeded() {
                return Ok(());
            }
        }
        Err(MetadataError::Etcd(format!("{key}: too many concurrent updates")))
    }

    async fn delete_acls(&self, acls: &[crate::AclBinding]) -> Result<(), MetadataError> {
        let ops =
            acls.iter().map(|acl| TxnOp::delete(self.key(&format!("acls/{}", acl.storage_key())), None)).collect();
        self.acl_txn("delete ACLs", ops).await
    }
}

impl EtcdMetadataStore {
    /// Runs ACL puts or deletes as one transaction. Each binding is its own key, so no
    /// compare is needed: concurrent changes to other bindings never conflict.
    async fn acl_txn(&self, what: &'static str, ops: Vec<TxnOp>) -> Result<(), MetadataError> {
        if ops.is_empty() {
            return Ok(());
        }
        // etcd refuses a transaction of more than `--max-txn-ops` (128 by default).
        if ops.len() > MAX_TXN_OPS {
            return Err(MetadataError::Etcd(format!(
                "{what}: {} ACLs in one request; at most {MAX_TXN_OPS} are applied atomically",
                ops.len()
            )));
        }
        self.txn(what, Txn::new().and_then(ops)).await?;
        Ok(())
    }
}

/// etcd's default `--max-txn-ops`.
const MAX_TXN_OPS: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let l = EtcdLocation::parse("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(
            l,
            EtcdLocation {
                endpoints: vec!["http://127.0.0.1:2379".into()],
                root: "/rivulet".into(),
                credentials: None,
                tls: None,
            }
        );
        let credentials = EtcdCredentials { user: "rivulet".into(), password: "s3cret".into() };
        assert!(!format!("{credentials:?}").contains("s3cret"));
        let l = EtcdLocation::parse("etcd://a:1,b:2/prod/kafka/").unwrap();
        assert_eq!(l.endpoints, vec!["http://a:1", "http://b:2"]);
        assert_eq!(l.root, "/prod/kafka");
        for bad in ["http://a:1", "etcd://", "etcd://a", "etcd://a:x"] {
            assert!(EtcdLocation::parse(bad).is_err(), "{bad}");
        }
        let tls = EtcdTls {
            trust_anchors: vec![vec![1]],
            identity: Some(("chain".into(), "-----BEGIN PRIVATE KEY-----".into())),
            verify_host_name: true,
        };
        let l = l.with_tls(tls);
        assert_eq!(l.endpoints, vec!["https://a:1", "https://b:2"]);
        assert!(!format!("{l:?}").contains("PRIVATE KEY"));
    }
}
