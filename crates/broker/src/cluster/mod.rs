//! Cluster mode: several brokers sharing metadata in etcd.
//!
//! * [`Cluster::sync`] reads the whole cluster from etcd (one consistent read) and applies
//!   it: topics appear, grow and disappear; each partition's [`Replica`] learns its leader,
//!   epoch and ISR, and the broker reacts to its new role (coordinators load or unload their
//!   partitions, fetchers start for new leaders). A background task repeats this whenever
//!   etcd reports a change under the cluster's root.
//! * [`fetcher`] — followers copy their leaders' logs.
//! * [`controller`] — one broker elects leaders when brokers come and go.
//! * ISR changes decided by a leader (a follower fell behind or caught up) are written by
//!   compare-and-swap on the partition state, as Kafka's leader does in ZooKeeper.

pub mod controller;
mod fetcher;
mod peer;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use rivulet_metadata::{
    BrokerLease, BrokerRegistration, ClusterSnapshot, EtcdMetadataStore, MetadataError, PartitionState,
};
use rivulet_protocol::kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use rivulet_protocol::kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use rivulet_protocol::ResponseError;
use tokio::sync::Notify;

/// The one WriteTxnMarkers version Kafka 4 speaks.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

use crate::broker::Broker;
use crate::replica::{Replica, ReplicaView, Transition};

/// This broker's membership of a cluster.
pub struct Cluster {
    pub etcd: Arc<EtcdMetadataStore>,
    registration: Mutex<BrokerLease>,
    /// What this broker registered, to register again after its lease expired.
    pub me: BrokerRegistration,
    brokers: RwLock<Vec<BrokerRegistration>>,
    controller: RwLock<Option<i32>>,
    /// Serialises snapshot applications.
    applying: tokio::sync::Mutex<()>,
    fetchers: Mutex<HashMap<i32, tokio::task::JoinHandle<()>>>,
    sync_requested: Notify,
}

impl Cluster {
    pub fn new(etcd: Arc<EtcdMetadataStore>, me: BrokerRegistration, registration: BrokerLease) -> Self {
        Self {
            etcd,
            registration: Mutex::new(registration),
            me,
            brokers: RwLock::new(Vec::new()),
            controller: RwLock::new(None),
            applying: tokio::sync::Mutex::new(()),
            fetchers: Mutex::new(HashMap::new()),
            sync_requested: Notify::new(),
        }
    }

