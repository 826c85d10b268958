//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe, after Kafka's
//! `GroupMetadataManager.consumerGroupHeartbeat`, `ConsumerGroup` and
//! `CurrentAssignmentBuilder`.
//!
//! A heartbeat does three things, in order:
//! 1. creates or updates the member; a new member, a changed subscription or a change in
//!    the subscribed topics' partitions bumps the *group epoch*;
//! 2. when the group epoch is ahead of the *target assignment epoch*, the assignor computes
//!    a new target for every member and the target epoch catches up;
//! 3. the member is reconciled towards its target: partitions it must give up are
//!    revoked first (it stays in its epoch, state UNREVOKED_PARTITIONS, until a heartbeat
//!    lists its owned partitions without them); partitions still held by another member
//!    (their *partition epoch* is set) are withheld (UNRELEASED_PARTITIONS) until freed.
//!    So a partition never has two owners.
//!
//! Members that stop heartbeating for `group.consumer.session.timeout.ms`, or do not revoke
//! within their rebalance timeout, are fenced by [`GroupCoordinator::tick`].

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use rivulet_protocol::coordinator_records::{
    ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupMemberMetadataValue, TopicPartitionList,
};

use super::assignor::{self, Assignment, MemberSpec, TopicSpec};
use super::*;

/// The member epoch of a leave request.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The member epoch of a static member's temporary leave.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// A topic as the broker's metadata knows it, for subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: Uuid,
    pub partitions: i32,
}

/// KIP-848 settings, under their `server.properties` names.
#[derive(Debug, Clone)]
pub struct ConsumerGroupSettings {
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<String>,
    /// `group.consumer.max.size`
    pub max_size: usize,
}

impl Default for ConsumerGroupSettings {
    fn default() -> Self {
        ConsumerGroupSettings {
            heartbeat_interval_ms: 5_000,
            session_timeout_ms: 45_000,
            assignors: assignor::ASSIGNORS.iter().map(|s| s.to_string()).collect(),
            max_size: i32::MAX as usize,
        }
    }
}

/// A ConsumerGroupHeartbeat request, decoded.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when not sent.
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns; `None` when not sent.
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
}

/// What ConsumerGroupHeartbeat answers.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatOutcome {
    pub error: Option<(ResponseError, Option<String>)>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Assignment>,
}

impl HeartbeatOutcome {
    fn error(error: ResponseError, message: impl Into<String>) -> Self {
        HeartbeatOutcome { error: Some((error, Some(message.into()))), ..Default::default() }
    }
}

/// Kafka's `MemberState` of a consumer-protocol member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) rack_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) member_epoch: i32,
    pub(super) previous_member_epoch: i32,
    pub(super) state: MemberState,
    pub(super) subscribed_topic_names: Vec<String>,
    pub(super) subscribed_topic_regex: Option<String>,
    pub(super) server_assignor: Option<String>,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) assigned: Assignment,
    pub(super) pending_revocation: Assignment,
    pub(super) last_seen_ms: i64,
    /// Set while partitions wait to be revoked: the member is fenced past it.
    pub(super) revocation_deadline_ms: Option<i64>,
}

impl ConsumerMember {
    fn new(id: &str, now_ms: i64) -> Self {
        ConsumerMember {
            id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: -1,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            last_seen_ms: now_ms,
            revocation_deadline_ms: None,
        }
    }

    fn subscribes_to(&self, topic: &str, regex: Option<&regex::Regex>) -> bool {
        self.subscribed_topic_names.iter().any(|t| t == topic) || regex.is_some_and(|r| r.is_match(topic))
    }
}

/// The KIP-848 state of a consumer group (Kafka's `ConsumerGroup`).
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroupState {
    pub(super) group_epoch: i32,
    pub(super) assignment_epoch: i32,
    pub(super) members: BTreeMap<String, ConsumerMember>,
    /// `group.instance.id` → member id.
    pub(super) static_members: HashMap<String, String>,
    /// The target assignment of each member, as of `assignment_epoch`.
    pub(super) target: BTreeMap<String, Assignment>,
    /// Partitions owned (assigned or pending revocation) by a member: its epoch.
    pub(super) partition_epochs: HashMap<(Uuid, i32), i32>,
    /// Name → (id, partitions) of every subscribed topic that exists, as of the last group
    /// epoch bump: a difference means the topics changed and the group must rebalance.
    pub(super) subscription_metadata: BTreeMap<String, TopicMeta>,
}

