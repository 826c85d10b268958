//! Loading a `__consumer_offsets` partition (replaying its records into groups), unloading
//! it, and writing records to it: every change a restart must see goes through [`GroupCoordinator::write`]
//! before it is applied, and [`apply_record`] is the one place a record changes a group on load.

use super::*;

impl GroupCoordinator {
    /// Replays one partition of `__consumer_offsets` into memory and starts serving its
    /// groups (this broker became its leader, or a single node starts).
    pub fn load_partition(&self, partition: i32, log: Arc<PartitionLog>) -> Result<(), PersistError> {
        let mut replay = GroupReplay { now_ms: self.now_ms(), ..GroupReplay::default() };
        self.runtime.load(partition, &log, &mut replay)?;
        let GroupReplay { mut groups, pending, failure, now_ms } = replay;
        if let Some(e) = failure {
            self.runtime.finish_loading(partition, None);
            return Err(PersistError::Record(e));
        }
        for group in groups.values_mut() {
            if let Some(modern) = group.modern.as_deref_mut() {
                modern.rebuild(now_ms);
            }
        }
        groups.retain(|_, g| {
            !(g.members.is_empty()
                && g.offsets.is_empty()
                && g.state == GroupState::Empty
                && g.generation == 0
                && g.modern.is_none())
        });
        let loaded = groups.len();
        {
            let mut all = self.lock();
            // Transactions still open: their offsets wait for the transaction coordinator.
            let mut open = self.pending_txn_offsets.lock().unwrap_or_else(|p| p.into_inner());
            for (producer_id, records) in pending {
                for (key, value) in records {
                    if let (RecordKey::Offset { group, topic, partition }, Some(RecordValue::Offset(value))) =
                        (key, value)
                    {
                        open.entry(producer_id).or_default().push(PendingOffset { group, topic, partition, value });
                    }
                }
            }
            all.extend(groups);
            self.runtime.finish_loading(partition, Some(log));
        }
        tracing::debug!(partition, groups = loaded, "group coordinator loaded a __consumer_offsets partition");
        Ok(())
    }

    /// Stops serving the groups of `partition` (another broker leads it now).
    pub fn unload_partition(&self, partition: i32) {
        if !self.runtime.remove(partition) {
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

    pub(super) fn write(&self, group: &str, entries: &[Record]) -> Result<(), PersistError> {
        self.write_as(group, entries, None)
    }

    /// Appends `entries` to `group`'s partition, as `txn`'s transactional batch if given.
    pub(super) fn write_as(
        &self,
        group: &str,
        entries: &[Record],
        txn: Option<TxnProducer>,
    ) -> Result<(), PersistError> {
        if entries.is_empty() {
            return Ok(());
        }
        let encoded = entries.iter().map(persist::encode_record).collect::<Result<Vec<_>, _>>()?;
        self.runtime.write(self.partition_of(group), &encoded, self.now_ms(), txn)?;
        Ok(())
    }

    /// Stores `group`'s metadata. On failure the error (logged here) is what the members
    /// waiting on the change are answered with, as a change is only answered once stored.
    pub(super) fn persist_group(&self, group: &Group) -> Result<(), ResponseError> {
        let value = Some(RecordValue::Group(group.to_value()));
        self.write(&group.id, &[(RecordKey::Group { group: group.id.clone() }, value)]).map_err(|e| {
            tracing::error!(group = %group.id, error = %e, "persisting group metadata failed");
            e.kafka_error()
        })
    }
}

/// `__consumer_offsets` as replayed while loading a partition.
#[derive(Default)]
struct GroupReplay {
    /// When the load happens: replayed members get a full session from then.
    now_ms: i64,
    groups: HashMap<String, Group>,
    /// Records of transactions (TxnOffsetCommit) with no marker yet, by producer id.
    pending: HashMap<i64, Vec<Record>>,
    failure: Option<RecordError>,
}

impl Replay for GroupReplay {
    fn records(&mut self, txn: Option<TxnProducer>, records: Vec<(Bytes, Option<Bytes>)>) {
        for (key, value) in records {
            match persist::decode_record(&key, value.as_deref()) {
                Ok(Some(record)) => match txn {
                    Some(txn) => self.pending.entry(txn.producer_id).or_default().push(record),
                    None => apply_record(&mut self.groups, record, self.now_ms),
                },
                Ok(None) => {}
                Err(e) => {
                    self.failure.get_or_insert(e);
                }
            }
        }
    }

    fn marker(&mut self, producer_id: i64, control: ControlType) {
        let records = self.pending.remove(&producer_id).unwrap_or_default();
        if control == ControlType::Commit {
            for record in records {
                apply_record(&mut self.groups, record, self.now_ms);
            }
        }
    }
}

/// Replays one `__consumer_offsets` record into the in-memory groups.
fn apply_record(groups: &mut HashMap<String, Group>, (key, value): Record, now_ms: i64) {
    match key {
        RecordKey::Offset { group, topic, partition } => {
            let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now_ms));
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
        RecordKey::ConsumerGroup { .. }
        | RecordKey::ConsumerMember { .. }
        | RecordKey::ConsumerTargetEpoch { .. }
        | RecordKey::ConsumerTarget { .. }
        | RecordKey::ConsumerAssignment { .. } => apply_consumer_record(groups, key, value, now_ms),
        RecordKey::Group { group } => {
            let Some(RecordValue::Group(value)) = value else {
                groups.remove(&group);
                return;
            };
            let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now_ms));
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
                        session_timeout_ms: i64::from(m.session_timeout_ms.max(0)),
                        rebalance_timeout_ms: i64::from(m.rebalance_timeout_ms.max(0)),
                        protocols,
                        assignment: Bytes::from(m.assignment),
                        // Members get a full session after the restart to reach us again.
                        last_seen_ms: now_ms,
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

/// Replays one KIP-848 record into its group's consumer-protocol state.
fn apply_consumer_record(groups: &mut HashMap<String, Group>, key: RecordKey, value: Option<RecordValue>, now_ms: i64) {
    let (RecordKey::ConsumerGroup { group }
    | RecordKey::ConsumerMember { group, .. }
    | RecordKey::ConsumerTargetEpoch { group }
    | RecordKey::ConsumerTarget { group, .. }
    | RecordKey::ConsumerAssignment { group, .. }) = &key
    else {
        return;
    };
    let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(group, now_ms));
    if matches!(key, RecordKey::ConsumerGroup { .. }) && value.is_none() {
        // The consumer group was deleted or became a classic group.
        entry.modern = None;
        return;
    }
    entry.protocol_type = Some("consumer".to_string());
    entry.modern.get_or_insert_with(Box::default).replay(&key, value, now_ms);
}
