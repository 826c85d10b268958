//! How the group coordinator's state is written to `__consumer_offsets`.
//!
//! As in Kafka, group metadata and committed offsets are records of an internal topic whose
//! partition is chosen by the group id's hash, so that replication and failover treat them
//! like any partition. Records are Kafka's own (`OffsetCommitKey`/`OffsetCommitValue`,
//! `GroupMetadataKey`/`GroupMetadataValue`, see `rivulet_protocol::coordinator_records`),
//! so Kafka's `OffsetsMessageFormatter` reads the topic; a record with a null value is a
//! tombstone. The coordinator replays every partition on start and the last record per key
//! wins, as after log compaction.
//!
//! Earlier versions of Rivulet wrote JSON keys and values. Those are still read (a JSON
//! record starts with `{`, a Kafka record with its `int16` version, whose first byte is 0),
//! so data directories written by them keep their groups and offsets; new records are
//! always Kafka's.

use bytes::Bytes;
use rivulet_protocol::coordinator_records::{
    self as records, ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupMemberMetadataValue, GroupKey,
    GroupMetadataValue, MemberMetadata, OffsetCommitValue, RecordFormatError, TopicPartitionList,
};
use serde::{Deserialize, Serialize};

use crate::internal_topic::{self, TxnProducer};

/// The internal topic's name.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// What a record's key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordKey {
    /// The committed offset of one partition for one group.
    Offset { group: String, topic: String, partition: i32 },
    /// A group's membership after its last completed rebalance.
    Group { group: String },
    /// KIP-848: a consumer group's epoch (`ConsumerGroupMetadataKey`).
    ConsumerGroup { group: String },
    /// KIP-848: a member's subscription (`ConsumerGroupMemberMetadataKey`).
    ConsumerMember { group: String, member: String },
    /// KIP-848: the target assignment epoch (`ConsumerGroupTargetAssignmentMetadataKey`).
    ConsumerTargetEpoch { group: String },
    /// KIP-848: a member's target assignment (`ConsumerGroupTargetAssignmentMemberKey`).
    ConsumerTarget { group: String, member: String },
    /// KIP-848: a member's epochs and assignment (`ConsumerGroupCurrentMemberAssignmentKey`).
    ConsumerAssignment { group: String, member: String },
}

/// A committed offset (Kafka's `OffsetAndMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member as persisted with its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the chosen protocol (the subscription, for consumers).
    #[serde(with = "base64_bytes")]
    pub subscription: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub assignment: Vec<u8>,
}

/// A group as persisted after a completed rebalance (Kafka's `GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupValue {
    pub protocol_type: Option<String>,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// Bytes as a hex string inside JSON (no extra dependency; values are small).
mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let hex = String::deserialize(d)?;
        if hex.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

pub use crate::internal_topic::partition_for;

/// A record's value, of the type its key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    Offset(OffsetValue),
    Group(GroupValue),
    /// The group epoch or the target assignment epoch (KIP-848).
    Epoch(i32),
    ConsumerMember(ConsumerGroupMemberMetadataValue),
    ConsumerTarget(TopicPartitionList),
    ConsumerAssignment(ConsumerGroupCurrentMemberAssignmentValue),
}