/// Kafka's consumer group states, with the names ListGroups and ConsumerGroupDescribe use.
pub fn consumer_state_name(state: &ConsumerGroupState) -> &'static str {
    if state.members.is_empty() {
        "Empty"
    } else if state.group_epoch > state.assignment_epoch {
        "Assigning"
    } else if state.members.values().any(|m| m.state != MemberState::Stable || m.member_epoch != state.assignment_epoch)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

/// Kafka (and RE2) match a subscription regex against the whole topic name.
fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

fn is_subset(owned: Option<&[(Uuid, Vec<i32>)]>, target: &Assignment) -> bool {
    let Some(owned) = owned else { return false };
    owned.iter().all(|(t, ps)| ps.iter().all(|p| target.get(t).is_some_and(|s| s.contains(p))))
}

/// Whether the member (per its `owned` list; `None` means "assume so") still owns any of
/// `revoking`.
fn owns_any(owned: Option<&[(Uuid, Vec<i32>)]>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(t, ps)| revoking.get(t).is_some_and(|r| ps.iter().any(|p| r.contains(p))))
}

impl ConsumerGroupState {
    fn remove_partition_epochs(&mut self, member: &ConsumerMember) {
        for assignment in [&member.assigned, &member.pending_revocation] {
            for (t, ps) in assignment {
                for p in ps {
                    if self.partition_epochs.get(&(*t, *p)) == Some(&member.member_epoch) {
                        self.partition_epochs.remove(&(*t, *p));
                    }
                }
            }
        }
    }

    fn add_partition_epochs(&mut self, member: &ConsumerMember) {
        for assignment in [&member.assigned, &member.pending_revocation] {
            for (t, ps) in assignment {
                for p in ps {
                    self.partition_epochs.insert((*t, *p), member.member_epoch);
                }
            }
        }
    }

    /// Replaces a member's state, keeping partition epochs in step (Kafka's `updateMember`).
    fn update_member(&mut self, member: ConsumerMember) {
        if let Some(old) = self.members.get(&member.id).cloned() {
            self.remove_partition_epochs(&old);
        }
        self.add_partition_epochs(&member);
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member and its partitions; the group epoch is bumped so the others
    /// take them over.
    pub(super) fn fence(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            self.remove_partition_epochs(&member);
            if let Some(instance) = &member.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
    }

    /// The topics the members subscribe to that exist, by name.
    fn compute_subscription_metadata(&self, topics: &BTreeMap<String, TopicMeta>) -> BTreeMap<String, TopicMeta> {
        let regexes: Vec<Option<regex::Regex>> = self
            .members
            .values()
            .map(|m| m.subscribed_topic_regex.as_deref().and_then(|r| compile_regex(r).ok()))
            .collect();
        topics
            .iter()
            .filter(|(name, _)| self.members.values().zip(&regexes).any(|(m, r)| m.subscribes_to(name, r.as_ref())))
            .map(|(name, meta)| (name.clone(), meta.clone()))
            .collect()
    }

    fn compute_target(&mut self, default_assignor: &str) {
        let topics: Vec<TopicSpec> = self
            .subscription_metadata
            .iter()
            .map(|(name, meta)| TopicSpec { name: name.clone(), id: meta.id, partitions: meta.partitions })
            .collect();
        let specs: Vec<MemberSpec> = self
            .members
            .values()
            .map(|m| {
                let regex = m.subscribed_topic_regex.as_deref().and_then(|r| compile_regex(r).ok());
                MemberSpec {
                    member_id: m.id.clone(),
                    topics: topics.iter().filter(|t| m.subscribes_to(&t.name, regex.as_ref())).map(|t| t.id).collect(),
                    current: self.target.get(&m.id).cloned().unwrap_or_default(),
                }
            })
            .collect();
        let chosen = self.preferred_assignor(default_assignor).to_string();
        self.target = assignor::assign(&chosen, &specs, &topics);
        self.assignment_epoch = self.group_epoch;
    }

    /// Kafka uses the assignor most members name; members naming none count for the default.
    fn preferred_assignor<'a>(&'a self, default_assignor: &'a str) -> &'a str {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            *votes.entry(m.server_assignor.as_deref().unwrap_or(default_assignor)).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by_key(|(name, count)| (*count, *name == default_assignor))
            .map_or(default_assignor, |(n, _)| n)
    }

    /// Kafka's `CurrentAssignmentBuilder.build`: the member's next state towards its target.
    fn reconcile(&self, member: &ConsumerMember, owned: Option<&[(Uuid, Vec<i32>)]>) -> ConsumerMember {
        match member.state {
            MemberState::Stable if member.member_epoch == self.assignment_epoch => member.clone(),
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(member, member.member_epoch, owned)
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &member.pending_revocation) {
                    return member.clone();
                }
                self.next_assignment(member, member.member_epoch + 1, owned)
            }
        }
    }

    fn next_assignment(
        &self,
        member: &ConsumerMember,
        epoch_if_revoking: i32,
        owned: Option<&[(Uuid, Vec<i32>)]>,
    ) -> ConsumerMember {
        let empty = Assignment::new();
        let target = self.target.get(&member.id).unwrap_or(&empty);
        let mut assigned = Assignment::new();
        let mut revoking = Assignment::new();
        let mut to_assign = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target.keys().chain(member.assigned.keys()).copied().collect();
        for topic in topics {
            let wanted = target.get(&topic).cloned().unwrap_or_default();
            let current = member.assigned.get(&topic).cloned().unwrap_or_default();
            let keep: BTreeSet<i32> = current.intersection(&wanted).copied().collect();
            let revoke: BTreeSet<i32> = current.difference(&keep).copied().collect();
            let mut add: BTreeSet<i32> = wanted.difference(&keep).copied().collect();
            let before = add.len();
            // A partition another member still holds is withheld until it is released.
            add.retain(|p| !self.partition_epochs.contains_key(&(topic, *p)));
            unreleased |= add.len() != before;
            if !keep.is_empty() {
                assigned.insert(topic, keep);
            }
            if !revoke.is_empty() {
                revoking.insert(topic, revoke);
            }
            if !add.is_empty() {
                to_assign.insert(topic, add);
            }
        }
        let mut next = member.clone();
        if !revoking.is_empty() && owns_any(owned, &revoking) {
            next.state = MemberState::UnrevokedPartitions;
            next.update_epoch(epoch_if_revoking);
            next.assigned = assigned;
            next.pending_revocation = revoking;
            return next;
        }
        for (topic, partitions) in to_assign {
            assigned.entry(topic).or_default().extend(partitions);
        }
        next.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
        next.update_epoch(self.assignment_epoch);
        next.assigned = assigned;
        next.pending_revocation = Assignment::new();
        next
    }
}

