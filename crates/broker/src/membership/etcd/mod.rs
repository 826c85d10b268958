//! Cluster mode: several brokers sharing metadata in etcd.
//!
//! * [`Cluster::sync`] reads the whole cluster from etcd (one consistent read) and applies
//!   it through the [`ReplicaManager`]: topics appear, grow and disappear; each partition's
//!   replica learns its leader, epoch and ISR, and the broker ([`Node`]) reacts to its new
//!   role (coordinators load or unload their partitions); fetchers start for new leaders. A
//!   background task repeats this whenever etcd reports a change under the cluster's root.
//! * [`controller`] — one broker elects leaders when brokers come and go.
//! * ISR changes decided by a leader (a follower fell behind or caught up) are written by
//!   compare-and-swap on the partition state, as Kafka's leader does in ZooKeeper.

pub mod controller;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rivulet_metadata::assignment::{assign_replicas, BrokerPlacement};
use rivulet_metadata::reassignment;
use rivulet_metadata::{
    BrokerLease, BrokerRegistration, EtcdLocation, EtcdMetadataStore, MetadataError, MetadataStore, PartitionState,
    TopicRecord,
};
use rivulet_protocol::kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use rivulet_protocol::kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::record_batch::ControlType;
use rivulet_protocol::ResponseError;
use rivulet_storage::StorageError;
use tokio::sync::Notify;

use super::{internal_topic, JoinError, Membership, Node};
use crate::config::BrokerConfig;
use crate::replication::fetcher::{self, Peers};
use crate::replication::peer;
use crate::replication::replica::{Replica, Transition};
use crate::replication::topics::Topic;
use crate::replication::ReplicaManager;
use crate::txn::MarkerError;

/// The one WriteTxnMarkers version Kafka 4 speaks.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// This broker's membership of a cluster.
pub struct Cluster {
    pub etcd: Arc<EtcdMetadataStore>,
    config: BrokerConfig,
    replicas: Arc<ReplicaManager>,
    /// The broker, told about role changes once it joined.
    node: OnceLock<Weak<dyn Node>>,
    /// Itself, for the tasks it spawns.
    this: Weak<Cluster>,
    registration: Mutex<BrokerLease>,
    /// What this broker registered, to register again after its lease expired.
    pub me: BrokerRegistration,
    brokers: RwLock<Vec<BrokerRegistration>>,
    controller: RwLock<Option<i32>>,
    /// The controller epoch and store revision of the snapshot applied last.
    applied: RwLock<(i32, i64)>,
    /// Serialises snapshot applications.
    applying: tokio::sync::Mutex<()>,
    fetchers: Mutex<HashMap<i32, tokio::task::JoinHandle<()>>>,
    sync_requested: Notify,
}

impl Cluster {
    /// Connects to etcd and registers this broker under a lease of
    /// `broker.session.timeout.ms`.
    pub async fn connect(
        config: &BrokerConfig,
        location: &EtcdLocation,
        replicas: Arc<ReplicaManager>,
    ) -> Result<Arc<Self>, MetadataError> {
        let connection_timeout = Duration::from_millis(config.metadata_store_connection_timeout_ms);
        tracing::info!(endpoints = ?location.endpoints, timeout_ms = config.metadata_store_connection_timeout_ms, "connecting to etcd");
        let etcd = Arc::new(EtcdMetadataStore::connect(location, connection_timeout).await?);
        let me = super::registration_of(config);
        let ttl = Duration::from_millis(config.broker_session_timeout_ms);
        // After a crash the previous registration lives until its lease expires: wait for
        // that rather than fail, as a restarted broker would.
        let deadline = tokio::time::Instant::now() + ttl + Duration::from_secs(5);
        let lease = loop {
            match etcd.register_broker(&me, ttl).await {
                Err(MetadataError::NodeExists(id)) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(node_id = id, "previous registration still alive; waiting for its lease to expire");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => break other?,
            }
        };
        tracing::info!(endpoints = ?location.endpoints, root = %location.root, "metadata in etcd");
        Ok(Arc::new_cyclic(|this| Self {
            etcd,
            config: config.clone(),
            replicas,
            node: OnceLock::new(),
            this: this.clone(),
            registration: Mutex::new(lease),
            me,
            brokers: RwLock::new(Vec::new()),
            controller: RwLock::new(None),
            applied: RwLock::new((0, 0)),
            applying: tokio::sync::Mutex::new(()),
            fetchers: Mutex::new(HashMap::new()),
            sync_requested: Notify::new(),
        }))
    }

