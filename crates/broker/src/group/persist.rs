//! How the group coordinator's state is written to `__consumer_offsets`.
//!
//! As in Kafka, group metadata and committed offsets are records of an internal topic whose
//! partition is chosen by the group id's hash, so that replication and failover treat them
//! like any partition. Keys and values are JSON (self-describing and easy to inspect); a
//! record with a null value is a tombstone. The coordinator replays every partition on
//! start and the last record per key wins, as after log compaction.

use bytes::Bytes;
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

/// Encodes `(key, value)` records as one record batch (values `None` are tombstones);
/// with `txn`, as a transactional batch of that producer (TxnOffsetCommit).
pub fn encode_batch(
    entries: &[(RecordKey, Option<Vec<u8>>)],
    now_ms: i64,
    txn: Option<TxnProducer>,
) -> Result<Bytes, String> {
    let encoded = entries
        .iter()
        .map(|(key, value)| Ok((serde_json::to_vec(key).map_err(|e| e.to_string())?, value.clone())))
        .collect::<Result<Vec<_>, String>>()?;
    internal_topic::encode_batch(&encoded, now_ms, txn)
}

/// Decodes a record key written by [`encode_batch`].
pub fn decode_key(key: &[u8]) -> Result<RecordKey, String> {
    serde_json::from_slice(key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let group = GroupValue {
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
        };
        let entries = vec![
            (RecordKey::Group { group: "g".into() }, Some(serde_json::to_vec(&group).unwrap())),
            (RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 2 }, None),
        ];
        let batch = encode_batch(&entries, 1, None).unwrap();
        let mut buf = batch.clone();
        let set = rivulet_protocol::kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.records.len(), 2);
        assert_eq!(decode_key(set.records[0].key.as_ref().unwrap()).unwrap(), entries[0].0);
        let back: GroupValue = serde_json::from_slice(set.records[0].value.as_ref().unwrap()).unwrap();
        assert_eq!(back, group);
        assert_eq!(set.records[1].value, None);
    }
}