impl ConsumerMember {
    fn update_epoch(&mut self, epoch: i32) {
        self.previous_member_epoch = self.member_epoch;
        self.member_epoch = epoch;
    }
}

/// A described consumer-protocol member (ConsumerGroupDescribe).
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

/// A described consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<ConsumerMemberDescription>,
}

impl GroupCoordinator {
    /// The heartbeat interval members are told to use.
    pub fn consumer_heartbeat_interval_ms(&self) -> i32 {
        self.settings.consumer.heartbeat_interval_ms
    }

    /// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
    fn validate_heartbeat(&self, r: &ConsumerHeartbeat) -> Result<(), HeartbeatOutcome> {
        let invalid = |m: &str| Err(HeartbeatOutcome::error(ResponseError::InvalidRequest, m));
        if r.group_id.is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if r.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if r.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        // KIP-1082: from v1 the client generates its member id, also when joining.
        if r.version >= 1 && r.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if r.member_epoch > 0 || r.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
            if r.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        } else if r.member_epoch == 0 {
            if r.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if r.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            let names = r.subscribed_topic_names.as_ref().is_some_and(|n| !n.is_empty());
            if !names && r.subscribed_topic_regex.as_deref().is_none_or(str::is_empty) {
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
            }
        } else if r.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            if r.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
            if r.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        } else {
            return invalid("MemberEpoch is invalid.");
        }
        if let Some(assignor) = &r.server_assignor {
            if !self.settings.consumer.assignors.iter().any(|a| a == assignor) {
                return Err(HeartbeatOutcome::error(
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {assignor} is not supported. Supported assignors: {}.",
                        self.settings.consumer.assignors.join(", ")
                    ),
                ));
            }
        }
        if let Some(regex) = r.subscribed_topic_regex.as_deref().filter(|r| !r.is_empty()) {
            if let Err(e) = compile_regex(regex) {
                return Err(HeartbeatOutcome::error(
                    ResponseError::InvalidRegularExpression,
                    format!("SubscribedTopicRegex `{regex}` is not a valid regular expression: {e}."),
                ));
            }
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat. `topics` is every topic the broker knows, by name.
    pub fn consumer_heartbeat(
        &self,
        request: ConsumerHeartbeat,
        topics: &BTreeMap<String, TopicMeta>,
    ) -> HeartbeatOutcome {
        if let Some(error) = self.status(&request.group_id) {
            return HeartbeatOutcome { error: Some((error, None)), ..Default::default() };
        }
        if let Err(outcome) = self.validate_heartbeat(&request) {
            return outcome;
        }
        let now = self.now_ms();
        let mut groups = self.lock();
        if request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH || request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return self.consumer_leave(&mut groups, &request);
        }
        let joining = request.member_epoch == 0;
        let group = match groups.get_mut(&request.group_id) {
            None if !joining => {
                return HeartbeatOutcome::error(
                    ResponseError::GroupIdNotFound,
                    format!("Consumer group {} not found.", request.group_id),
                )
            }
            None => groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(&request.group_id, now)),
            Some(group) => group,
        };
        if group.modern.is_none() {
            // A classic group becomes a consumer group only while it has no members (Kafka's
            // `maybeDeleteEmptyClassicGroup`; online migration of a live group is not offered).
            // A group known only by its committed offsets (as after a restart) counts as an
            // empty consumer group: a member still using an old epoch must rejoin.
            if !group.members.is_empty() || group.state != GroupState::Empty {
                return HeartbeatOutcome::error(
                    ResponseError::GroupIdNotFound,
                    format!("Group {} is not a consumer group.", request.group_id),
                );
            }
            group.modern = Some(Box::default());
            group.protocol_type = Some("consumer".to_string());
        }
        let Some(state) = group.modern.as_deref_mut() else {
            return HeartbeatOutcome::error(ResponseError::CoordinatorNotAvailable, "group state missing");
        };
        // Every change below is written to `__consumer_offsets` before it is answered; a
        // failed write leaves the group as it was.
        let before = state.clone();
        let member_id =
            if request.member_id.is_empty() { Uuid::new_v4().to_string() } else { request.member_id.clone() };
        if state.members.len() >= self.settings.consumer.max_size && !state.members.contains_key(&member_id) {
            return HeartbeatOutcome::error(
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    self.settings.consumer.max_size
                ),
            );
        }

        // 1. The member, created or looked up and checked.
        let owned = request.owned.as_deref();
        let member = match self.member_for(state, &request, &member_id, now) {
            Ok(member) => member,
            Err(outcome) => return outcome,
        };
        let previous = member.clone();
        let mut updated = member;
        if let Some(instance) = &request.instance_id {
            updated.instance_id = Some(instance.clone());
        }
        if let Some(rack) = &request.rack_id {
            updated.rack_id = Some(rack.clone());
        }
        if request.rebalance_timeout_ms >= 0 {
            updated.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if let Some(assignor) = &request.server_assignor {
            updated.server_assignor = Some(assignor.clone());
        }
        if let Some(names) = &request.subscribed_topic_names {
            updated.subscribed_topic_names = names.clone();
        }
        if let Some(regex) = &request.subscribed_topic_regex {
            updated.subscribed_topic_regex = Some(regex.clone()).filter(|r| !r.is_empty());
        }
        updated.client_id = request.client_id.clone();
        updated.client_host = request.client_host.clone();
        updated.last_seen_ms = now;
        let is_new = !state.members.contains_key(&member_id);
        let mut bump = is_new
            || previous.subscribed_topic_names != updated.subscribed_topic_names
            || previous.subscribed_topic_regex != updated.subscribed_topic_regex
            || previous.server_assignor != updated.server_assignor;
        state.update_member(updated);

        // The subscribed topics' metadata: a topic created, deleted or grown bumps the epoch.
        let metadata = state.compute_subscription_metadata(topics);
        if metadata != state.subscription_metadata {
            state.subscription_metadata = metadata;
            bump = true;
        }
        if bump {
            state.group_epoch += 1;
            tracing::info!(group = %request.group_id, epoch = state.group_epoch, "bumped consumer group epoch");
        }

        // 2. The target assignment.
        if state.group_epoch > state.assignment_epoch {
            let default = self.settings.consumer.assignors.first().map_or("uniform", String::as_str).to_string();
            state.compute_target(&default);
        }

        // 3. Reconciliation.
        let Some(current) = state.members.get(&member_id).cloned() else {
            return HeartbeatOutcome::error(ResponseError::UnknownMemberId, "member vanished");
        };
        let mut next = state.reconcile(&current, owned);
        next.revocation_deadline_ms = match next.state {
            MemberState::UnrevokedPartitions => current
                .revocation_deadline_ms
                .filter(|_| current.state == MemberState::UnrevokedPartitions)
                .or(Some(now + i64::from(next.rebalance_timeout_ms.max(0)))),
            _ => None,
        };
        let changed = next.assigned != previous.assigned || next.member_epoch != previous.member_epoch;
        let assignment = next.assigned.clone();
        let epoch = next.member_epoch;
        state.update_member(next);
        if let Err(error) = self.store_consumer_changes(&request.group_id, &before, state) {
            return HeartbeatOutcome { error: Some((error, None)), ..Default::default() };
        }
        let full = joining
            || (request.rebalance_timeout_ms != -1
                && request.subscribed_topic_names.is_some()
                && request.owned.is_some());
        HeartbeatOutcome {
            error: None,
            member_id,
            member_epoch: epoch,
            heartbeat_interval_ms: self.settings.consumer.heartbeat_interval_ms,
            assignment: (full || changed || is_new).then_some(assignment),
        }
    }

    /// The member a (non-leave) heartbeat is for: a new one when joining, else the known
    /// one, whose epoch is checked (Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`).
    fn member_for(
        &self,
        state: &mut ConsumerGroupState,
        request: &ConsumerHeartbeat,
        member_id: &str,
        now: i64,
    ) -> Result<ConsumerMember, HeartbeatOutcome> {
        let group_id = &request.group_id;
        let joining = request.member_epoch == 0;
        if let Some(instance) = &request.instance_id {
            let existing = state.static_members.get(instance).and_then(|id| state.members.get(id)).cloned();
            if joining {
                let Some(existing) = existing else {
                    return Ok(state
                        .members
                        .get(member_id)
                        .cloned()
                        .unwrap_or_else(|| ConsumerMember::new(member_id, now)));
                };
                if existing.id == member_id {
                    return Ok(existing);
                }
                // KIP-345 under KIP-848: an instance id is taken over only once its previous
                // member left with epoch -2.
                if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    return Err(HeartbeatOutcome::error(
                        ResponseError::UnreleasedInstanceId,
                        format!(
                            "Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {} member.",
                            existing.id
                        ),
                    ));
                }
                // The new incarnation inherits the assignment under its new member id.
                let mut replacement = existing.clone();
                replacement.id = member_id.to_string();
                replacement.member_epoch = 0;
                replacement.previous_member_epoch = 0;
                state.remove_partition_epochs(&existing);
                state.members.remove(&existing.id);
                if let Some(target) = state.target.remove(&existing.id) {
                    state.target.insert(member_id.to_string(), target);
                }
                state.update_member(replacement.clone());
                tracing::info!(group = %group_id, member = %member_id, instance = %instance, "static member rejoined");
                return Ok(replacement);
            }
            let Some(existing) = existing else {
                return Err(HeartbeatOutcome::error(
                    ResponseError::UnknownMemberId,
                    format!("Instance id {instance} is unknown."),
                ));
            };
            if existing.id != member_id {
                return Err(HeartbeatOutcome::error(
                    ResponseError::FencedInstanceId,
                    format!("Static member {member_id} with instance id {instance} is not the member {}.", existing.id),
                ));
            }
            Self::check_epoch(&existing, request)?;
            return Ok(existing);
        }
        match state.members.get(member_id) {
            Some(member) if !joining => {
                Self::check_epoch(member, request)?;
                Ok(member.clone())
            }
            // A rejoin with epoch 0 (after being fenced, or with a v1 id it keeps) starts afresh
            // but keeps what it holds until reconciled.
            Some(member) => Ok(member.clone()),
            None if joining => {
                tracing::info!(group = %group_id, member = %member_id, "member joins the consumer group");
                Ok(ConsumerMember::new(member_id, now))
            }
            None => Err(HeartbeatOutcome::error(
                ResponseError::UnknownMemberId,
                format!("Member {member_id} is not a member of group {group_id}."),
            )),
        }
    }

    fn check_epoch(member: &ConsumerMember, request: &ConsumerHeartbeat) -> Result<(), HeartbeatOutcome> {
        let received = request.member_epoch;
        if received > member.member_epoch {
            return Err(HeartbeatOutcome::error(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    member.member_epoch
                ),
            ));
        }
        // The response carrying the bumped epoch may have been lost: the previous epoch is
        // accepted while the member owns no more than it is assigned.
        if received < member.member_epoch
            && (received != member.previous_member_epoch || !is_subset(request.owned.as_deref(), &member.assigned))
        {
            return Err(HeartbeatOutcome::error(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    member.member_epoch
                ),
            ));
        }
        Ok(())
    }

    /// A heartbeat with epoch -1 (leave) or -2 (a static member's temporary leave).
    fn consumer_leave(&self, groups: &mut HashMap<String, Group>, request: &ConsumerHeartbeat) -> HeartbeatOutcome {
        let group_id = &request.group_id;
        let not_found =
            || HeartbeatOutcome::error(ResponseError::GroupIdNotFound, format!("Consumer group {group_id} not found."));
        let Some(group) = groups.get_mut(group_id) else { return not_found() };
        let Some(state) = group.modern.as_deref_mut() else {
            return HeartbeatOutcome::error(
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            );
        };
        let member_id = match &request.instance_id {
            None => {
                if !state.members.contains_key(&request.member_id) {
                    return HeartbeatOutcome::error(
                        ResponseError::UnknownMemberId,
                        format!("Member {} is not a member of group {group_id}.", request.member_id),
                    );
                }
                request.member_id.clone()
            }
            Some(instance) => {
                let Some(id) = state.static_members.get(instance).cloned() else {
                    return HeartbeatOutcome::error(
                        ResponseError::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    );
                };
                if id != request.member_id {
                    return HeartbeatOutcome::error(
                        ResponseError::FencedInstanceId,
                        format!(
                            "Static member {} with instance id {instance} is not the member {id}.",
                            request.member_id
                        ),
                    );
                }
                if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    // Kept (with its assignment) for its session, to come back as itself.
                    let before = state.clone();
                    if let Some(member) = state.members.get(&id).cloned() {
                        let mut leaving = member;
                        leaving.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                        leaving.pending_revocation = Assignment::new();
                        leaving.revocation_deadline_ms = None;
                        state.update_member(leaving);
                    }
                    if let Err(error) = self.store_consumer_changes(group_id, &before, state) {
                        return HeartbeatOutcome { error: Some((error, None)), ..Default::default() };
                    }
                    tracing::info!(group = %group_id, member = %id, "static member temporarily left the consumer group");
                    return HeartbeatOutcome {
                        member_id: id,
                        member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                        ..Default::default()
                    };
                }
                id
            }
        };
        tracing::info!(group = %group_id, member = %member_id, "member left the consumer group");
        let before = state.clone();
        state.fence(&member_id);
        if let Err(error) = self.store_consumer_changes(group_id, &before, state) {
            return HeartbeatOutcome { error: Some((error, None)), ..Default::default() };
        }
        HeartbeatOutcome { member_id, member_epoch: request.member_epoch, ..Default::default() }
    }

    /// Fences consumer-protocol members whose session expired or who did not revoke in time.
    pub(super) fn expire_consumer_members(&self, group: &mut Group, now: i64) {
        let session_ms = i64::from(self.settings.consumer.session_timeout_ms);
        let Some(state) = group.modern.as_deref_mut() else { return };
        let expired: Vec<(String, &'static str)> = state
            .members
            .values()
            .filter_map(|m| {
                if now.saturating_sub(m.last_seen_ms) > session_ms {
                    Some((m.id.clone(), "session expired"))
                } else if m.revocation_deadline_ms.is_some_and(|d| now > d) {
                    Some((m.id.clone(), "did not revoke its partitions within the rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        if expired.is_empty() {
            return;
        }
        let before = state.clone();
        for (id, why) in expired {
            tracing::info!(group = %group.id, member = %id, reason = why, "fencing consumer group member");
            state.fence(&id);
        }
        // On a failed write the members stay until the next tick tries again.
        let _ = self.store_consumer_changes(&group.id, &before, state);
    }

    /// Writes the records turning `before` into `state`; on failure puts `before` back and
    /// returns the error the request gets.
    fn store_consumer_changes(
        &self,
        group_id: &str,
        before: &ConsumerGroupState,
        state: &mut ConsumerGroupState,
    ) -> Result<(), ResponseError> {
        let records = records_between(group_id, before, state);
        if let Err(e) = self.write(group_id, &records) {
            tracing::error!(group = %group_id, error = %e, "persisting consumer group state failed");
            *state = before.clone();
            return Err(e.kafka_error());
        }
        Ok(())
    }

    /// ConsumerGroupDescribe for one group: `Err` is GROUP_ID_NOT_FOUND with Kafka's message.
    pub fn describe_consumer_group(&self, group_id: &str) -> Result<ConsumerGroupDescription, String> {
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else { return Err(format!("Group {group_id} not found.")) };
        let Some(state) = group.modern.as_deref() else {
            return Err(format!("Group {group_id} is not a consumer group."));
        };
        let default = self.settings.consumer.assignors.first().map_or("uniform", String::as_str);
        Ok(ConsumerGroupDescription {
            state: consumer_state_name(state),
            group_epoch: state.group_epoch,
            assignment_epoch: state.assignment_epoch,
            assignor_name: state.preferred_assignor(default).to_string(),
            members: state
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: state.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Kafka's `ConsumerGroup.validateOffsetCommit` for a consumer group; `None` when the
    /// group is not one (the classic checks apply).
    pub(super) fn check_consumer_commit(
        group: &Group,
        member_id: &str,
        member_epoch: i32,
        transactional: bool,
        version: i16,
    ) -> Option<Result<(), ResponseError>> {
        let state = group.modern.as_deref()?;
        if member_epoch < 0 && state.members.is_empty() {
            return Some(Ok(()));
        }
        if transactional && member_epoch < 0 && member_id.is_empty() {
            return Some(Ok(()));
        }
        let Some(member) = state.members.get(member_id) else { return Some(Err(ResponseError::UnknownMemberId)) };
        if !transactional && version < 9 {
            // "OffsetCommit version 9 or above must be used by members using the modern group protocol"
            return Some(Err(ResponseError::UnsupportedVersion));
        }
        if member_epoch != member.member_epoch {
            return Some(Err(ResponseError::StaleMemberEpoch));
        }
        Some(Ok(()))
    }

    /// Kafka's `validateOffsetFetch` (OffsetFetch v9 carries the member id and epoch):
    /// `None` when the fetch may proceed.
    pub fn check_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<ResponseError> {
        let groups = self.lock();
        let state = groups.get(group_id)?.modern.as_deref()?;
        let member_id = member_id?;
        if member_epoch < 0 && member_id.is_empty() {
            return None;
        }
        let Some(member) = state.members.get(member_id) else { return Some(ResponseError::UnknownMemberId) };
        (member.member_epoch != member_epoch).then_some(ResponseError::StaleMemberEpoch)
    }
}

// ---------------------------------------------------------------------------------------
// Persistence: KIP-848 state as Kafka's ConsumerGroup* records in `__consumer_offsets`.

fn to_list(assignment: &Assignment) -> TopicPartitionList {
    assignment.iter().map(|(t, ps)| (*t, ps.iter().copied().collect())).collect()
}

fn from_list(list: TopicPartitionList) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in list {
        if !partitions.is_empty() {
            out.entry(topic).or_default().extend(partitions);
        }
    }
    out
}

fn state_code(state: MemberState) -> i8 {
    // Kafka's `MemberState` codes.
    match state {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn member_value(m: &ConsumerMember) -> ConsumerGroupMemberMetadataValue {
    ConsumerGroupMemberMetadataValue {
        instance_id: m.instance_id.clone(),
        rack_id: m.rack_id.clone(),
        client_id: m.client_id.clone(),
        client_host: m.client_host.clone(),
        subscribed_topic_names: m.subscribed_topic_names.clone(),
        subscribed_topic_regex: m.subscribed_topic_regex.clone(),
        rebalance_timeout_ms: m.rebalance_timeout_ms,
        server_assignor: m.server_assignor.clone(),
    }
}

fn assignment_value(m: &ConsumerMember) -> ConsumerGroupCurrentMemberAssignmentValue {
    ConsumerGroupCurrentMemberAssignmentValue {
        member_epoch: m.member_epoch,
        previous_member_epoch: m.previous_member_epoch,
        state: state_code(m.state),
        assigned_partitions: to_list(&m.assigned),
        partitions_pending_revocation: to_list(&m.pending_revocation),
    }
}

/// The records that turn `old` into `new` (Kafka writes the same deltas): what a restart
/// replays to rebuild the group. Session times are not state Kafka persists either.
pub(super) fn records_between(group: &str, old: &ConsumerGroupState, new: &ConsumerGroupState) -> Vec<Record> {
    let g = || group.to_string();
    let mut out: Vec<Record> = Vec::new();
    for (id, m) in &new.members {
        let before = old.members.get(id);
        if before.is_none_or(|b| member_value(b) != member_value(m)) {
            out.push((
                RecordKey::ConsumerMember { group: g(), member: id.clone() },
                Some(RecordValue::ConsumerMember(member_value(m))),
            ));
        }
    }
    if new.group_epoch != old.group_epoch {
        out.push((RecordKey::ConsumerGroup { group: g() }, Some(RecordValue::Epoch(new.group_epoch))));
    }
    for (id, target) in &new.target {
        if old.target.get(id) != Some(target) {
            out.push((
                RecordKey::ConsumerTarget { group: g(), member: id.clone() },
                Some(RecordValue::ConsumerTarget(to_list(target))),
            ));
        }
    }
    if new.assignment_epoch != old.assignment_epoch {
        out.push((RecordKey::ConsumerTargetEpoch { group: g() }, Some(RecordValue::Epoch(new.assignment_epoch))));
    }
    for (id, m) in &new.members {
        let before = old.members.get(id);
        if before.is_none_or(|b| assignment_value(b) != assignment_value(m)) {
            out.push((
                RecordKey::ConsumerAssignment { group: g(), member: id.clone() },
                Some(RecordValue::ConsumerAssignment(assignment_value(m))),
            ));
        }
    }
    // Departed members: their current assignment, target and metadata go, in Kafka's order.
    for id in old.members.keys().filter(|id| !new.members.contains_key(*id)) {
        out.push((RecordKey::ConsumerAssignment { group: g(), member: id.clone() }, None));
    }
    for id in old.target.keys().filter(|id| !new.target.contains_key(*id)) {
        out.push((RecordKey::ConsumerTarget { group: g(), member: id.clone() }, None));
    }
    for id in old.members.keys().filter(|id| !new.members.contains_key(*id)) {
        out.push((RecordKey::ConsumerMember { group: g(), member: id.clone() }, None));
    }
    out
}

impl ConsumerGroupState {
    /// Applies one replayed KIP-848 record (see `load::apply_record`).
    pub(super) fn replay(&mut self, key: &RecordKey, value: Option<RecordValue>, now_ms: i64) {
        match (key, value) {
            (RecordKey::ConsumerGroup { .. }, Some(RecordValue::Epoch(e))) => self.group_epoch = e,
            (RecordKey::ConsumerTargetEpoch { .. }, Some(RecordValue::Epoch(e))) => self.assignment_epoch = e,
            (RecordKey::ConsumerMember { member, .. }, Some(RecordValue::ConsumerMember(v))) => {
                let m = self.members.entry(member.clone()).or_insert_with(|| ConsumerMember::new(member, now_ms));
                m.instance_id = v.instance_id;
                m.rack_id = v.rack_id;
                m.client_id = v.client_id;
                m.client_host = v.client_host;
                m.subscribed_topic_names = v.subscribed_topic_names;
                m.subscribed_topic_regex = v.subscribed_topic_regex;
                m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                m.server_assignor = v.server_assignor;
            }
            (RecordKey::ConsumerMember { member, .. }, None) => {
                self.members.remove(member);
            }
            (RecordKey::ConsumerTarget { member, .. }, Some(RecordValue::ConsumerTarget(list))) => {
                self.target.insert(member.clone(), from_list(list));
            }
            (RecordKey::ConsumerTarget { member, .. }, None) => {
                self.target.remove(member);
            }
            (RecordKey::ConsumerAssignment { member, .. }, Some(RecordValue::ConsumerAssignment(v))) => {
                let m = self.members.entry(member.clone()).or_insert_with(|| ConsumerMember::new(member, now_ms));
                m.member_epoch = v.member_epoch;
                m.previous_member_epoch = v.previous_member_epoch;
                m.state = match v.state {
                    1 => MemberState::UnrevokedPartitions,
                    2 => MemberState::UnreleasedPartitions,
                    _ => MemberState::Stable,
                };
                m.assigned = from_list(v.assigned_partitions);
                m.pending_revocation = from_list(v.partitions_pending_revocation);
            }
            _ => {}
        }
    }

    /// After a replay: the indexes derived from the members (partition epochs, instance
    /// ids), and a full session and rebalance timeout from now for every member.
    pub(super) fn rebuild(&mut self, now_ms: i64) {
        self.partition_epochs.clear();
        self.static_members.clear();
        let members: Vec<ConsumerMember> = self.members.values().cloned().collect();
        for mut m in members {
            m.last_seen_ms = now_ms;
            m.revocation_deadline_ms = (m.state == MemberState::UnrevokedPartitions)
                .then(|| now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
            self.update_member(m);
        }
    }
}
