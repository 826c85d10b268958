//! The follower side of replication (Kafka's `ReplicaFetcherThread`): one task per leader
//! broker fetches every partition this broker follows from it, with the Fetch API and this
//! broker's id as `replica_id`, and appends the batches exactly as the leader stored them.
//!
//! Before fetching a partition whose leader changed, the follower asks the leader where
//! its own latest epoch ends (OffsetForLeaderEpoch, KIP-279) and truncates what the leader
//! does not have, so a replica never keeps history the new leader never had.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rivulet_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rivulet_protocol::kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use rivulet_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::record_batch::split_batches;
use rivulet_protocol::ResponseError;

use super::peer::{PeerConnection, PeerError};
use super::replica::Replica;
use super::ReplicaManager;

use rivulet_metadata::BrokerRegistration;

/// Where the other brokers are, as the membership last saw them.
pub trait Peers: Send + Sync {
    /// The live broker `node_id`, if it is one, at its inter-broker listener.
    fn peer(&self, node_id: i32) -> Option<BrokerRegistration>;
    /// How to reach and authenticate to that listener.
    fn inter_broker(&self) -> &crate::security::InterBroker;
    /// Asks for the cluster's metadata to be read again (e.g. the leader moved).
    fn request_sync(&self);
}

/// Fetch version followers send: the last one naming topics (v13+ use topic ids) and
/// carrying `replica_id` in the body.
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Wait before connecting again to a leader that could not be reached.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(300);
/// Longest wait after refused logins in a row.
const AUTHENTICATION_BACKOFF_MAX: Duration = Duration::from_secs(10);
const RESPONSE_MAX_BYTES: i32 = 16 * 1024 * 1024;