    /// The metadata store behind this membership.
    pub fn store(&self) -> Arc<dyn MetadataStore> {
        self.etcd.clone()
    }

    /// Live brokers as of the last sync, in node id order.
    pub fn live_brokers(&self) -> Vec<BrokerRegistration> {
        self.brokers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn broker(&self, node_id: i32) -> Option<BrokerRegistration> {
        self.live_brokers().into_iter().find(|b| b.node_id == node_id)
    }

    /// Whether this broker's registration surely still lives. A broker whose lease may
    /// have expired must not acknowledge writes: another may lead its partitions by now.
    pub fn registered(&self) -> bool {
        self.registration.lock().unwrap_or_else(|p| p.into_inner()).is_alive()
    }

    /// This broker's incarnation: the revision its current registration was created at.
    fn incarnation(&self) -> i64 {
        self.registration.lock().unwrap_or_else(|p| p.into_inner()).incarnation()
    }

    /// Leaderships granted to an earlier life of this broker (before a restart or an
    /// expired session) are not taken up: that life may have acknowledged records this one
    /// lost with its page cache, and followers would truncate to what is left. They stay
    /// leaderless here until the controller, which sees the new incarnation, elects again
    /// with a new leader epoch — Kafka's broker epoch fencing.
    fn set_aside_earlier_leaderships(&self, snapshot: &mut rivulet_metadata::ClusterSnapshot) {
        let incarnation = self.incarnation();
        for ((topic, partition), versioned) in &mut snapshot.states {
            if versioned.state.leader == self.config.node_id && versioned.revision < incarnation {
                tracing::debug!(%topic, partition, leader_epoch = versioned.state.leader_epoch, "leadership of an earlier incarnation; waiting for the controller");
                versioned.state.leader = -1;
            }
        }
    }

    /// Asks the sync task to read etcd again now.
    pub fn request_sync(&self) {
        self.sync_requested.notify_one();
    }

    /// Reads the cluster from etcd and applies it. Returns the revision read.
    pub async fn sync(&self) -> Result<i64, JoinError> {
        let _applying = self.applying.lock().await;
        let mut snapshot = self.etcd.snapshot().await?;
        self.set_aside_earlier_leaderships(&mut snapshot);
        *self.brokers.write().unwrap_or_else(|p| p.into_inner()) = snapshot.brokers.clone();
        *self.controller.write().unwrap_or_else(|p| p.into_inner()) = snapshot.controller;
        *self.applied.write().unwrap_or_else(|p| p.into_inner()) = (snapshot.controller_epoch, snapshot.revision);
        // Before the topics, so topics created in this sync resolve the new settings.
        if let Err(e) = self.replicas.apply_broker_configs(snapshot.broker_configs.clone()) {
            tracing::error!(error = %e, "dynamic broker configuration refused; keeping the previous one");
        }
        let transitions = self.replicas.apply_snapshot(&snapshot)?;
        let node = self.node.get().and_then(Weak::upgrade);
        if let Some(node) = &node {
            node.acls_read(snapshot.acls.clone());
            node.quotas_read(snapshot.quotas.clone());
            node.client_metrics_read(snapshot.client_metrics.clone());
        }
        for (replica, transition) in transitions {
            if transition != Transition::Unchanged {
                tracing::debug!(topic = %replica.topic, partition = replica.index, ?transition, view = ?replica.view(), "partition state applied");
            }
            if let Some(node) = &node {
                node.clone().role_changed(&replica, transition);
            }
        }
        self.ensure_fetchers();
        // Waiting produces and fetches re-check leadership and high watermarks.
        self.replicas.notify_append();
        Ok(snapshot.revision)
    }

    /// One fetcher per leader this broker follows a partition of.
    fn ensure_fetchers(&self) {
        let leaders = self.replicas.leaders_followed();
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        fetchers.retain(|_, task| !task.is_finished());
        for leader in leaders {
            fetchers.entry(leader).or_insert_with(|| {
                tracing::info!(leader, "starting to fetch from leader");
                let peers: Weak<dyn Peers> = self.this.clone();
                tokio::spawn(fetcher::run(Arc::downgrade(&self.replicas), peers, leader))
            });
        }
    }

    /// Where the replicas of `partitions` new partitions (numbered from `first`) go:
    /// Kafka's rack-aware spread over `brokers`.
    fn spread(
        brokers: &[BrokerRegistration],
        partitions: i32,
        replication_factor: i16,
        first: i32,
    ) -> Result<Vec<Vec<i32>>, MetadataError> {
        let brokers: Vec<BrokerPlacement> =
            brokers.iter().map(|b| BrokerPlacement { node_id: b.node_id, rack: b.rack.clone() }).collect();
        let random = uuid::Uuid::new_v4().as_u128();
        let count = brokers.len().max(1);
        assign_replicas(
            &brokers,
            partitions,
            replication_factor,
            first,
            (random % count as u128) as usize,
            ((random >> 64) % count as u128) as usize,
        )
        .map_err(|e| MetadataError::InvalidReplication(e.to_string()))
    }

    /// Creates an internal topic spread over `brokers` (the controller's duty).
    async fn create_internal_topic(
        &self,
        brokers: &[BrokerRegistration],
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), MetadataError> {
        let assignment = Self::spread(brokers, partitions, replication_factor, 0)?;
        match self.etcd.create_topic(internal_topic(name, partitions, replication_factor, assignment)).await {
            Ok(_) | Err(MetadataError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes an ISR this leader decided (shrink or expand) by compare-and-swap on the
    /// partition state it last saw; on a conflict the next sync shows who changed it.
    fn write_isr(&self, replica: &Arc<Replica>, isr: Vec<i32>) {
        if replica.isr_change_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let cluster = self.this.clone();
        let etcd = self.etcd.clone();
        let replica = replica.clone();
        let replicas = Arc::downgrade(&self.replicas);
        tokio::spawn(async move {
            let view = replica.view();
            let state = PartitionState {
                leader: view.leader,
                leader_epoch: view.leader_epoch,
                isr: isr.clone(),
                controller_epoch: view.controller_epoch,
            };
            let result = etcd.update_partition_state(&replica.topic, replica.index, view.revision, &state, None).await;
            match result {
                Ok(Some(revision)) => {
                    tracing::info!(topic = %replica.topic, partition = replica.index, from = ?view.isr, to = ?isr, "ISR changed");
                    replica.set_isr(isr, revision);
                    if replica.maybe_advance_high_watermark() {
                        if let Some(replicas) = replicas.upgrade() {
                            replicas.notify_append();
                        }
                    }
                }
                Ok(None) => {
                    tracing::debug!(topic = %replica.topic, partition = replica.index, "ISR change lost a race; re-reading");
                    if let Some(cluster) = cluster.upgrade() {
                        cluster.request_sync();
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "writing the ISR failed")
                }
            }
            replica.isr_change_pending.store(false, Ordering::SeqCst);
        });
    }

    /// Waits (briefly) until the sync task has applied a change this broker wrote.
    async fn await_synced(&self, done: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if done() {
                return true;
            }
            self.request_sync();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Peers for Cluster {
    fn peer(&self, node_id: i32) -> Option<BrokerRegistration> {
        self.broker(node_id).map(|b| b.for_listener(&self.config.security.inter_broker.listener))
    }

    fn inter_broker(&self) -> &crate::security::InterBroker {
        &self.config.security.inter_broker
    }

    fn request_sync(&self) {
        Cluster::request_sync(self);
    }
}

#[async_trait]
impl Membership for Cluster {
    async fn join(&self, node: Weak<dyn Node>) -> Result<(), JoinError> {
        let _ = self.node.set(node);
        self.sync().await.map(|_| ())
    }

    fn start(self: Arc<Self>) {
        tokio::spawn(sync_loop(Arc::downgrade(&self)));
        tokio::spawn(controller::run(Arc::downgrade(&self)));
        tokio::spawn(shrink_loop(Arc::downgrade(&self)));
        tokio::spawn(registration_loop(Arc::downgrade(&self)));
    }

    fn brokers(&self) -> Vec<BrokerRegistration> {
        self.live_brokers()
    }

    async fn live_brokers(&self) -> Vec<BrokerRegistration> {
        match self.etcd.live_brokers().await {
            Ok(brokers) => brokers,
            Err(e) => {
                tracing::warn!(error = %e, "reading live brokers failed; using the last known ones");
                Cluster::live_brokers(self)
            }
        }
    }

    fn controller_id(&self) -> Option<i32> {
        *self.controller.read().unwrap_or_else(|p| p.into_inner())
    }

    fn quorum(&self) -> super::QuorumView {
        let (controller_epoch, revision) = *self.applied.read().unwrap_or_else(|p| p.into_inner());
        super::QuorumView {
            controller: self.controller_id(),
            controller_epoch,
            applied_revision: Some(revision),
            brokers: self.brokers(),
        }
    }

    fn may_acknowledge(&self) -> bool {
        self.registered()
    }

    fn assigns_replicas(&self) -> bool {
        true
    }

    async fn placement(
        &self,
        partitions: i32,
        replication_factor: i16,
        first: i32,
    ) -> Result<Vec<Vec<i32>>, MetadataError> {
        let brokers = Membership::live_brokers(self).await;
        Self::spread(&brokers, partitions, replication_factor, first)
    }

    async fn topic_written(
        &self,
        name: &str,
        _record: Option<TopicRecord>,
        done: &(dyn Fn(Option<Arc<Topic>>) -> bool + Send + Sync),
    ) -> Result<(), StorageError> {
        if !self.await_synced(|| done(self.replicas.topics.get(name))).await {
            tracing::warn!(topic = %name, "metadata change not applied yet");
        }
        Ok(())
    }

    async fn broker_configs_written(
        &self,
        entity: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let applied = || {
            self.replicas.dynamic_configs().get(entity).is_some_and(|c| c == configs)
                || (configs.is_empty() && !self.replicas.dynamic_configs().contains_key(entity))
        };
        if !self.await_synced(applied).await {
            tracing::warn!(entity, "dynamic broker configuration not applied yet");
        }
        Ok(())
    }

    fn propose_isr(&self, replica: &Arc<Replica>, isr: Vec<i32>) {
        self.write_isr(replica, isr);
    }

    /// Runs `election` for `partitions` (every partition when `None`, and then only those
    /// where an election is needed are reported), each written by compare-and-swap on the
    /// partition state.
    async fn elect_leaders(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        election: controller::ElectionType,
    ) -> Result<Vec<(String, i32, Option<ResponseError>)>, MetadataError> {
        let snapshot = self.etcd.snapshot().await?;
        let live: HashSet<i32> = snapshot.brokers.iter().map(|b| b.node_id).collect();
        let all = partitions.is_none();
        let wanted = partitions.unwrap_or_else(|| {
            snapshot.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.index))).collect()
        });
        let mut results = Vec::with_capacity(wanted.len());
        for (topic, partition) in wanted {
            let replicas = snapshot
                .topics
                .iter()
                .find(|t| t.name == topic)
                .and_then(|t| t.partitions.iter().find(|p| p.index == partition))
                .map(|p| p.replicas.clone());
            let (Some(replicas), Some(versioned)) = (replicas, snapshot.states.get(&(topic.clone(), partition))) else {
                results.push((topic, partition, Some(ResponseError::UnknownTopicOrPartition)));
                continue;
            };
            let outcome = match controller::elect(&versioned.state, &replicas, &live, election) {
                Ok(next) => {
                    match self.etcd.update_partition_state(&topic, partition, versioned.revision, &next, None).await? {
                        Some(_) => {
                            tracing::info!(%topic, partition, leader = next.leader, leader_epoch = next.leader_epoch, ?election, "leader elected on request");
                            None
                        }
                        // The state changed meanwhile: the caller may retry.
                        None => Some(ResponseError::NotController),
                    }
                }
                Err(ResponseError::ElectionNotNeeded) if all => continue,
                Err(error) => Some(error),
            };
            results.push((topic, partition, outcome));
        }
        self.request_sync();
        Ok(results)
    }

    /// Writes the new replica list (or the original one back) by compare-and-swap on the
    /// partition's record and state, then applies it here so a ListPartitionReassignments
    /// right after shows it.
    async fn alter_reassignment(
        &self,
        topic: &str,
        partition: i32,
        target: Option<Vec<i32>>,
    ) -> Result<(), MetadataError> {
        let registered: HashSet<i32> = self.live_brokers().iter().map(|b| b.node_id).collect();
        let written = match &target {
            Some(target) => {
                reassignment::validate_target(target, &registered)?;
                self.etcd
                    .update_partition(topic, partition, None, |record, state| {
                        Ok(reassignment::start(record, target).map(|next| (next, state.clone())))
                    })
                    .await?
            }
            None => {
                let unclean = self
                    .replicas
                    .topics
                    .get(topic)
                    .map_or(self.replicas.effective_config().unclean_leader_election_enable, |t| {
                        t.settings.unclean_leader_election
                    });
                self.etcd
                    .update_partition(topic, partition, None, |record, state| {
                        reassignment::cancel(record, state, &registered, unclean).map(Some)
                    })
                    .await?
            }
        };
        if written {
            tracing::info!(%topic, partition, ?target, "partition reassignment altered");
        }
        if let Err(e) = self.sync().await {
            tracing::warn!(%topic, partition, error = %e, "applying the reassignment here failed; the sync task retries");
        }
        Ok(())
    }

    /// Writes the marker through `leader` (WriteTxnMarkers, as Kafka's coordinator sends
    /// them). Blocking: the transaction coordinator writes markers while holding its lock,
    /// so that no request observes a half-written outcome.
    fn write_remote_marker(
        &self,
        leader: i32,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
    ) -> Result<(), MarkerError> {
        let peer = self.peer(leader).ok_or_else(|| MarkerError::NoLeader { topic: topic.to_string(), partition })?;
        let remote = |source: Box<dyn std::error::Error + Send + Sync>| MarkerError::Remote {
            leader,
            topic: topic.to_string(),
            partition,
            source,
        };
        let commit = control == ControlType::Commit;
        let handle = tokio::runtime::Handle::try_current().map_err(|e| remote(e.into()))?;
        let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(vec![partition])])]);
        let client_id = format!("rivulet-txn-coordinator-{}", self.me.node_id);
        let call = async {
            let mut connection =
                peer::PeerConnection::connect(&peer.host, peer.port, client_id, &self.config.security.inter_broker)
                    .await?;
            connection.call(WRITE_TXN_MARKERS_VERSION, &request, Duration::from_secs(15)).await
        };
        let response = tokio::task::block_in_place(|| handle.block_on(call)).map_err(|e| remote(e.into()))?;
        let errors: Vec<i16> = response
            .markers
            .iter()
            .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
            .filter(|&code| code != 0)
            .collect();
        match (errors.first(), response.markers.is_empty()) {
            (None, false) => Ok(()),
            (None, true) => Err(remote("answered no marker".into())),
            // TRANSACTION_COORDINATOR_FENCED among them: a newer coordinator owns the
            // transaction now, and this one's copy stays prepared until it is unloaded.
            (Some(&code), _) => {
                let named = ResponseError::try_from_code(code).map_or_else(|| code.to_string(), |e| format!("{e:?}"));
                Err(remote(format!("refused with {named}").into()))
            }
        }
    }
}

