//! Administration: ListGroups, DescribeGroups and DeleteGroups.

use super::*;

impl GroupCoordinator {
    /// ListGroups: `(group_id, protocol_type, state, group type)`, the type being Kafka's
    /// `classic` or `consumer` (KIP-848).
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let groups = self.lock();
        let mut out: Vec<_> = groups
            .values()
            .map(|g| {
                let kind = if g.modern.is_some() { "consumer" } else { "classic" };
                (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state_name(), kind)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DescribeGroups for one group; `None` if unknown or not a classic group (Kafka
    /// describes a consumer group there as Dead: ConsumerGroupDescribe is its API).
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let group = groups.get(group_id).filter(|g| g.modern.is_none())?;
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
        if group.has_members() || group.state != GroupState::Empty {
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
        if group.modern.is_some() {
            // An empty consumer group has no member records left: its epochs go too.
            entries.push((RecordKey::ConsumerTargetEpoch { group: group_id.to_string() }, None));
            entries.push((RecordKey::ConsumerGroup { group: group_id.to_string() }, None));
        }
        if let Err(e) = self.write(group_id, &entries) {
            tracing::warn!(group = %group_id, error = %e, "deleting the group failed");
            return Some(e.kafka_error());
        }
        group.set_state(GroupState::Dead, self.now_ms());
        groups.remove(group_id);
        None
    }
}
