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
//! are driven by [`GroupCoordinator::tick`], which the broker calls every 100 ms. Every
//! time is read from the coordinator's [`Clock`] and kept as milliseconds, as Kafka's
//! coordinators read `time.milliseconds()`, so tests move a `ManualClock` instead of
//! sleeping.
//!
//! KIP-848 consumer groups (ConsumerGroupHeartbeat, server-side assignment) live beside
//! classic ones in the same map: see [`consumer`] and [`assignor`].
//!
//! This file holds the types and the state machine of one group; the coordinator's work
//! is split by job: `membership` (join, sync, heartbeat, leave, rebalances), `offsets`
//! (commit, fetch, delete, transactional offsets), `load` (replaying and writing
//! `__consumer_offsets`), `timers` and `admin` (list, describe, delete).

mod admin;
pub mod assignor;
pub mod consumer;
mod load;
mod membership;
mod offsets;
pub mod persist;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rivulet_protocol::record_batch::ControlType;
use rivulet_protocol::ResponseError;
use rivulet_storage::{AppendError, PartitionLog};
use tokio::sync::oneshot;

use crate::clock::{Clock, SystemClock};
use crate::internal_topic::{InternalTopicError, TxnProducer};
use crate::runtime::{CoordinatorRuntime, Replay, RuntimeError};
use persist::{GroupValue, MemberValue, OffsetValue, Record, RecordError, RecordKey, RecordValue};

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
    /// The KIP-848 consumer group settings (`group.consumer.*`).
    pub consumer: consumer::ConsumerGroupSettings,
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
    session_timeout_ms: i64,
    rebalance_timeout_ms: i64,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// When the member was last heard from (clock milliseconds).
    last_seen_ms: i64,
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
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with when (ms).
    pending: HashMap<String, i64>,
    /// `group.instance.id` → member id (KIP-345).
    static_members: HashMap<String, String>,
    offsets: HashMap<(String, i32), OffsetValue>,
    /// PreparingRebalance: join completes by then at the latest.
    /// CompletingRebalance: the leader must sync by then.
    deadline_ms: Option<i64>,
    /// The delayed first join of an empty group (`group.initial.rebalance.delay.ms`).
    initial_delay_until_ms: Option<i64>,
    state_since_ms: i64,
    /// Set when this is a KIP-848 consumer group (its members use ConsumerGroupHeartbeat);
    /// the classic fields above then stay empty, and the committed offsets are shared.
    modern: Option<Box<consumer::ConsumerGroupState>>,
}

impl Group {
    fn new(id: &str, now_ms: i64) -> Self {
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
            deadline_ms: None,
            initial_delay_until_ms: None,
            state_since_ms: now_ms,
            modern: None,
        }
    }

    /// Whether the group has members, of either protocol.
    fn has_members(&self) -> bool {
        !self.members.is_empty() || self.modern.as_ref().is_some_and(|m| !m.members.is_empty())
    }

    /// The state name ListGroups shows: Kafka's classic or consumer group states.
    fn state_name(&self) -> &'static str {
        match &self.modern {
            Some(modern) => consumer::consumer_state_name(modern),
            None => self.state.name(),
        }
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
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

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(60_000)
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
                    session_timeout_ms: i32::try_from(m.session_timeout_ms).unwrap_or(i32::MAX),
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout_ms).unwrap_or(i32::MAX),
                    subscription: m.metadata_for(protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    settings: GroupSettings,
    /// The `__consumer_offsets` partitions served here (on a single node, all), and the
    /// path records take to and from them.
    runtime: CoordinatorRuntime,
    groups: Mutex<HashMap<String, Group>>,
    /// TxnOffsetCommit offsets by producer id, until their transaction ends (Kafka's
    /// `pendingTransactionalOffsetCommits`). Locked after `groups` when both are needed.
    pending_txn_offsets: Mutex<HashMap<i64, Vec<PendingOffset>>>,
    /// Session, rebalance and retention timers, and record timestamps.
    clock: Arc<dyn Clock>,
}

/// Why group state could not be loaded from or written to `__consumer_offsets`.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A record could not be encoded, or a stored one could not be read.
    #[error("invalid __consumer_offsets record: {0}")]
    Record(#[from] RecordError),
    /// Reading the partition while loading it failed.
    #[error("loading __consumer_offsets failed: {0}")]
    Load(#[from] InternalTopicError),
    /// The records could not be written: the partition is not served here (any more), or
    /// its log refused them.
    #[error(transparent)]
    Write(#[from] RuntimeError),
}

impl PersistError {
    /// The error a request whose write failed answers with: the one place the group
    /// coordinator maps its write failures to Kafka's codes. A fenced transactional
    /// producer (TxnOffsetCommit) gets PRODUCER_FENCED; anything else is
    /// COORDINATOR_NOT_AVAILABLE, which makes the client find the coordinator and retry.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            PersistError::Write(RuntimeError::Append { source: AppendError::InvalidProducerEpoch { .. }, .. }) => {
                ResponseError::ProducerFenced
            }
            PersistError::Record(_) | PersistError::Load(_) | PersistError::Write(_) => {
                ResponseError::CoordinatorNotAvailable
            }
        }
    }
}

impl GroupCoordinator {
    /// A coordinator that serves no partition yet; see [`Self::load_partition`].
    pub fn new(settings: GroupSettings, num_partitions: i32) -> Self {
        GroupCoordinator {
            settings,
            runtime: CoordinatorRuntime::new(persist::OFFSETS_TOPIC, num_partitions),
            groups: Mutex::new(HashMap::new()),
            pending_txn_offsets: Mutex::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same coordinator reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Says that partition `partition` is about to be loaded.
    pub fn mark_loading(&self, partition: i32) {
        self.runtime.mark_loading(partition);
    }

    /// `None` when `partition` is served here, else COORDINATOR_LOAD_IN_PROGRESS while it
    /// loads or NOT_COORDINATOR.
    pub fn partition_status(&self, partition: i32) -> Option<ResponseError> {
        self.runtime.status(partition)
    }

    /// Whether this coordinator serves `group`: `None` when it does, else the error Kafka
    /// gives (NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while its partition loads).
    pub fn status(&self, group: &str) -> Option<ResponseError> {
        self.runtime.status(self.partition_of(group))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `__consumer_offsets` partition that holds `group`.
    pub fn partition_of(&self, group: &str) -> i32 {
        persist::partition_for(group, self.runtime.count())
    }
}