async fn sync_loop(weak: Weak<Cluster>) {
    loop {
        let Some(cluster) = weak.upgrade() else { return };
        let result = cluster.sync().await;
        match result {
            Ok(revision) => {
                tokio::select! {
                    changed = cluster.etcd.wait_for_change(revision) => {
                        if let Err(e) = changed {
                            tracing::debug!(error = %e, "watching etcd failed");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                    _ = cluster.sync_requested.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading cluster metadata failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Every half `replica.lag.time.max.ms`, each leader drops followers that have not caught
/// up within it (Kafka's `maybeShrinkIsr`).
async fn shrink_loop(weak: Weak<Cluster>) {
    loop {
        let Some(cluster) = weak.upgrade() else { return };
        let lag = Duration::from_millis(cluster.config.replica_lag_time_max_ms);
        let mut moved = false;
        for replica in cluster.replicas.replicas() {
            if let Some(isr) = replica.shrunk_isr(lag) {
                cluster.write_isr(&replica, isr);
            }
            // Coordinator writes to a partition whose ISR is only this leader.
            moved |= replica.maybe_advance_high_watermark();
        }
        if moved {
            cluster.replicas.notify_append();
        }
        drop(cluster);
        tokio::time::sleep(lag / 2).await;
    }
}

/// Registers again when the lease expired (e.g. the broker was paused longer than
/// `broker.session.timeout.ms`), as a Kafka broker re-creates its ZooKeeper node after a
/// session expiry.
async fn registration_loop(weak: Weak<Cluster>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(cluster) = weak.upgrade() else { return };
        if cluster.registered() {
            continue;
        }
        let ttl = Duration::from_millis(cluster.config.broker_session_timeout_ms);
        match cluster.etcd.register_broker(&cluster.me, ttl).await {
            Ok(lease) => {
                tracing::warn!(node_id = cluster.me.node_id, "registration had expired; registered again");
                *cluster.registration.lock().unwrap_or_else(|p| p.into_inner()) = lease;
                cluster.request_sync();
            }
            Err(e) => tracing::debug!(error = %e, "registering again failed; retrying"),
        }
    }
}
