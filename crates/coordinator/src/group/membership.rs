//! Classic group membership and rebalances: JoinGroup (with the member-id-required first
//! join and static members, KIP-345), SyncGroup, Heartbeat and LeaveGroup.

use super::*;

impl GroupCoordinator {
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
        let now = self.now_ms();
        let mut groups = self.lock();
        if !member_id.is_empty() && !groups.contains_key(&request.group_id) {
            return Pending::Ready(JoinResult::error(ResponseError::UnknownMemberId, &member_id));
        }
        let group = groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(&request.group_id, now));
        if group.state == GroupState::Dead {
            return Pending::Ready(JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id));
        }
        if let Some(modern) = &group.modern {
            // A KIP-848 group takes classic members only through online migration, which is
            // not offered (as Kafka with `group.consumer.migration.policy=disabled`); an
            // empty one becomes a classic group, keeping its offsets.
            if !modern.members.is_empty() {
                return Pending::Ready(JoinResult::error(ResponseError::InconsistentGroupProtocol, &member_id));
            }
            let tombstones = [
                (RecordKey::ConsumerTargetEpoch { group: group.id.clone() }, None),
                (RecordKey::ConsumerGroup { group: group.id.clone() }, None),
            ];
            if let Err(e) = self.write(&group.id, &tombstones) {
                return Pending::Ready(JoinResult::error(e.kafka_error(), &member_id));
            }
            group.modern = None;
            group.protocol_type = None;
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
        member.last_seen_ms = now;
        let unchanged = member.protocols == request.protocols;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::CompletingRebalance if unchanged => Pending::Ready(group.join_result_for(&member_id)),
            GroupState::Stable if unchanged && !is_leader => Pending::Ready(group.join_result_for(&member_id)),
            _ => {
                let member = group.members.get_mut(&member_id);
                if let Some(member) = member {
                    member.protocols = request.protocols;
                    member.session_timeout_ms = i64::from(request.session_timeout_ms);
                    member.rebalance_timeout_ms = i64::from(request.rebalance_timeout_ms.max(0));
                }
                self.wait_for_join(group, &member_id, now)
            }
        }
    }

    pub(super) fn rejoin_static(
        &self,
        group: &mut Group,
        old_id: String,
        request: JoinRequest,
        now: i64,
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
        member.last_seen_ms = now;
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
            if let Err(error) = self.persist_group(group) {
                return Pending::Ready(JoinResult::error(error, &new_id));
            }
            tracing::info!(group = %group.id, member = %new_id, "static member rejoined without a rebalance");
            let mut result = group.join_result_for(&new_id);
            result.skip_assignment = was_leader;
            return Pending::Ready(result);
        }
        self.wait_for_join(group, &new_id, now)
    }

    pub(super) fn add_member_and_wait(
        &self,
        group: &mut Group,
        member_id: String,
        request: JoinRequest,
        now: i64,
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
                session_timeout_ms: i64::from(request.session_timeout_ms),
                rebalance_timeout_ms: i64::from(request.rebalance_timeout_ms.max(0)),
                protocols: request.protocols,
                assignment: Bytes::new(),
                last_seen_ms: now,
                joined_this_round: false,
                join_waiter: None,
                sync_waiter: None,
            },
        );
        self.wait_for_join(group, &member_id, now)
    }

    /// Registers the member as joined for this round (starting a rebalance if none is in
    /// progress) and returns the receiver its JoinGroup response will arrive on.
    pub(super) fn wait_for_join(&self, group: &mut Group, member_id: &str, now: i64) -> Pending<JoinResult> {
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

    pub(super) fn prepare_rebalance(&self, group: &mut Group, now: i64) {
        if group.state == GroupState::CompletingRebalance {
            for member in group.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        if group.state == GroupState::Empty {
            let delay_ms = i64::try_from(self.settings.initial_rebalance_delay.as_millis()).unwrap_or(i64::MAX);
            group.initial_delay_until_ms = Some(now.saturating_add(delay_ms));
        }
        for member in group.members.values_mut() {
            member.joined_this_round = false;
        }
        group.deadline_ms = Some(now.saturating_add(group.max_rebalance_timeout_ms()));
        group.set_state(GroupState::PreparingRebalance, now);
        tracing::debug!(group = %group.id, generation = group.generation, "preparing rebalance");
    }

    pub(super) fn maybe_complete_join(&self, group: &mut Group, now: i64) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = group.members.values().all(|m| m.joined_this_round) && group.pending.is_empty();
        let delay_over = group.initial_delay_until_ms.is_none_or(|t| now >= t);
        let timed_out = group.deadline_ms.is_some_and(|d| now >= d);
        if !((all_joined && delay_over) || timed_out) {
            return;
        }
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = group.members.values().filter(|m| !m.joined_this_round).map(|m| m.id.clone()).collect();
        for id in gone {
            self.remove_member(group, &id);
        }
        group.pending.clear();
        group.initial_delay_until_ms = None;
        group.generation += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.leader = None;
            group.deadline_ms = None;
            group.set_state(GroupState::Empty, now);
            // No member is left to answer; a failure is logged.
            let _ = self.persist_group(group);
            return;
        }
        group.protocol_name = group.select_protocol();
        if group.leader.as_ref().is_none_or(|l| !group.members.contains_key(l)) {
            group.leader = group.members.keys().next().cloned();
        }
        group.deadline_ms = Some(now.saturating_add(group.max_rebalance_timeout_ms()));
        group.set_state(GroupState::CompletingRebalance, now);
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

    pub(super) fn remove_member(&self, group: &mut Group, member_id: &str) {
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
    pub(super) fn on_membership_shrunk(&self, group: &mut Group, now: i64) {
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if group.members.is_empty() {
                    group.generation += 1;
                    group.protocol_name = None;
                    group.leader = None;
                    group.set_state(GroupState::Empty, now);
                    // The members are gone; a failure is logged.
                    let _ = self.persist_group(group);
                } else {
                    self.prepare_rebalance(group, now);
                }
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(group, now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Checks the member against the group for SyncGroup / Heartbeat / OffsetCommit.
    pub(super) fn check_member(
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
        let now = self.now_ms();
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_seen_ms = now;
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
                    group.deadline_ms = None;
                    group.set_state(GroupState::Stable, now);
                    if let Err(error) = self.persist_group(group) {
                        // As Kafka's coordinator when storing the assignment fails: every
                        // member gets the error and the group rebalances.
                        for member in group.members.values_mut() {
                            member.assignment = Bytes::new();
                            if let Some(waiter) = member.sync_waiter.take() {
                                let _ = waiter.send(SyncResult::error(error));
                            }
                        }
                        self.prepare_rebalance(group, now);
                        return Pending::Wait(rx);
                    }
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

    pub(super) fn sync_result(&self, group: &Group, member_id: &str) -> SyncResult {
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
            member.last_seen_ms = self.now_ms();
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
        let now = self.now_ms();
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
}