    /// Live brokers as of the last sync, in node id order.
    pub fn live_brokers(&self) -> Vec<BrokerRegistration> {
        self.brokers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn broker(&self, node_id: i32) -> Option<BrokerRegistration> {
        self.live_brokers().into_iter().find(|b| b.node_id == node_id)
    }

    pub fn controller_id(&self) -> Option<i32> {
        *self.controller.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this broker's registration surely still lives. A broker whose lease may
    /// have expired must not acknowledge writes: another may lead its partitions by now.
    pub fn registered(&self) -> bool {
        self.registration.lock().unwrap_or_else(|p| p.into_inner()).is_alive()
    }

    /// Asks the sync task to read etcd again now.
    pub fn request_sync(&self) {
        self.sync_requested.notify_one();
    }

    /// Reads the cluster from etcd and applies it. Returns the revision read.
    pub async fn sync(&self, broker: &Arc<Broker>) -> Result<i64, MetadataError> {
        let _applying = self.applying.lock().await;
        let snapshot = self.etcd.snapshot().await?;
        *self.brokers.write().unwrap_or_else(|p| p.into_inner()) = snapshot.brokers.clone();
        *self.controller.write().unwrap_or_else(|p| p.into_inner()) = snapshot.controller;
        // Before the topics, so topics created in this sync resolve the new settings.
        if let Err(e) = broker.apply_broker_configs(snapshot.broker_configs.clone()) {
            tracing::error!(error = %e, "dynamic broker configuration refused; keeping the previous one");
        }
        let transitions = self.apply_topics(broker, &snapshot)?;
        for (replica, transition) in transitions {
            if transition != Transition::Unchanged {
                tracing::debug!(topic = %replica.topic, partition = replica.index, ?transition, view = ?replica.view(), "partition state applied");
            }
            broker.on_transition(&replica, transition);
        }
        self.ensure_fetchers(broker);
        // Waiting produces and fetches re-check leadership and high watermarks.
        broker.notify_append();
        Ok(snapshot.revision)
    }

    fn apply_topics(
        &self,
        broker: &Arc<Broker>,
        snapshot: &ClusterSnapshot,
    ) -> Result<Vec<(Arc<Replica>, Transition)>, MetadataError> {
        let mut transitions = Vec::new();
        let names: HashSet<&str> = snapshot.topics.iter().map(|t| t.name.as_str()).collect();
        for existing in broker.topics.all() {
            if !names.contains(existing.record.name.as_str()) {
                broker.drop_topic_locally(&existing.record.name)?;
            }
        }
        for record in &snapshot.topics {
            let existing = broker.topics.get(&record.name);
            let same = existing.as_ref().filter(|t| t.record.topic_id == record.topic_id);
            if existing.is_some() && same.is_none() {
                // Deleted and created again under the same name: a new log.
                broker.drop_topic_locally(&record.name)?;
            }
            let view_of = |index: i32, replicas: &[i32]| match snapshot.states.get(&(record.name.clone(), index)) {
                Some(v) => ReplicaView {
                    leader: v.state.leader,
                    leader_epoch: v.state.leader_epoch,
                    isr: v.state.isr.clone(),
                    replicas: replicas.to_vec(),
                    revision: v.revision,
                    controller_epoch: v.state.controller_epoch,
                },
                None => ReplicaView {
                    leader: -1,
                    leader_epoch: 0,
                    isr: vec![],
                    replicas: replicas.to_vec(),
                    revision: 0,
                    controller_epoch: 0,
                },
            };
            let (topic, changed) = broker.build_topic(record.clone(), same.map(|t| &**t), view_of)?;
            transitions.extend(changed);
            broker.topics.insert(Arc::new(topic));
        }
        Ok(transitions)
    }

    /// One fetcher per leader this broker follows a partition of.
    fn ensure_fetchers(&self, broker: &Arc<Broker>) {
        let local = broker.config.node_id;
        let leaders: HashSet<i32> = broker
            .topics
            .all()
            .iter()
            .flat_map(|t| t.replicas.iter())
            .map(|r| r.view())
            .filter(|v| v.leader >= 0 && v.leader != local && v.replicas.contains(&local))
            .map(|v| v.leader)
            .collect();
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        fetchers.retain(|_, task| !task.is_finished());
        for leader in leaders {
            fetchers.entry(leader).or_insert_with(|| {
                tracing::info!(leader, "starting to fetch from leader");
                tokio::spawn(fetcher::run(Arc::downgrade(broker), leader))
            });
        }
    }

    /// Writes an ISR this leader decided (shrink or expand) by compare-and-swap on the
    /// partition state it last saw; on a conflict the next sync shows who changed it.
    pub fn propose_isr(self: &Arc<Self>, broker: &Arc<Broker>, replica: &Arc<Replica>, isr: Vec<i32>) {
        if replica.isr_change_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let cluster = self.clone();
        let replica = replica.clone();
        let broker = Arc::downgrade(broker);
        tokio::spawn(async move {
            let view = replica.view();
            let state = PartitionState {
                leader: view.leader,
                leader_epoch: view.leader_epoch,
                isr: isr.clone(),
                controller_epoch: view.controller_epoch,
            };
            let result =
                cluster.etcd.update_partition_state(&replica.topic, replica.index, view.revision, &state, None).await;
            match result {
                Ok(Some(revision)) => {
                    tracing::info!(topic = %replica.topic, partition = replica.index, from = ?view.isr, to = ?isr, "ISR changed");
                    replica.set_isr(isr, revision);
                    if replica.maybe_advance_high_watermark() {
                        if let Some(broker) = broker.upgrade() {
                            broker.notify_append();
                        }
                    }
                }
                Ok(None) => {
                    tracing::debug!(topic = %replica.topic, partition = replica.index, "ISR change lost a race; re-reading");
                    cluster.request_sync();
                }
                Err(e) => {
                    tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "writing the ISR failed")
                }
            }
            replica.isr_change_pending.store(false, Ordering::SeqCst);
        });
    }

    /// ElectLeaders: runs `election` for `partitions` (every partition when `None`, and then
    /// only those where an election is needed are reported), each written by
    /// compare-and-swap on the partition state.
    pub async fn elect_leaders(
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

    /// Writes a transaction marker into `topic`-`partition` through its leader, another
    /// broker (WriteTxnMarkers, as Kafka's coordinator sends them). Blocking: the
    /// transaction coordinator writes markers while holding its lock, so that no request
    /// observes a half-written outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn write_remote_marker(
        &self,
        leader: i32,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), String> {
        let peer = self.broker(leader).ok_or_else(|| format!("{topic}-{partition} has no live leader"))?;
        let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(crate::handlers::str_bytes(topic)))
                .with_partition_indexes(vec![partition])])]);
        let client_id = format!("rivulet-txn-coordinator-{}", self.me.node_id);
        let call = async {
            let mut connection = peer::PeerConnection::connect(&peer.host, peer.port, client_id).await?;
            connection.call(WRITE_TXN_MARKERS_VERSION, &request, Duration::from_secs(15)).await
        };
        let response = tokio::task::block_in_place(|| handle.block_on(call)).map_err(|e| e.to_string())?;
        let errors: Vec<i16> = response
            .markers
            .iter()
            .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
            .filter(|&code| code != 0)
            .collect();
        match (errors.first(), response.markers.is_empty()) {
            (None, false) => Ok(()),
            (None, true) => Err(format!("broker {leader} answered no marker for {topic}-{partition}")),
            (Some(code), _) => Err(format!("broker {leader} refused the marker for {topic}-{partition}: error {code}")),
        }
    }

    /// Starts the sync task, the controller campaign, the ISR-shrink check and the
    /// registration keeper.
    pub fn start(broker: &Arc<Broker>) {
        tokio::spawn(sync_loop(Arc::downgrade(broker)));
        tokio::spawn(controller::run(Arc::downgrade(broker)));
        tokio::spawn(shrink_loop(Arc::downgrade(broker)));
        tokio::spawn(registration_loop(Arc::downgrade(broker)));
    }
}

