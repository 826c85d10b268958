//! The group coordinator for Kafka's classic group protocol (JoinGroup / SyncGroup /
//! Heartbeat / LeaveGroup) and committed offsets, following Kafka's `GroupCoordinator`
//! state machine:
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                   ▲      ▲                                      │ leader's SyncGroup
//!   │ last member leaves│      └──── member joins, leaves, expires ───┤
//!   └───────────────────┴──────────────────────────────────────── Stable
//! ```
//!
//! The broker treats member metadata and assignments as opaque bytes, so any protocol
//! type (consumer, connect, ...) works. State lives in memory and every change a restart
//! must see — committed offsets, and each group's membership after a rebalance — is
//! written first to `__consumer_offsets` (see [`persist`]), which is replayed on start.
//!
//! Timers (delayed initial join, rebalance timeouts, session expiry, offset retention)
//! are driven by [`GroupCoordinator::tick`], which the broker calls every 100 ms.

pub mod persist;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rivulet_protocol::ResponseError;
use rivulet_storage::{AppendOptions, AppendOrigin, PartitionLog};
use tokio::sync::oneshot;

use crate::coordinator_partitions::CoordinatorPartitions;
use crate::internal_topic::{self, Replayed, TxnProducer};
use persist::{GroupValue, MemberValue, OffsetValue, Record, RecordKey, RecordValue};

/// An offset committed inside a transaction, applied when its COMMIT marker is written.
#[derive(Debug, Clone)]
struct PendingOffset {
    group: String,
    topic: String,
    partition: i32,
    value: OffsetValue,
}

/// Kafka's group coordinator settings, under their `server.properties` names.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`
    pub offsets_retention: Duration,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
}

/// Kafka's group states, with the names `DescribeGroups` and `ListGroups` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What JoinGroup answers (before encoding).
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// `(member_id, group_instance_id, metadata)`, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814: a static leader that rejoined a stable group learns the members but keeps
    /// the current assignment.
    pub skip_assignment: bool,
}

impl JoinResult {
    fn error(error: ResponseError, member_id: &str) -> Self {
        JoinResult { error: Some(error), generation_id: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

/// What SyncGroup answers.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: ResponseError) -> Self {
        SyncResult { error: Some(error), ..Default::default() }
    }
}

/// Either an answer now, or one that comes when the rebalance step completes.
pub enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+ requires a known member id before joining (KIP-394).
    pub require_known_member_id: bool,
}

/// A described member (DescribeGroups).
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A described group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    joined_this_round: bool,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(name, _)| name == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with when.
    pending: HashMap<String, Instant>,
    /// `group.instance.id` → member id (KIP-345).
    static_members: HashMap<String, String>,
    offsets: HashMap<(String, i32), OffsetValue>,
    /// PreparingRebalance: join completes by then at the latest.
    /// CompletingRebalance: the leader must sync by then.
    deadline: Option<Instant>,
    /// The delayed first join of an empty group (`group.initial.rebalance.delay.ms`).
    initial_delay_until: Option<Instant>,
    state_since_ms: i64,
}

