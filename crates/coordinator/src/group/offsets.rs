//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, and the offsets of
//! transactions (TxnOffsetCommit), held pending until their COMMIT or ABORT marker.

use super::*;

impl GroupCoordinator {
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
        if let Some(check) =
            groups.get(group_id).and_then(|g| Self::check_consumer_commit(g, member_id, generation, true, i16::MAX))
        {
            check?;
        } else if generation >= 0 || !member_id.is_empty() {
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
        if let Err(e) = self.write_as(group_id, &entries, Some(producer)) {
            if e.kafka_error() != ResponseError::ProducerFenced {
                tracing::error!(group = %group_id, error = %e, "writing transactional offsets failed");
            }
            return Err(e.kafka_error());
        }
        let now = self.now_ms();
        groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, now));
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
        let now = self.now_ms();
        let mut groups = self.lock();
        let pending = self.pending_txn_offsets.lock().unwrap_or_else(|p| p.into_inner()).remove(&producer_id);
        if !commit {
            return;
        }
        for offset in pending.unwrap_or_default() {
            let group = groups.entry(offset.group.clone()).or_insert_with(|| Group::new(&offset.group, now));
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

    /// OffsetCommit (request `version`) for one group: `None` per partition on success.
    /// `generation` is the member epoch for a consumer group (v9+, KIP-848).
    pub fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        version: i16,
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
            groups.insert(group_id.to_string(), Group::new(group_id, self.now_ms()));
        }
        let Some(group) = groups.get_mut(group_id) else { return Err(ResponseError::CoordinatorNotAvailable) };
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let simple = generation < 0 && member_id.is_empty();
        if let Some(check) = Self::check_consumer_commit(group, member_id, generation, false, version) {
            check?;
        } else if simple {
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
                member.last_seen_ms = self.now_ms();
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
        if let Err(e) = self.write(group_id, &entries) {
            tracing::warn!(group = %group_id, error = %e, "writing offsets failed");
            return Err(e.kafka_error());
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
        // A KIP-848 member's subscription is by names or a regular expression.
        let modern_subscribed = |topic: &str| {
            group.modern.as_deref().is_some_and(|m| {
                m.members.values().any(|member| {
                    member.subscribed_topic_names.iter().any(|t| t == topic)
                        || member
                            .subscribed_topic_regex
                            .as_deref()
                            .and_then(|r| regex::Regex::new(&format!("^(?:{r})$")).ok())
                            .is_some_and(|r| r.is_match(topic))
                })
            })
        };
        for (topic, partition) in partitions {
            if (!group.members.is_empty() && subscribed(topic, &subscriptions)) || modern_subscribed(topic) {
                results.push(Some(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            results.push(None);
            entries.push((
                RecordKey::Offset { group: group_id.to_string(), topic: topic.clone(), partition: *partition },
                None,
            ));
        }
        if let Err(e) = self.write(group_id, &entries) {
            tracing::warn!(group = %group_id, error = %e, "writing offsets failed");
            return Err(e.kafka_error());
        }
        for ((topic, partition), result) in partitions.iter().zip(&results) {
            if result.is_none() {
                group.offsets.remove(&(topic.clone(), *partition));
            }
        }
        Ok(results)
    }
}