/// Runs until this broker follows nothing on `leader` any more.
pub async fn run(replicas: Weak<ReplicaManager>, peers: Weak<dyn Peers>, leader: i32) {
    let mut connection: Option<PeerConnection> = None;
    // Refused logins in a row: each waits twice as long as the one before (up to
    // AUTHENTICATION_BACKOFF_MAX), so a misconfigured broker neither hammers its peers nor
    // floods its log, and still joins soon after the credential is fixed.
    let mut refused_logins: u32 = 0;
    loop {
        let (Some(strong), Some(cluster)) = (replicas.upgrade(), peers.upgrade()) else { return };
        let partitions = strong.followed_from(leader);
        if partitions.is_empty() {
            tracing::debug!(leader, "fetcher stops: nothing left to follow");
            return;
        }
        if connection.is_none() {
            let Some(peer) = cluster.peer(leader) else {
                drop(strong);
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            };
            let client_id = format!("rivulet-replica-{}", strong.node_id());
            match PeerConnection::connect(&peer.host, peer.port, client_id, cluster.inter_broker()).await {
                Ok(c) => {
                    refused_logins = 0;
                    connection = Some(c);
                }
                Err(e) => {
                    let backoff = if e.is_authentication() {
                        refused_logins = refused_logins.saturating_add(1);
                        let backoff = RECONNECT_BACKOFF
                            .saturating_mul(1 << refused_logins.min(6))
                            .min(AUTHENTICATION_BACKOFF_MAX);
                        tracing::warn!(leader, error = %e, retry_in = ?backoff, "inter-broker authentication failed: cannot follow the leader");
                        backoff
                    } else {
                        tracing::debug!(leader, error = %e, "cannot reach the leader");
                        RECONNECT_BACKOFF
                    };
                    drop(strong);
                    drop(cluster);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else { continue };
        let result = fetch_round(&strong, conn, leader, &partitions).await;
        drop(strong);
        match result {
            Ok(true) => {}
            Ok(false) => {
                // Every partition failed (e.g. the leader moved): let metadata catch up.
                cluster.request_sync();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                tracing::debug!(leader, error = %e, "fetch from the leader failed; reconnecting");
                connection = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Truncates, then fetches once. Returns whether any partition was served.
async fn fetch_round(
    replicas: &ReplicaManager,
    conn: &mut PeerConnection,
    leader: i32,
    partitions: &[Arc<Replica>],
) -> Result<bool, PeerError> {
    let diverged: Vec<&Arc<Replica>> =
        partitions.iter().filter(|r| r.needs_truncation.load(Ordering::SeqCst)).collect();
    if !diverged.is_empty() {
        truncate(replicas, conn, &diverged).await?;
    }
    // A throttled replica still catching up (a reassignment's copy) fetches only within
    // `follower.replication.throttled.rate`.
    let rate = replicas.effective_config().follower_replication_throttled_rate;
    let local = replicas.node_id();
    let throttled = |replica: &Replica| {
        rate != i64::MAX
            && !replica.view().isr.contains(&local)
            && replicas.topics.get(&replica.topic).is_some_and(|t| {
                crate::topic_config::throttles(
                    t.record.configs.get("follower.replication.throttled.replicas"),
                    replica.index,
                    local,
                )
            })
    };
    let held_back = !replicas.follower_throttle.allows(rate);
    let ready: Vec<&Arc<Replica>> = partitions
        .iter()
        .filter(|r| !(r.needs_truncation.load(Ordering::SeqCst) || held_back && throttled(r)))
        .collect();
    if ready.is_empty() {
        return Ok(false);
    }
    // Epochs as sent: a response for an older epoch is dropped.
    let mut sent: BTreeMap<(String, i32), (Arc<Replica>, i32)> = BTreeMap::new();
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for replica in ready {
        let epoch = replica.leader_epoch();
        topics.entry(replica.topic.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(replica.index)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(replica.log.log_end_offset())
                .with_log_start_offset(replica.log.log_start_offset())
                .with_last_fetched_epoch(-1)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
        sent.insert((replica.topic.clone(), replica.index), (replica.clone(), epoch));
    }
    let wait = replicas.config().replica_fetch_wait_max_ms;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(replicas.node_id()))
        .with_max_wait_ms(i32::try_from(wait).unwrap_or(500))
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    FetchTopic::default().with_topic(TopicName(StrBytes::from_string(name))).with_partitions(partitions)
                })
                .collect(),
        );
    let response = conn.call(FETCH_VERSION, &request, Duration::from_millis(wait) + Duration::from_secs(10)).await?;
    if response.error_code != 0 {
        tracing::debug!(leader, error_code = response.error_code, "fetch refused by the leader");
        return Ok(false);
    }
    let mut served = false;
    for topic in response.responses {
        for partition in topic.partitions {
            let key = (topic.topic.0.to_string(), partition.partition_index);
            let Some((replica, epoch)) = sent.get(&key) else { continue };
            let view = replica.view();
            if view.leader != leader || view.leader_epoch != *epoch {
                continue;
            }
            match ResponseError::try_from_code(partition.error_code) {
                None => {
                    served = true;
                    let records = partition.records.unwrap_or_default();
                    if throttled(replica) {
                        replicas.follower_throttle.record(rate, records.len());
                    }
                    append(replica, records, partition.high_watermark);
                    follow_log_start(replica, partition.log_start_offset);
                }
                Some(ResponseError::OffsetOutOfRange) if partition.log_start_offset > replica.log.log_end_offset() => {
                    // Retention or DeleteRecords at the leader removed everything this
                    // replica still lacks: start again, empty, at the leader's log start
                    // (Kafka's `truncateFullyAndStartAt`).
                    tracing::info!(topic = %replica.topic, partition = replica.index, log_end_offset = replica.log.log_end_offset(),
                        leader_log_start_offset = partition.log_start_offset, "behind the leader's log start; restarting the log there");
                    if let Err(e) = replica.log.reset_to(partition.log_start_offset) {
                        tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "resetting the log failed");
                    }
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    // The leader's log ends before ours: our tail is not the leader's history.
                    tracing::info!(topic = %replica.topic, partition = replica.index, "fetch offset out of range at the leader; checking for divergence");
                    replica.needs_truncation.store(true, Ordering::SeqCst);
                }
                Some(error) => {
                    tracing::debug!(topic = %replica.topic, partition = replica.index, ?error, "leader refused the fetch");
                }
            }
        }
    }
    Ok(served)
}

fn append(replica: &Replica, records: bytes::Bytes, leader_high_watermark: i64) {
    let batches = match split_batches(&records) {
        Ok(batches) => batches,
        Err(e) => {
            tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "leader sent a malformed fetch response");
            return;
        }
    };
    for batch in batches {
        if let Err(e) = replica.log.append_replicated(&batch) {
            tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "replicated batch refused; re-checking divergence");
            replica.needs_truncation.store(true, Ordering::SeqCst);
            return;
        }
    }
    if let Err(e) = replica.log.advance_high_watermark(leader_high_watermark) {
        tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "checkpointing the high watermark failed");
    }
}