impl Group {
    fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            deadline: None,
            initial_delay_until: None,
            state_since_ms: now_ms(),
        }
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_since_ms = now_ms();
    }

    /// Protocols every member (and the joining one) supports, in the joiner's order.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    /// Kafka's `selectProtocol`: among protocols all members support, each member votes
    /// for the first it lists; most votes wins (ties: the earliest candidate).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == *n)))
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for member in self.members.values() {
            if let Some((_, vote)) = member.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(entry) = votes.iter_mut().find(|(_, c)| *c == vote) {
                    entry.0 += 1;
                }
            }
        }
        let best = votes.iter().map(|(v, _)| *v).max()?;
        votes.into_iter().find(|(v, _)| *v == best).map(|(_, c)| c.clone())
    }

    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            let protocol = self.protocol_name.as_deref();
            self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(protocol))).collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(Duration::from_secs(60))
    }

    fn to_value(&self) -> GroupValue {
        let protocol = self.protocol_name.as_deref();
        GroupValue {
            protocol_type: self.protocol_type.clone(),
            generation_id: self.generation,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    subscription: m.metadata_for(protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    settings: GroupSettings,
    /// The `__consumer_offsets` partitions served here (on a single node, all).
    partitions: CoordinatorPartitions,
    groups: Mutex<HashMap<String, Group>>,
    /// TxnOffsetCommit offsets by producer id, until their transaction ends (Kafka's
    /// `pendingTransactionalOffsetCommits`). Locked after `groups` when both are needed.
    pending_txn_offsets: Mutex<HashMap<i64, Vec<PendingOffset>>>,
}

/// Why state could not be persisted; the request then fails with a retriable error.
#[derive(Debug, thiserror::Error)]
#[error("writing to __consumer_offsets failed: {0}")]
pub struct PersistError(String);

impl GroupCoordinator {
    /// A coordinator that serves no partition yet; see [`Self::load_partition`].
    pub fn new(settings: GroupSettings, num_partitions: i32) -> Self {
        GroupCoordinator {
            settings,
            partitions: CoordinatorPartitions::new(num_partitions),
            groups: Mutex::new(HashMap::new()),
            pending_txn_offsets: Mutex::new(HashMap::new()),
        }
    }

    /// Says that partition `partition` is about to be loaded.
    pub fn mark_loading(&self, partition: i32) {
        self.partitions.mark_loading(partition);
    }

    /// Whether this coordinator serves `group`: `None` when it does, else the error Kafka
    /// gives (NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while its partition loads).
    pub fn status(&self, group: &str) -> Option<ResponseError> {
        self.partitions.status(self.partition_of(group))
    }

    /// Replays one partition of `__consumer_offsets` into memory and starts serving its
    /// groups (this broker became its leader, or a single node starts).
    pub fn load_partition(&self, partition: i32, log: Arc<PartitionLog>) -> Result<(), PersistError> {
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut pending: HashMap<i64, Vec<Record>> = HashMap::new();
        let now = Instant::now();
        let mut failure = None;
        internal_topic::replay(&log, |batch| match batch {
            Replayed::Records { txn, records } => {
                for (key, value) in records {
                    match persist::decode_record(&key, value.as_deref()) {
                        Ok(Some(record)) => match txn {
                            Some(txn) => pending.entry(txn.producer_id).or_default().push(record),
                            None => apply_record(&mut groups, record, now),
                        },
                        Ok(None) => {}
                        Err(e) => failure = Some(e.to_string()),
                    }
                }
            }
            Replayed::Marker { producer_id, control } => {
                let records = pending.remove(&producer_id).unwrap_or_default();
                if control == rivulet_protocol::record_batch::ControlType::Commit {
                    for record in records {
                        apply_record(&mut groups, record, now);
                    }
                }
            }
        })
        .map_err(PersistError)?;
        if let Some(e) = failure {
            self.partitions.finish_loading(partition, None);
            return Err(PersistError(e));
        }
        groups.retain(|_, g| {
            !(g.members.is_empty() && g.offsets.is_empty() && g.state == GroupState::Empty && g.generation == 0)
        });
        let loaded = groups.len();
        {
            let mut all = self.lock();
            // Transactions still open: their offsets wait for the transaction coordinator.
            let mut open = self.pending_txn_offsets.lock().unwrap_or_else(|p| p.into_inner());
            for (producer_id, records) in pending {
                for (key, value) in records {
                    if let (RecordKey::Offset { group, topic, partition }, Some(RecordValue::Offset(value))) = (key, value)
                    {
                        open.entry(producer_id).or_default().push(PendingOffset { group, topic, partition, value });
                    }
                }
            }
            all.extend(groups);
            self.partitions.finish_loading(partition, Some(log));
        }
        tracing::debug!(partition, groups = loaded, "group coordinator loaded a __consumer_offsets partition");
        Ok(())
    }

    /// Stops serving the groups of `partition` (another broker leads it now).
    pub fn unload_partition(&self, partition: i32) {
        if !self.partitions.remove(partition) {
            return;
        }
        let mut groups = self.lock();
        groups.retain(|name, _| self.partition_of(name) != partition);
        let mut open = self.pending_txn_offsets.lock().unwrap_or_else(|p| p.into_inner());
        for offsets in open.values_mut() {
            offsets.retain(|o| self.partition_of(&o.group) != partition);
        }
        open.retain(|_, offsets| !offsets.is_empty());
        tracing::info!(partition, "group coordinator unloaded a __consumer_offsets partition");
    }

    /// Builds a coordinator serving every partition of `logs` (a single node).
    pub fn load(settings: GroupSettings, logs: Vec<Arc<PartitionLog>>) -> Result<Self, PersistError> {
        let coordinator = Self::new(settings, logs.len() as i32);
        for (index, log) in logs.into_iter().enumerate() {
            coordinator.load_partition(index as i32, log)?;
        }
        Ok(coordinator)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log_for(&self, group: &str) -> Option<Arc<PartitionLog>> {
        let partition = self.partition_of(group);
        self.partitions.log(partition)
    }

    fn write(&self, group: &str, entries: &[Record]) -> Result<(), PersistError> {
        self.write_as(group, entries, None).map_err(|e| PersistError(e.to_string()))
    }

    fn write_as(
        &self,
        group: &str,
        entries: &[Record],
        txn: Option<TxnProducer>,
    ) -> Result<(), rivulet_storage::AppendError> {
        if entries.is_empty() {
            return Ok(());
        }
        let log = self.log_for(group).ok_or_else(|| {
            rivulet_storage::AppendError::Storage(rivulet_storage::StorageError::Corrupt {
                what: "__consumer_offsets",
                reason: "no partitions".into(),
            })
        })?;
        let batch = persist::encode_batch(entries, now_ms(), txn).map_err(|e| {
            rivulet_storage::AppendError::Batch(rivulet_protocol::record_batch::BatchError::Invalid(e.to_string()))
        })?;
        let options = AppendOptions {
            // The partition's current leader epoch.
            leader_epoch: -1,
            max_batch_bytes: usize::MAX,
            log_append_time_ms: None,
            origin: AppendOrigin::Coordinator,
        };
        log.append(&batch, &options)?;
        Ok(())
    }

    /// The `__consumer_offsets` partition that holds `group`.
    pub fn partition_of(&self, group: &str) -> i32 {
        persist::partition_for(group, self.partitions.count())
    }

    /// TxnOffsetCommit: offsets written as part of `producer`'s transaction, applied only
    /// when it commits. Member fields are checked when given (KIP-447).
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit_offsets(
        &self,
        group_id: &str,
        producer: TxnProducer,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: &[(String, i32, OffsetValue)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(error) = self.status(group_id) {
            return Err(error);
        }
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        if generation >= 0 || !member_id.is_empty() {
            match groups.get_mut(group_id) {
                Some(group) => Self::check_member(group, member_id, instance_id, generation)?,
                None => return Err(ResponseError::IllegalGeneration),
            }
        }
        let mut results = Vec::with_capacity(offsets.len());
        let mut entries = Vec::new();
        let mut accepted = Vec::new();
        for (topic, partition, value) in offsets {
            if value.metadata.len() > self.settings.offset_metadata_max_bytes {
                results.push(Some(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            results.push(None);
            let key = RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: *partition };
            entries.push((key, Some(RecordValue::Offset(value.clone()))));
            accepted.push(PendingOffset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: value.clone(),
            });
        }
        match self.write_as(group_id, &entries, Some(producer)) {
            Ok(()) => {}
            Err(rivulet_storage::AppendError::InvalidProducerEpoch { .. }) => {
                return Err(ResponseError::ProducerFenced)
            }
            Err(e) => {
                tracing::error!(group = %group_id, error = %e, "writing transactional offsets failed");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
        }
        groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id));
        drop(groups);
        self.pending_txn_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(producer.producer_id)
            .or_default()
            .extend(accepted);
        Ok(results)
    }

    /// Called once the marker ending `producer_id`'s transaction is in `__consumer_offsets`:
    /// a commit makes its offsets visible, an abort drops them.
    pub fn complete_txn(&self, producer_id: i64, commit: bool) {
        let mut groups = self.lock();
        let pending = self.pending_txn_offsets.lock().unwrap_or_else(|p| p.into_inner()).remove(&producer_id);
        if !commit {
            return;
        }
        for offset in pending.unwrap_or_default() {
            let group = groups.entry(offset.group.clone()).or_insert_with(|| Group::new(&offset.group));
            group.offsets.insert((offset.topic, offset.partition), offset.value);
        }
    }

    /// Whether a transaction not yet ended holds an offset for this partition of `group`
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then, KIP-447).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .any(|o| o.group == group && o.topic == topic && o.partition == partition)
    }

    fn persist_group(&self, group: &Group) {
        let value = Some(RecordValue::Group(group.to_value()));
        if let Err(e) = self.write(&group.id, &[(RecordKey::Group { group: group.id.clone() }, value)]) {
            tracing::error!(group = %group.id, error = %e, "persisting group metadata failed");
        }
    }

    /// JoinGroup.
    pub fn join(&self, request: JoinRequest) -> Pending<JoinResult> {
        if let Some(error) = self.status(&request.group_id) {
            return Pending::Ready(JoinResult { error: Some(error), ..Default::default() });
        }
        let member_id = request.member_id.clone();
        if request.group_id.is_empty() {
            return Pending::Ready(JoinResult::error(ResponseError::InvalidGroupId, &member_id));
        }
        if request.session_timeout_ms < self.settings.min_session_timeout_ms
            || request.session_timeout_ms > self.settings.max_session_timeout_ms
        {
            return Pending::Ready(JoinResult::error(ResponseError::InvalidSessionTimeout, &member_id));
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Pending::Ready(JoinResult::error(ResponseError::InconsistentGroupProtocol, &member_id));
        }
        let now = Instant::now();
        let mut groups = self.lock();
        if !member_id.is_empty() && !groups.contains_key(&request.group_id) {
            return Pending::Ready(JoinResult::error(ResponseError::UnknownMemberId, &member_id));
        }
        let group = groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(&request.group_id));
        if group.state == GroupState::Dead {
            return Pending::Ready(JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id));
        }
        if !group.supports(&request.protocol_type, &request.protocols) {
            return Pending::Ready(JoinResult::error(ResponseError::InconsistentGroupProtocol, &member_id));
        }

        // Static members (KIP-345): the instance id, not the member id, is the identity.
        if let Some(instance) = &request.group_instance_id {
            if let Some(known) = group.static_members.get(instance).cloned() {
                if !member_id.is_empty() && member_id != known {
                    return Pending::Ready(JoinResult::error(ResponseError::FencedInstanceId, &member_id));
                }
                if member_id.is_empty() {
                    return self.rejoin_static(group, known, request, now);
                }
            }
        }

        if member_id.is_empty() {
            let new_id = new_member_id(&request.client_id);
            if request.require_known_member_id && request.group_instance_id.is_none() {
                // KIP-394: hand out the id and let the client join again with it.
                group.pending.insert(new_id.clone(), now);
                return Pending::Ready(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
            }
            return self.add_member_and_wait(group, new_id, request, now);
        }
        if group.pending.remove(&member_id).is_some() {
            return self.add_member_and_wait(group, member_id, request, now);
        }
        let Some(member) = group.members.get_mut(&member_id) else {
            return Pending::Ready(JoinResult::error(ResponseError::UnknownMemberId, &member_id));
        };
        member.last_seen = now;
        let unchanged = member.protocols == request.protocols;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::CompletingRebalance if unchanged => Pending::Ready(group.join_result_for(&member_id)),
            GroupState::Stable if unchanged && !is_leader => Pending::Ready(group.join_result_for(&member_id)),
            _ => {
                let member = group.members.get_mut(&member_id);
                if let Some(member) = member {
                    member.protocols = request.protocols;
                    member.session_timeout = Duration::from_millis(request.session_timeout_ms as u64);
                    member.rebalance_timeout = Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64);
                }
                self.wait_for_join(group, &member_id, now)
            }
        }
    }

    fn rejoin_static(
        &self,
        group: &mut Group,
        old_id: String,
        request: JoinRequest,
        now: Instant,
    ) -> Pending<JoinResult> {
        let new_id = new_member_id(&request.client_id);
        let Some(mut member) = group.members.remove(&old_id) else {
            group.static_members.remove(request.group_instance_id.as_deref().unwrap_or_default());
            return self.add_member_and_wait(group, new_id, request, now);
        };
        // The old incarnation is fenced: any request it still has waiting fails.
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinResult::error(ResponseError::FencedInstanceId, &old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncResult::error(ResponseError::FencedInstanceId));
        }
        let unchanged = member.protocols == request.protocols;
        member.id = new_id.clone();
        member.last_seen = now;
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.protocols = request.protocols.clone();
        group.members.insert(new_id.clone(), member);
        if let Some(instance) = &request.group_instance_id {
            group.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = group.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        if group.state == GroupState::Stable && unchanged {
            // A restarted static member gets its assignment back without a rebalance; a
            // leader is told to skip assigning (KIP-814), and its SyncGroup in the stable
            // group returns the current assignment whatever it sends.
            self.persist_group(group);
            tracing::info!(group = %group.id, member = %new_id, "static member rejoined without a rebalance");
            let mut result = group.join_result_for(&new_id);
            result.skip_assignment = was_leader;
            return Pending::Ready(result);
        }
        self.wait_for_join(group, &new_id, now)
    }

    fn add_member_and_wait(
        &self,
        group: &mut Group,
        member_id: String,
        request: JoinRequest,
        now: Instant,
    ) -> Pending<JoinResult> {
        if group.members.is_empty() {
            group.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            group.static_members.insert(instance.clone(), member_id.clone());
        }
        group.members.insert(
            member_id.clone(),
            Member {
                id: member_id.clone(),
                instance_id: request.group_instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout: Duration::from_millis(request.session_timeout_ms as u64),
                rebalance_timeout: Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64),
                protocols: request.protocols,
                assignment: Bytes::new(),
                last_seen: now,
                joined_this_round: false,
                join_waiter: None,
                sync_waiter: None,
            },
        );
        self.wait_for_join(group, &member_id, now)
    }

    /// Registers the member as joined for this round (starting a rebalance if none is in
    /// progress) and returns the receiver its JoinGroup response will arrive on.
    fn wait_for_join(&self, group: &mut Group, member_id: &str, now: Instant) -> Pending<JoinResult> {
        if group.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(group, now);
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = group.members.get_mut(member_id) {
            member.joined_this_round = true;
            member.join_waiter = Some(tx);
        }
        self.maybe_complete_join(group, now);
        Pending::Wait(rx)
    }

    fn prepare_rebalance(&self, group: &mut Group, now: Instant) {
        if group.state == GroupState::CompletingRebalance {
            for member in group.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        if group.state == GroupState::Empty {
            group.initial_delay_until = Some(now + self.settings.initial_rebalance_delay);
        }
        for member in group.members.values_mut() {
            member.joined_this_round = false;
        }
        group.deadline = Some(now + group.max_rebalance_timeout());
        group.set_state(GroupState::PreparingRebalance);
        tracing::debug!(group = %group.id, generation = group.generation, "preparing rebalance");
    }

    fn maybe_complete_join(&self, group: &mut Group, now: Instant) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = group.members.values().all(|m| m.joined_this_round) && group.pending.is_empty();
        let delay_over = group.initial_delay_until.is_none_or(|t| now >= t);
        let timed_out = group.deadline.is_some_and(|d| now >= d);
        if !((all_joined && delay_over) || timed_out) {
            return;
        }
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = group.members.values().filter(|m| !m.joined_this_round).map(|m| m.id.clone()).collect();
        for id in gone {
            self.remove_member(group, &id);
        }
        group.pending.clear();
        group.initial_delay_until = None;
        group.generation += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.leader = None;
            group.deadline = None;
            group.set_state(GroupState::Empty);
            self.persist_group(group);
            return;
        }
        group.protocol_name = group.select_protocol();
        if group.leader.as_ref().is_none_or(|l| !group.members.contains_key(l)) {
            group.leader = group.members.keys().next().cloned();
        }
        group.deadline = Some(now + group.max_rebalance_timeout());
        group.set_state(GroupState::CompletingRebalance);
        tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(), protocol = ?group.protocol_name, "rebalance: join complete");
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let result = group.join_result_for(&id);
            if let Some(member) = group.members.get_mut(&id) {
                member.joined_this_round = false;
                member.assignment = Bytes::new();
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(result);
                }
            }
        }
    }

    fn remove_member(&self, group: &mut Group, member_id: &str) {
        if let Some(mut member) = group.members.remove(member_id) {
            if let Some(instance) = &member.instance_id {
                if group.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    group.static_members.remove(instance);
                }
            }
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinResult::error(ResponseError::UnknownMemberId, member_id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(SyncResult::error(ResponseError::UnknownMemberId));
            }
        }
        if group.leader.as_deref() == Some(member_id) {
            group.leader = None;
        }
    }

    /// After members left or expired: rebalance the rest, or become Empty.
    fn on_membership_shrunk(&self, group: &mut Group, now: Instant) {
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if group.members.is_empty() {
                    group.generation += 1;
                    group.protocol_name = None;
                    group.leader = None;
                    group.set_state(GroupState::Empty);
                    self.persist_group(group);
                } else {
                    self.prepare_rebalance(group, now);
                }
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(group, now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Checks the member against the group for SyncGroup / Heartbeat / OffsetCommit.
    fn check_member(
        group: &Group,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            if let Some(known) = group.static_members.get(instance) {
                if known != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if !group.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> Pending<SyncResult> {
        if let Some(error) = self.status(group_id) {
            return Pending::Ready(SyncResult { error: Some(error), ..Default::default() });
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Pending::Ready(SyncResult::error(ResponseError::UnknownMemberId));
        };
        if let Err(e) = Self::check_member(group, member_id, instance_id, generation) {
            return Pending::Ready(SyncResult::error(e));
        }
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|p| Some(p) != group.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != group.protocol_name.as_deref())
        {
            return Pending::Ready(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        let now = Instant::now();
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_seen = now;
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => Pending::Ready(SyncResult::error(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => Pending::Ready(SyncResult::error(ResponseError::RebalanceInProgress)),
            GroupState::Stable => Pending::Ready(self.sync_result(group, member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = group.members.get_mut(member_id) {
                    member.sync_waiter = Some(tx);
                }
                if group.leader.as_deref() == Some(member_id) {
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for member in group.members.values_mut() {
                        member.assignment = assignments.remove(&member.id).unwrap_or_default();
                    }
                    group.deadline = None;
                    group.set_state(GroupState::Stable);
                    self.persist_group(group);
                    tracing::info!(group = %group.id, generation = group.generation, "rebalance: group stable");
                    let ids: Vec<String> = group.members.keys().cloned().collect();
                    for id in ids {
                        let result = self.sync_result(group, &id);
                        if let Some(waiter) = group.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                            let _ = waiter.send(result);
                        }
                    }
                }
                Pending::Wait(rx)
            }
        }
    }

    fn sync_result(&self, group: &Group, member_id: &str) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            assignment: group.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        if let Some(error) = self.status(group_id) {
            return Some(error);
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return Some(ResponseError::UnknownMemberId) };
        if let Err(e) = Self::check_member(group, member_id, instance_id, generation) {
            // During a rebalance an old generation learns that it must rejoin.
            if e == ResponseError::IllegalGeneration && group.state == GroupState::PreparingRebalance {
                return Some(ResponseError::RebalanceInProgress);
            }
            return Some(e);
        }
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_seen = Instant::now();
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => None,
        }
    }

    /// LeaveGroup: one result per `(member_id, group_instance_id)`.
    pub fn leave(&self, group_id: &str, leaving: &[(String, Option<String>)]) -> Vec<Option<ResponseError>> {
        if let Some(error) = self.status(group_id) {
            return vec![Some(error); leaving.len().max(1)];
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return leaving.iter().map(|_| Some(ResponseError::UnknownMemberId)).collect();
        };
        let now = Instant::now();
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for (member_id, instance_id) in leaving {
            let target = match instance_id {
                Some(instance) => match group.static_members.get(instance) {
                    Some(known) if member_id.is_empty() || known == member_id => Some(known.clone()),
                    Some(_) => {
                        results.push(Some(ResponseError::FencedInstanceId));
                        continue;
                    }
                    None => None,
                },
                None => Some(member_id.clone()),
            };
            match target {
                Some(id) if group.members.contains_key(&id) => {
                    self.remove_member(group, &id);
                    removed = true;
                    results.push(None);
                }
                Some(id) if group.pending.remove(&id).is_some() => results.push(None),
                _ => results.push(Some(ResponseError::UnknownMemberId)),
            }
        }
        if removed {
            tracing::info!(group = %group.id, "member left the group");
            self.on_membership_shrunk(group, now);
        }
        results
    }

    /// Expires sessions, completes joins and syncs that timed out, expires old offsets.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut groups = self.lock();
        let mut dead = Vec::new();
        for group in groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                        && now.duration_since(m.last_seen) > m.session_timeout
                })
                .map(|m| m.id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(group = %group.id, member = %id, "member session expired");
                    self.remove_member(group, id);
                }
                self.on_membership_shrunk(group, now);
            }
            group.pending.retain(|_, issued| now.duration_since(*issued) < Duration::from_secs(300));
            match group.state {
                GroupState::PreparingRebalance => self.maybe_complete_join(group, now),
                GroupState::CompletingRebalance if group.deadline.is_some_and(|d| now >= d) => {
                    // The leader never sent its assignment: members that did not sync are
                    // dropped and the rest rebalance, as Kafka does.
                    let stale: Vec<String> =
                        group.members.values().filter(|m| m.sync_waiter.is_none()).map(|m| m.id.clone()).collect();
                    for id in stale {
                        self.remove_member(group, &id);
                    }
                    self.on_membership_shrunk(group, now);
                    if group.state == GroupState::CompletingRebalance {
                        self.prepare_rebalance(group, now);
                    }
                }
                GroupState::Empty => {
                    let retention = self.settings.offsets_retention.as_millis() as i64;
                    let now_ms = now_ms();
                    let expired: Vec<(String, i32)> = group
                        .offsets
                        .iter()
                        .filter(|(_, v)| v.commit_timestamp_ms.max(group.state_since_ms) + retention <= now_ms)
                        .map(|(k, _)| k.clone())
                        .collect();
                    if !expired.is_empty() {
                        let tombstones: Vec<_> = expired
                            .iter()
                            .map(|(topic, partition)| {
                                (
                                    RecordKey::Offset {
                                        group: group.id.clone(),
                                        topic: topic.clone(),
                                        partition: *partition,
                                    },
                                    None,
                                )
                            })
                            .collect();
                        if self.write(&group.id, &tombstones).is_ok() {
                            for key in &expired {
                                group.offsets.remove(key);
                            }
                            tracing::info!(group = %group.id, partitions = expired.len(), "expired committed offsets (offsets.retention.minutes)");
                        }
                    }
                    if group.offsets.is_empty() && group.members.is_empty() && group.pending.is_empty() {
                        dead.push(group.id.clone());
                    }
                }
                _ => {}
            }
        }
        for id in dead {
            groups.remove(&id);
        }
    }

    /// OffsetCommit for one group: `None` per partition on success.
    pub fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: &[(String, i32, OffsetValue)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(error) = self.status(group_id) {
            return Err(error);
        }
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        if !groups.contains_key(group_id) {
            if generation >= 0 {
                return Err(ResponseError::IllegalGeneration);
            }
            groups.insert(group_id.to_string(), Group::new(group_id));
        }
        let Some(group) = groups.get_mut(group_id) else { return Err(ResponseError::CoordinatorNotAvailable) };
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let simple = generation < 0 && member_id.is_empty();
        if simple {
            if group.state != GroupState::Empty {
                // Only a member can commit for a group with members.
                return Err(ResponseError::UnknownMemberId);
            }
        } else {
            if group.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            Self::check_member(group, member_id, instance_id, generation)?;
            if let Some(member) = group.members.get_mut(member_id) {
                member.last_seen = Instant::now();
            }
        }
        let mut results = Vec::with_capacity(offsets.len());
        let mut entries = Vec::new();
        for (topic, partition, value) in offsets {
            if value.metadata.len() > self.settings.offset_metadata_max_bytes {
                results.push(Some(ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            results.push(None);
            let key = RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: *partition };
            entries.push((key, Some(RecordValue::Offset(value.clone()))));
        }
        if self.write(group_id, &entries).is_err() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        for ((topic, partition, value), result) in offsets.iter().zip(&results) {
            if result.is_none() {
                group.offsets.insert((topic.clone(), *partition), value.clone());
            }
        }
        Ok(results)
    }

    /// OffsetFetch: committed offsets for `wanted` partitions, or all when `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let groups = self.lock();
        let group = groups.get(group_id);
        match wanted {
            Some(wanted) => wanted
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(move |p| {
                        let value = group.and_then(|g| g.offsets.get(&(topic.clone(), *p))).cloned();
                        (topic.clone(), *p, value)
                    })
                })
                .collect(),
            None => {
                let mut all: Vec<_> = group
                    .map(|g| g.offsets.iter().map(|((t, p), v)| (t.clone(), *p, Some(v.clone()))).collect())
                    .unwrap_or_default();
                all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                all
            }
        }
    }

    /// OffsetDelete. `subscribed` says whether a topic is used by the group's members.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
        subscribed: impl Fn(&str, &[Bytes]) -> bool,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(error) = self.status(group_id) {
            return Err(error);
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return Err(ResponseError::GroupIdNotFound) };
        let protocol = group.protocol_name.clone();
        let subscriptions: Vec<Bytes> = group.members.values().map(|m| m.metadata_for(protocol.as_deref())).collect();
        let mut results = Vec::with_capacity(partitions.len());
        let mut entries = Vec::new();
        for (topic, partition) in partitions {
            if !group.members.is_empty() && subscribed(topic, &subscriptions) {
                results.push(Some(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            results.push(None);
            entries.push((
                RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: *partition },
                None,
            ));
        }
        if self.write(group_id, &entries).is_err() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        for ((topic, partition), result) in partitions.iter().zip(&results) {
            if result.is_none() {
                group.offsets.remove(&(topic.clone(), *partition));
            }
        }
        Ok(results)
    }

    /// ListGroups: `(group_id, protocol_type, state)`.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups = self.lock();
        let mut out: Vec<_> =
            groups.values().map(|g| (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DescribeGroups for one group; `None` if unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let group = groups.get(group_id)?;
        let protocol = group.protocol_name.as_deref();
        let stable = group.state == GroupState::Stable;
        Some(GroupDescription {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable { protocol.unwrap_or_default().to_string() } else { String::new() },
            members: group
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    // Kafka fills metadata and assignment only for a stable group.
                    metadata: if stable { m.metadata_for(protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group.
    pub fn delete_group(&self, group_id: &str) -> Option<ResponseError> {
        if let Some(error) = self.status(group_id) {
            return Some(error);
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return Some(ResponseError::GroupIdNotFound) };
        if !group.members.is_empty() || group.state != GroupState::Empty {
            return Some(ResponseError::NonEmptyGroup);
        }
        let mut entries: Vec<Record> = group
            .offsets
            .keys()
            .map(|(topic, partition)| {
                (RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: *partition }, None)
            })
            .collect();
        entries.push((RecordKey::Group { group: group_id.to_string() }, None));
        if self.write(group_id, &entries).is_err() {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        group.set_state(GroupState::Dead);
        groups.remove(group_id);
        None
    }
}

/// Replays one `__consumer_offsets` record into the in-memory groups.
fn apply_record(groups: &mut HashMap<String, Group>, (key, value): Record, now: Instant) {
    match key {
        RecordKey::Offset { group, topic, partition } => {
            let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
            match value {
                Some(RecordValue::Offset(offset)) => {
                    entry.offsets.insert((topic, partition), offset);
                }
                // `decode_record` reads an offset key's value as an offset: no other pairs.
                _ => {
                    entry.offsets.remove(&(topic, partition));
                }
            }
        }
        RecordKey::Group { group } => {
            let Some(RecordValue::Group(value)) = value else {
                groups.remove(&group);
                return;
            };
            let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
            entry.generation = value.generation_id;
            entry.protocol_type = value.protocol_type;
            entry.protocol_name = value.protocol_name.clone();
            entry.leader = value.leader;
            entry.state_since_ms = value.state_timestamp_ms;
            entry.members.clear();
            entry.static_members.clear();
            for m in value.members {
                if let Some(instance) = &m.group_instance_id {
                    entry.static_members.insert(instance.clone(), m.member_id.clone());
                }
                let protocols =
                    value.protocol_name.clone().map(|p| vec![(p, Bytes::from(m.subscription))]).unwrap_or_default();
                entry.members.insert(
                    m.member_id.clone(),
                    Member {
                        id: m.member_id,
                        instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                        rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                        protocols,
                        assignment: Bytes::from(m.assignment),
                        // Members get a full session after the restart to reach us again.
                        last_seen: now,
                        joined_this_round: false,
                        join_waiter: None,
                        sync_waiter: None,
                    },
                );
            }
            entry.state = if entry.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_storage::{LogClass, LogId, Store, StoreOptions};

    fn coordinator(dir: &std::path::Path, retention: Duration) -> GroupCoordinator {
        let store = Store::open(&StoreOptions::new(dir)).unwrap();
        let logs = (0..3).map(|i| Arc::new(store.open_log(LogId(100 + i), LogClass::Internal).unwrap())).collect();
        let settings = GroupSettings {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 60_000,
            offsets_retention: retention,
            offset_metadata_max_bytes: 16,
        };
        GroupCoordinator::load(settings, logs).unwrap()
    }

    fn join_request(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 200,
            rebalance_timeout_ms: 1_000,
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from_static(b"meta"))).collect(),
            require_known_member_id: true,
        }
    }

    fn ready<T>(pending: Pending<T>) -> T {
        match pending {
            Pending::Ready(v) => v,
            Pending::Wait(mut rx) => rx.try_recv().expect("answered synchronously"),
        }
    }

    #[test]
    fn member_id_required_then_join_sync_commit_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), Duration::from_millis(50));
        let first = ready(c.join(join_request("", &["range"])));
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        let joined = ready(c.join(join_request(&first.member_id, &["range", "roundrobin"])));
        assert_eq!(joined.error, None);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, first.member_id);
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        assert_eq!(joined.members.len(), 1);
        let id = joined.member_id.clone();
        let synced = ready(c.sync("g", &id, None, 1, (None, None), vec![(id.clone(), Bytes::from_static(b"a"))]));
        assert_eq!(synced.assignment, Bytes::from_static(b"a"));
        assert_eq!(c.heartbeat("g", &id, None, 0), Some(ResponseError::IllegalGeneration));
        assert_eq!(c.heartbeat("g", &id, None, 1), None);

        let value = |o| OffsetValue { offset: o, leader_epoch: 0, metadata: "m".into(), commit_timestamp_ms: now_ms() };
        assert_eq!(c.commit_offsets("g", &id, None, 1, &[("t".into(), 0, value(5))]).unwrap(), vec![None]);
        assert_eq!(
            c.commit_offsets("g", &id, None, 0, &[("t".into(), 0, value(6))]),
            Err(ResponseError::IllegalGeneration)
        );
        let too_long = OffsetValue { metadata: "x".repeat(17), ..value(7) };
        assert_eq!(
            c.commit_offsets("g", &id, None, 1, &[("t".into(), 1, too_long)]).unwrap(),
            vec![Some(ResponseError::OffsetMetadataTooLarge)]
        );
        assert_eq!(c.fetch_offsets("g", None)[0].2.as_ref().map(|v| v.offset), Some(5));
        assert_eq!(c.delete_group("g"), Some(ResponseError::NonEmptyGroup));

        // The session (200 ms) expires; the group becomes Empty, then its offsets expire
        // after the retention (50 ms) and the group disappears.
        std::thread::sleep(Duration::from_millis(300));
        c.tick();
        assert_eq!(c.describe("g").map(|d| d.state), Some(GroupState::Empty));
        std::thread::sleep(Duration::from_millis(100));
        c.tick();
        assert!(c.describe("g").is_none());
        assert!(c.fetch_offsets("g", None).is_empty());
    }

    #[test]
    fn offsets_and_groups_are_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let c = coordinator(dir.path(), Duration::from_secs(3600));
            let joined = ready(c.join(JoinRequest { require_known_member_id: false, ..join_request("", &["range"]) }));
            let id = joined.member_id;
            ready(c.sync("g", &id, None, 1, (None, None), vec![(id.clone(), Bytes::from_static(b"assignment"))]));
            let value =
                OffsetValue { offset: 42, leader_epoch: 3, metadata: "meta".into(), commit_timestamp_ms: now_ms() };
            c.commit_offsets("g", &id, None, 1, &[("t".into(), 2, value)]).unwrap();
            // A simple (groupless) commit for another group.
            let simple =
                OffsetValue { offset: 9, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: now_ms() };
            c.commit_offsets("simple", "", None, -1, &[("t".into(), 0, simple)]).unwrap();
            id
        };
        let c = coordinator(dir.path(), Duration::from_secs(3600));
        let group = c.describe("g").unwrap();
        assert_eq!(group.state, GroupState::Stable);
        assert_eq!(group.members[0].member_id, id);
        assert_eq!(group.members[0].assignment, Bytes::from_static(b"assignment"));
        // The member carries on with its generation after the restart.
        assert_eq!(c.heartbeat("g", &id, None, 1), None);
        let offsets = c.fetch_offsets("g", Some(&[("t".to_string(), vec![2, 3])]));
        assert_eq!(
            offsets[0].2.as_ref().map(|v| (v.offset, v.leader_epoch, v.metadata.as_str())),
            Some((42, 3, "meta"))
        );
        assert!(offsets[1].2.is_none());
        assert_eq!(c.fetch_offsets("simple", None)[0].2.as_ref().map(|v| v.offset), Some(9));
    }

    #[test]
    fn inconsistent_protocols_and_unknown_members_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), Duration::from_secs(3600));
        let joined = ready(c.join(JoinRequest { require_known_member_id: false, ..join_request("", &["range"]) }));
        assert_eq!(joined.error, None);
        let other = ready(c.join(JoinRequest { require_known_member_id: false, ..join_request("", &["sticky"]) }));
        assert_eq!(other.error, Some(ResponseError::InconsistentGroupProtocol));
        let unknown = ready(c.join(join_request("nobody", &["range"])));
        assert_eq!(unknown.error, Some(ResponseError::UnknownMemberId));
        assert_eq!(c.leave("g", &[("nobody".into(), None)]), vec![Some(ResponseError::UnknownMemberId)]);
        assert_eq!(c.leave("g", &[(joined.member_id.clone(), None)]), vec![None]);
        assert_eq!(c.describe("g").map(|d| d.state), Some(GroupState::Empty));
    }
}
