//! How the group coordinator's state is written to `__consumer_offsets`.
//!
//! As in Kafka, group metadata and committed offsets are records of an internal topic whose
//! partition is chosen by the group id's hash, so that replication and failover treat them
//! like any partition. Keys and values are JSON (self-describing and easy to inspect); a
//! record with a null value is a tombstone. The coordinator replays every partition on
//! start and the last record per key wins, as after log compaction.

use bytes::{Bytes, BytesMut};
use rivulet_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

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

/// Kafka's `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`: the Java
/// `String.hashCode` of the group id, so a group maps to the partition Kafka would use.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// Encodes `(key, value)` records as one record batch (values `None` are tombstones).
pub fn encode_batch(entries: &[(RecordKey, Option<Vec<u8>>)], now_ms: i64) -> Result<Bytes, String> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            Ok(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // Contiguous sequences keep the encoder from splitting the batch.
                sequence: i as i32,
                timestamp: now_ms,
                key: Some(Bytes::from(serde_json::to_vec(key).map_err(|e| e.to_string())?)),
                value: value.clone().map(Bytes::from),
                headers: Default::default(),
            })
        })
        .collect::<Result<_, String>>()?;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Decodes every `(key, value)` in `batches` (concatenated stored batches).
pub fn decode_records(batches: &Bytes) -> Result<Vec<(RecordKey, Option<Bytes>)>, String> {
    let mut buf = batches.clone();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).map_err(|e| e.to_string())? {
        for record in set.records {
            if record.control {
                continue;
            }
            let Some(key) = record.key else { continue };
            let key: RecordKey = serde_json::from_slice(&key).map_err(|e| e.to_string())?;
            out.push((key, record.value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "test-group".hashCode() == 627841412 in Java; 627841412 % 50 == 12.
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..50).contains(&partition_for("Ünïcödé group ☃", 50)));
    }

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
        let batch = encode_batch(&entries, 1).unwrap();
        let decoded = decode_records(&batch).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].0, entries[0].0);
        let back: GroupValue = serde_json::from_slice(decoded[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(back, group);
        assert_eq!(decoded[1].1, None);
    }
}