async fn sync_loop(broker: Weak<Broker>) {
    loop {
        let Some(strong) = broker.upgrade() else { return };
        let Some(cluster) = strong.cluster.clone() else { return };
        let result = cluster.sync(&strong).await;
        drop(strong);
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
async fn shrink_loop(broker: Weak<Broker>) {
    loop {
        let Some(strong) = broker.upgrade() else { return };
        let lag = Duration::from_millis(strong.config.replica_lag_time_max_ms);
        if let Some(cluster) = strong.cluster.clone() {
            let mut moved = false;
            for replica in strong.topics.all().iter().flat_map(|t| t.replicas.iter()) {
                if let Some(isr) = replica.shrunk_isr(lag) {
                    cluster.propose_isr(&strong, replica, isr);
                }
                // Coordinator writes to a partition whose ISR is only this leader.
                moved |= replica.maybe_advance_high_watermark();
            }
            if moved {
                strong.notify_append();
            }
        }
        drop(strong);
        tokio::time::sleep(lag / 2).await;
    }
}

/// Registers again when the lease expired (e.g. the broker was paused longer than
/// `broker.session.timeout.ms`), as a Kafka broker re-creates its ZooKeeper node after a
/// session expiry.
async fn registration_loop(broker: Weak<Broker>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(strong) = broker.upgrade() else { return };
        let Some(cluster) = strong.cluster.clone() else { return };
        if cluster.registered() {
            continue;
        }
        let ttl = Duration::from_millis(strong.config.broker_session_timeout_ms);
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