/// One `__consumer_offsets` record; a `None` value is a tombstone.
pub type Record = (RecordKey, Option<RecordValue>);

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Kafka(#[from] RecordFormatError),
    #[error("record written by an earlier version is not valid JSON: {0}")]
    Legacy(#[from] serde_json::Error),
    #[error("a {key} key with a {value} value")]
    Mismatch { key: &'static str, value: &'static str },
    #[error("encoding the batch failed: {0}")]
    Batch(#[from] internal_topic::InternalTopicError),
}

impl RecordKey {
    fn to_kafka(&self) -> GroupKey {
        match self {
            RecordKey::Offset { group, topic, partition } => {
                GroupKey::OffsetCommit { group: group.clone(), topic: topic.clone(), partition: *partition }
            }
            RecordKey::Group { group } => GroupKey::GroupMetadata { group: group.clone() },
            RecordKey::ConsumerGroup { group } => GroupKey::ConsumerGroupMetadata { group: group.clone() },
            RecordKey::ConsumerMember { group, member } => {
                GroupKey::ConsumerGroupMemberMetadata { group: group.clone(), member: member.clone() }
            }
            RecordKey::ConsumerTargetEpoch { group } => {
                GroupKey::ConsumerGroupTargetAssignmentMetadata { group: group.clone() }
            }
            RecordKey::ConsumerTarget { group, member } => {
                GroupKey::ConsumerGroupTargetAssignmentMember { group: group.clone(), member: member.clone() }
            }
            RecordKey::ConsumerAssignment { group, member } => {
                GroupKey::ConsumerGroupCurrentMemberAssignment { group: group.clone(), member: member.clone() }
            }
        }
    }
}

impl From<&OffsetValue> for OffsetCommitValue {
    fn from(v: &OffsetValue) -> Self {
        OffsetCommitValue {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata.clone(),
            commit_timestamp_ms: v.commit_timestamp_ms,
            expire_timestamp_ms: -1,
        }
    }
}

impl From<OffsetCommitValue> for OffsetValue {
    fn from(v: OffsetCommitValue) -> Self {
        OffsetValue {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp_ms: v.commit_timestamp_ms,
        }
    }
}

impl From<&GroupValue> for GroupMetadataValue {
    fn from(v: &GroupValue) -> Self {
        GroupMetadataValue {
            protocol_type: v.protocol_type.clone().unwrap_or_default(),
            generation: v.generation_id,
            protocol: v.protocol_name.clone(),
            leader: v.leader.clone(),
            current_state_timestamp_ms: v.state_timestamp_ms,
            members: v
                .members
                .iter()
                .map(|m| MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: Bytes::copy_from_slice(&m.subscription),
                    assignment: Bytes::copy_from_slice(&m.assignment),
                })
                .collect(),
        }
    }
}

impl From<GroupMetadataValue> for GroupValue {
    fn from(v: GroupMetadataValue) -> Self {
        GroupValue {
            // Kafka writes "" for a group without a protocol type.
            protocol_type: Some(v.protocol_type).filter(|t| !t.is_empty()),
            generation_id: v.generation,
            protocol_name: v.protocol,
            leader: v.leader,
            state_timestamp_ms: v.current_state_timestamp_ms,
            members: v
                .members
                .into_iter()
                .map(|m| MemberValue {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscription: m.subscription.to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }
}

/// A record's key and value bytes in Kafka's format.
pub fn encode_record((key, value): &Record) -> Result<(Vec<u8>, Option<Vec<u8>>), RecordError> {
    let value = match (key, value) {
        (_, None) => None,
        (RecordKey::Offset { .. }, Some(RecordValue::Offset(v))) => Some(OffsetCommitValue::from(v).encode()),
        (RecordKey::Group { .. }, Some(RecordValue::Group(v))) => Some(GroupMetadataValue::from(v).encode()),
        (RecordKey::ConsumerGroup { .. } | RecordKey::ConsumerTargetEpoch { .. }, Some(RecordValue::Epoch(e))) => {
            Some(records::encode_epoch_value(*e))
        }
        (RecordKey::ConsumerMember { .. }, Some(RecordValue::ConsumerMember(v))) => Some(v.encode()),
        (RecordKey::ConsumerTarget { .. }, Some(RecordValue::ConsumerTarget(v))) => {
            Some(records::encode_target_assignment(v))
        }
        (RecordKey::ConsumerAssignment { .. }, Some(RecordValue::ConsumerAssignment(v))) => Some(v.encode()),
        (_, Some(_)) => return Err(RecordError::Mismatch { key: key.kind(), value: "another type" }),
    };
    Ok((key.to_kafka().encode().to_vec(), value.map(|v| v.to_vec())))
}

impl RecordKey {
    fn kind(&self) -> &'static str {
        match self {
            RecordKey::Offset { .. } => "offset",
            RecordKey::Group { .. } => "group",
            RecordKey::ConsumerGroup { .. } => "consumer group",
            RecordKey::ConsumerMember { .. } => "consumer member",
            RecordKey::ConsumerTargetEpoch { .. } => "consumer target epoch",
            RecordKey::ConsumerTarget { .. } => "consumer target",
            RecordKey::ConsumerAssignment { .. } => "consumer assignment",
        }
    }
}

/// Encodes records as one record batch; with `txn`, as a transactional batch of that
/// producer (TxnOffsetCommit).
pub fn encode_batch(entries: &[Record], now_ms: i64, txn: Option<TxnProducer>) -> Result<Bytes, RecordError> {
    let encoded = entries.iter().map(encode_record).collect::<Result<Vec<_>, _>>()?;
    Ok(internal_topic::encode_batch(&encoded, now_ms, txn)?)
}

/// Reads one stored record, in Kafka's format or the JSON of earlier versions. `Ok(None)`
/// is a record type this coordinator does not serve (e.g. a KIP-848 group's), skipped.
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<Option<Record>, RecordError> {
    if key.first() == Some(&b'{') {
        return decode_legacy(key, value).map(Some);
    }
    let key = match GroupKey::decode(key)? {
        Ok(GroupKey::OffsetCommit { group, topic, partition }) => RecordKey::Offset { group, topic, partition },
        Ok(GroupKey::GroupMetadata { group }) => RecordKey::Group { group },
        Ok(GroupKey::ConsumerGroupMetadata { group }) => RecordKey::ConsumerGroup { group },
        Ok(GroupKey::ConsumerGroupMemberMetadata { group, member }) => RecordKey::ConsumerMember { group, member },
        Ok(GroupKey::ConsumerGroupTargetAssignmentMetadata { group }) => RecordKey::ConsumerTargetEpoch { group },
        Ok(GroupKey::ConsumerGroupTargetAssignmentMember { group, member }) => {
            RecordKey::ConsumerTarget { group, member }
        }
        Ok(GroupKey::ConsumerGroupCurrentMemberAssignment { group, member }) => {
            RecordKey::ConsumerAssignment { group, member }
        }
        Err(version) => {
            tracing::debug!(version, "skipping a __consumer_offsets record of a type not served here");
            return Ok(None);
        }
    };
    let value = match (&key, value) {
        (_, None) => None,
        (RecordKey::Offset { .. }, Some(v)) => Some(RecordValue::Offset(OffsetCommitValue::decode(v)?.into())),
        (RecordKey::Group { .. }, Some(v)) => Some(RecordValue::Group(GroupMetadataValue::decode(v)?.into())),
        (RecordKey::ConsumerGroup { .. } | RecordKey::ConsumerTargetEpoch { .. }, Some(v)) => {
            Some(RecordValue::Epoch(records::decode_epoch_value(v)?))
        }
        (RecordKey::ConsumerMember { .. }, Some(v)) => {
            Some(RecordValue::ConsumerMember(ConsumerGroupMemberMetadataValue::decode(v)?))
        }
        (RecordKey::ConsumerTarget { .. }, Some(v)) => {
            Some(RecordValue::ConsumerTarget(records::decode_target_assignment(v)?))
        }
        (RecordKey::ConsumerAssignment { .. }, Some(v)) => {
            Some(RecordValue::ConsumerAssignment(ConsumerGroupCurrentMemberAssignmentValue::decode(v)?))
        }
    };
    Ok(Some((key, value)))
}

/// A record as versions before Kafka's formats wrote it: JSON key, JSON value.
fn decode_legacy(key: &[u8], value: Option<&[u8]>) -> Result<Record, RecordError> {
    let key: RecordKey = serde_json::from_slice(key)?;
    let value = match (&key, value) {
        (_, None) => None,
        (RecordKey::Offset { .. }, Some(v)) => Some(RecordValue::Offset(serde_json::from_slice(v)?)),
        (RecordKey::Group { .. }, Some(v)) => Some(RecordValue::Group(serde_json::from_slice(v)?)),
        // Earlier versions wrote no KIP-848 records.
        (_, Some(_)) => return Err(RecordError::Mismatch { key: key.kind(), value: "JSON" }),
    };
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> GroupValue {
        GroupValue {
            protocol_type: Some("consumer".into()),
            generation_id: 3,
            protocol_name: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp_ms: 5,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                subscription: vec![0, 1, 255],
                assignment: vec![],
            }],
        }
    }

    #[test]
    fn records_round_trip_in_kafkas_format() {
        let offset = OffsetValue { offset: 42, leader_epoch: 1, metadata: "m".into(), commit_timestamp_ms: 9 };
        let entries: Vec<Record> = vec![
            (RecordKey::Group { group: "g".into() }, Some(RecordValue::Group(group()))),
            (
                RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 2 },
                Some(RecordValue::Offset(offset)),
            ),
            (RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 }, None),
        ];
        let batch = encode_batch(&entries, 1, None).unwrap();
        let mut buf = batch.clone();
        let set = rivulet_protocol::kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.records.len(), 3);
        for (record, expected) in set.records.iter().zip(&entries) {
            let key = record.key.as_ref().unwrap();
            // Kafka's key versions: 2 for group metadata, 1 for offset commits.
            assert_eq!(key[..2], [0, if matches!(expected.0, RecordKey::Group { .. }) { 2 } else { 1 }]);
            let decoded = decode_record(key, record.value.as_deref()).unwrap();
            assert_eq!(decoded.as_ref(), Some(expected));
        }
    }

    #[test]
    fn json_records_of_earlier_versions_are_read() {
        let key = br#"{"type":"offset","group":"g","topic":"t","partition":0}"#;
        let value = br#"{"offset":7,"leader_epoch":-1,"metadata":"x","commit_timestamp_ms":3}"#;
        let (key, value) = decode_record(key, Some(&value[..])).unwrap().unwrap();
        assert_eq!(key, RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 0 });
        assert_eq!(
            value,
            Some(RecordValue::Offset(OffsetValue {
                offset: 7,
                leader_epoch: -1,
                metadata: "x".into(),
                commit_timestamp_ms: 3
            }))
        );
        let legacy_group = serde_json::to_vec(&group()).unwrap();
        let (_, value) =
            decode_record(br#"{"type":"group","group":"g"}"#, Some(legacy_group.as_slice())).unwrap().unwrap();
        assert_eq!(value, Some(RecordValue::Group(group())));
    }

    #[test]
    fn unknown_record_types_are_skipped_and_garbage_refused() {
        // Key version 4: KIP-848's ConsumerGroupPartitionMetadataKey, which Kafka 4.1 stopped writing.
        assert!(decode_record(&[0, 4, 0, 1, b'g'], Some(&[0u8, 0][..])).unwrap().is_none());
        assert!(decode_record(&[0, 2, 0, 9, b'g'], None).is_err());
        assert!(decode_record(b"{not json", None).is_err());
    }
}