/// Moves this replica's log start up to the leader's (Kafka's follower does the same with
/// `LeaderOffsetIncremented`), never past what this replica knows to be committed.
fn follow_log_start(replica: &Replica, leader_log_start: i64) {
    let target = leader_log_start.min(replica.log.high_watermark());
    if target <= replica.log.log_start_offset() {
        return;
    }
    match replica.log.advance_log_start(target) {
        Ok(Some(trimmed)) => {
            tracing::debug!(topic = %replica.topic, partition = replica.index, log_start_offset = trimmed.log_start_offset, "log start moved to the leader's");
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(topic = %replica.topic, partition = replica.index, error = %e, "following the leader's log start failed")
        }
    }
}

/// KIP-279: asks the leader where our latest epoch ends and truncates beyond it.
async fn truncate(
    manager: &ReplicaManager,
    conn: &mut PeerConnection,
    replicas: &[&Arc<Replica>],
) -> Result<(), PeerError> {
    let mut topics: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for replica in replicas {
        let Some(latest) = replica.log.latest_epoch() else {
            // Nothing written yet: nothing can diverge.
            replica.needs_truncation.store(false, Ordering::SeqCst);
            continue;
        };
        topics.entry(replica.topic.clone()).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(replica.index)
                .with_current_leader_epoch(replica.leader_epoch())
                .with_leader_epoch(latest),
        );
    }
    if topics.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(manager.node_id())).with_topics(
        topics
            .into_iter()
            .map(|(name, partitions)| {
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    let response = conn.call(OFFSET_FOR_LEADER_EPOCH_VERSION, &request, Duration::from_secs(10)).await?;
    for topic in response.topics {
        for answer in topic.partitions {
            let Some(replica) =
                replicas.iter().find(|r| r.topic == topic.topic.0.as_str() && r.index == answer.partition)
            else {
                continue;
            };
            if answer.error_code != 0 {
                tracing::debug!(topic = %replica.topic, partition = replica.index, error_code = answer.error_code, "leader did not answer OffsetForLeaderEpoch");
                continue;
            }
            let log = &replica.log;
            let end = log.log_end_offset();
            let target = if answer.leader_epoch < 0 || answer.end_offset < 0 {
                // The leader knows none of our epochs: keep only what is committed.
                log.high_watermark()
            } else if Some(answer.leader_epoch) == log.latest_epoch() {
                answer.end_offset.min(end)
            } else {
                // The leader's answer is for an older epoch: where does it end here?
                let (_, ours) = log.end_offset_for_epoch(answer.leader_epoch);
                if ours < 0 {
                    answer.end_offset.min(end)
                } else {
                    answer.end_offset.min(ours)
                }
            };
            if target < end {
                tracing::info!(topic = %replica.topic, partition = replica.index, from = end, to = target, leader_epoch = answer.leader_epoch, "truncating divergent log");
                if let Err(e) = log.truncate_to(target) {
                    tracing::error!(topic = %replica.topic, partition = replica.index, error = %e, "truncation failed");
                    continue;
                }
            }
            replica.needs_truncation.store(false, Ordering::SeqCst);
        }
    }
    Ok(())
}
