//! Kafka's record formats for the coordinators' internal topics, byte for byte.
//!
//! `__consumer_offsets` and `__transaction_state` hold keyed records whose key and value
//! each start with an `int16` version, followed by the fields of a Kafka message schema
//! (`group-coordinator/src/main/resources/common/message/` and
//! `transaction-coordinator/src/main/resources/common/message/` in Apache Kafka):
//!
//! | key version | key                | value                         |
//! |-------------|--------------------|-------------------------------|
//! | 0, 1        | `OffsetCommitKey`  | `OffsetCommitValue` v0–4      |
//! | 2           | `GroupMetadataKey` | `GroupMetadataValue` v0–4     |
//! | 3           | `ConsumerGroupMetadataKey` | `ConsumerGroupMetadataValue` v0 |
//! | 5           | `ConsumerGroupMemberMetadataKey` | `ConsumerGroupMemberMetadataValue` v0 |
//! | 6           | `ConsumerGroupTargetAssignmentMetadataKey` | `ConsumerGroupTargetAssignmentMetadataValue` v0 |
//! | 7           | `ConsumerGroupTargetAssignmentMemberKey` | `ConsumerGroupTargetAssignmentMemberValue` v0 |
//! | 8           | `ConsumerGroupCurrentMemberAssignmentKey` | `ConsumerGroupCurrentMemberAssignmentValue` v0 |
//! | 0           | `TransactionLogKey`| `TransactionLogValue` v0–1    |
//!
//! Writing the same formats lets Kafka's own tools read the topics
//! (`OffsetsMessageFormatter`, `TransactionLogMessageFormatter`), and compaction can key
//! on the bytes: every encoder here is canonical (one value, one encoding). Writers use the
//! versions Apache Kafka 4 writes (offset commit key 1 / value 3, group metadata key 2 /
//! value 3, transaction log key 0 / value 1); readers accept every version of the schemas.
//! Key types this module does not know (KIP-848's partition metadata, which Kafka 4.1
//! stopped writing, and the share-group records) are told apart from malformed ones, so a
//! reader can skip them.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why bytes are not a valid coordinator record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFormatError {
    #[error("{what} ends before its fields do")]
    Truncated { what: &'static str },
    #[error("{what} has unknown version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: &'static str },
}

type Result<T> = std::result::Result<T, RecordFormatError>;

// ---------------------------------------------------------------------------------------
// __consumer_offsets

/// A `__consumer_offsets` record key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// `OffsetCommitKey`: the committed offset of one partition for one group.
    OffsetCommit { group: String, topic: String, partition: i32 },
    /// `GroupMetadataKey`: a classic group's membership.
    GroupMetadata { group: String },
    /// `ConsumerGroupMetadataKey` (KIP-848): a consumer group's epoch.
    ConsumerGroupMetadata { group: String },
    /// `ConsumerGroupMemberMetadataKey`: one member's subscription and client facts.
    ConsumerGroupMemberMetadata { group: String, member: String },
    /// `ConsumerGroupTargetAssignmentMetadataKey`: the target assignment's epoch.
    ConsumerGroupTargetAssignmentMetadata { group: String },
    /// `ConsumerGroupTargetAssignmentMemberKey`: one member's target assignment.
    ConsumerGroupTargetAssignmentMember { group: String, member: String },
    /// `ConsumerGroupCurrentMemberAssignmentKey`: one member's epochs and current assignment.
    ConsumerGroupCurrentMemberAssignment { group: String, member: String },
}

/// Partitions by topic id, as the KIP-848 records list them.
pub type TopicPartitionList = Vec<(uuid::Uuid, Vec<i32>)>;

/// `ConsumerGroupMemberMetadataValue` v0 (without the tagged classic-member metadata of
/// online migration, which Rivulet does not offer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupMemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue` v0. `state` is Kafka's `MemberState` code
/// (0 stable, 1 unrevoked partitions, 2 unreleased partitions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupCurrentMemberAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned_partitions: TopicPartitionList,
    pub partitions_pending_revocation: TopicPartitionList,
}

/// `OffsetCommitValue` (Kafka's `OffsetAndMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only in version 1 (KIP-211 removed it); -1 when absent.
    pub expire_timestamp_ms: i64,
}

/// One member of a [`GroupMetadataValue`] (`MemberMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol (its subscription, for consumers).
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// `GroupMetadataValue`: a classic group after its last completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Empty when the group has none.
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when absent (versions 0–1).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

impl GroupKey {
    /// The key's bytes (`OffsetCommitKey` v1 or `GroupMetadataKey` v2).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        match self {
            GroupKey::OffsetCommit { group, topic, partition } => {
                w.i16(OFFSET_COMMIT_KEY_VERSION);
                w.string(group);
                w.string(topic);
                w.i32(*partition);
            }
            GroupKey::GroupMetadata { group } => {
                w.i16(GROUP_METADATA_KEY_VERSION);
                w.string(group);
            }
            GroupKey::ConsumerGroupMetadata { group } => {
                w.i16(3);
                w.string(group);
            }
            GroupKey::ConsumerGroupMemberMetadata { group, member } => {
                w.i16(5);
                w.string(group);
                w.string(member);
            }
            GroupKey::ConsumerGroupTargetAssignmentMetadata { group } => {
                w.i16(6);
                w.string(group);
            }
            GroupKey::ConsumerGroupTargetAssignmentMember { group, member } => {
                w.i16(7);
                w.string(group);
                w.string(member);
            }
            GroupKey::ConsumerGroupCurrentMemberAssignment { group, member } => {
                w.i16(8);
                w.string(group);
                w.string(member);
            }
        }
        w.finish()
    }

    /// The key, or `Err(version)` inside `Ok` for a record type of a protocol this module
    /// does not read (KIP-848's and share groups' records), which a reader skips.
    pub fn decode(bytes: &[u8]) -> Result<std::result::Result<Self, i16>> {
        let mut r = Reader::new(bytes, "__consumer_offsets key", false);
        let version = r.i16()?;
        let key = match version {
            0 | 1 => GroupKey::OffsetCommit { group: r.string()?, topic: r.string()?, partition: r.i32()? },
            2 => GroupKey::GroupMetadata { group: r.string()? },
            3 => GroupKey::ConsumerGroupMetadata { group: r.string()? },
            5 => GroupKey::ConsumerGroupMemberMetadata { group: r.string()?, member: r.string()? },
            6 => GroupKey::ConsumerGroupTargetAssignmentMetadata { group: r.string()? },
            7 => GroupKey::ConsumerGroupTargetAssignmentMember { group: r.string()?, member: r.string()? },
            8 => GroupKey::ConsumerGroupCurrentMemberAssignment { group: r.string()?, member: r.string()? },
            _ => return Ok(Err(version)),
        };
        r.finish()?;
        Ok(Ok(key))
    }
}

impl OffsetCommitValue {
    /// The value's bytes: version 1 when it carries an expire timestamp, else 3 (as
    /// Kafka's `GroupCoordinatorRecordHelpers` chooses).
    pub fn encode(&self) -> Bytes {
        let version = if self.expire_timestamp_ms >= 0 { 1 } else { OFFSET_COMMIT_VALUE_VERSION };
        let mut w = Writer::default();
        w.i16(version);
        w.i64(self.offset);
        if version >= 3 {
            w.i32(self.leader_epoch);
        }
        w.string(&self.metadata);
        w.i64(self.commit_timestamp_ms);
        if version == 1 {
            w.i64(self.expire_timestamp_ms);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (version, mut r) = Reader::versioned(bytes, "OffsetCommitValue", 4, 4)?;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string()?;
        let commit_timestamp_ms = r.i64()?;
        let expire_timestamp_ms = if version == 1 { r.i64()? } else { -1 };
        r.tagged_fields(|_, _| Ok(()))?;
        r.finish()?;
        Ok(OffsetCommitValue { offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms })
    }
}

impl GroupMetadataValue {
    /// The value's bytes, version 3.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(GROUP_METADATA_VALUE_VERSION);
        w.string(&self.protocol_type);
        w.i32(self.generation);
        w.nullable_string(self.protocol.as_deref());
        w.nullable_string(self.leader.as_deref());
        w.i64(self.current_state_timestamp_ms);
        w.array_len(self.members.len());
        for m in &self.members {
            w.string(&m.member_id);
            w.nullable_string(m.group_instance_id.as_deref());
            w.string(&m.client_id);
            w.string(&m.client_host);
            w.i32(m.rebalance_timeout_ms);
            w.i32(m.session_timeout_ms);
            w.bytes(&m.subscription);
            w.bytes(&m.assignment);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (version, mut r) = Reader::versioned(bytes, "GroupMetadataValue", 4, 4)?;
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
        let count = r.array_len()?.unwrap_or(0);
        let mut members = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let member_id = r.string()?;
            let group_instance_id = if version >= 3 { r.nullable_string()? } else { None };
            let client_id = r.string()?;
            let client_host = r.string()?;
            let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
            let session_timeout_ms = r.i32()?;
            let subscription = r.bytes()?;
            let assignment = r.bytes()?;
            r.tagged_fields(|_, _| Ok(()))?;
            members.push(MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                // Version 0 had one timeout for both, as Kafka reads it.
                rebalance_timeout_ms: if version >= 1 { rebalance_timeout_ms } else { session_timeout_ms },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        r.tagged_fields(|_, _| Ok(()))?;
        r.finish()?;
        Ok(GroupMetadataValue { protocol_type, generation, protocol, leader, current_state_timestamp_ms, members })
    }
}

/// A flexible (v0) KIP-848 value writer: the `int16` version 0, then compact fields.
fn flexible_writer() -> Writer {
    let mut w = Writer::default();
    w.i16(0);
    w.flexible = true;
    w
}

fn write_partitions(w: &mut Writer, list: &TopicPartitionList) {
    w.array_len(list.len());
    for (topic, partitions) in list {
        w.buf.put_slice(topic.as_bytes());
        w.array_len(partitions.len());
        for p in partitions {
            w.i32(*p);
        }
        w.no_tagged_fields();
    }
}

fn read_partitions(r: &mut Reader<'_>) -> Result<TopicPartitionList> {
    let count = r.array_len()?.unwrap_or(0);
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let id = uuid::Uuid::from_slice(r.take(16)?).map_err(|_| r.malformed("topic id is not 16 bytes"))?;
        let n = r.array_len()?.unwrap_or(0);
        let mut partitions = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            partitions.push(r.i32()?);
        }
        r.tagged_fields(|_, _| Ok(()))?;
        out.push((id, partitions));
    }
    Ok(out)
}

/// `ConsumerGroupMetadataValue` and `ConsumerGroupTargetAssignmentMetadataValue` v0: one
/// epoch (the group epoch, or the target assignment epoch).
pub fn encode_epoch_value(epoch: i32) -> Bytes {
    let mut w = flexible_writer();
    w.i32(epoch);
    w.no_tagged_fields();
    w.finish()
}

pub fn decode_epoch_value(bytes: &[u8]) -> Result<i32> {
    let (_, mut r) = Reader::versioned(bytes, "ConsumerGroup epoch value", 0, 0)?;
    let epoch = r.i32()?;
    // Later versions add fields (e.g. a metadata hash) as tagged or trailing data: only the
    // epoch is read.
    Ok(epoch)
}

/// `ConsumerGroupTargetAssignmentMemberValue` v0.
pub fn encode_target_assignment(list: &TopicPartitionList) -> Bytes {
    let mut w = flexible_writer();
    write_partitions(&mut w, list);
    w.no_tagged_fields();
    w.finish()
}

pub fn decode_target_assignment(bytes: &[u8]) -> Result<TopicPartitionList> {
    let (_, mut r) = Reader::versioned(bytes, "ConsumerGroupTargetAssignmentMemberValue", 0, 0)?;
    let list = read_partitions(&mut r)?;
    r.tagged_fields(|_, _| Ok(()))?;
    r.finish()?;
    Ok(list)
}

impl ConsumerGroupMemberMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut w = flexible_writer();
        w.nullable_string(self.instance_id.as_deref());
        w.nullable_string(self.rack_id.as_deref());
        w.string(&self.client_id);
        w.string(&self.client_host);
        w.array_len(self.subscribed_topic_names.len());
        for t in &self.subscribed_topic_names {
            w.string(t);
        }
        w.nullable_string(self.subscribed_topic_regex.as_deref());
        w.i32(self.rebalance_timeout_ms);
        w.nullable_string(self.server_assignor.as_deref());
        w.no_tagged_fields();
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::versioned(bytes, "ConsumerGroupMemberMetadataValue", 0, 0)?;
        let instance_id = r.nullable_string()?;
        let rack_id = r.nullable_string()?;
        let client_id = r.string()?;
        let client_host = r.string()?;
        let count = r.array_len()?.unwrap_or(0);
        let mut subscribed_topic_names = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            subscribed_topic_names.push(r.string()?);
        }
        let subscribed_topic_regex = r.nullable_string()?;
        let rebalance_timeout_ms = r.i32()?;
        let server_assignor = r.nullable_string()?;
        // Tag 0 is the classic-member metadata of a migrated member: not used here.
        r.tagged_fields(|_, _| Ok(()))?;
        r.finish()?;
        Ok(ConsumerGroupMemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
        })
    }
}

impl ConsumerGroupCurrentMemberAssignmentValue {
    pub fn encode(&self) -> Bytes {
        let mut w = flexible_writer();
        w.i32(self.member_epoch);
        w.i32(self.previous_member_epoch);
        w.i8(self.state);
        write_partitions(&mut w, &self.assigned_partitions);
        write_partitions(&mut w, &self.partitions_pending_revocation);
        w.no_tagged_fields();
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::versioned(bytes, "ConsumerGroupCurrentMemberAssignmentValue", 0, 0)?;
        let member_epoch = r.i32()?;
        let previous_member_epoch = r.i32()?;
        let state = r.i8()?;
        let assigned_partitions = read_partitions(&mut r)?;
        let partitions_pending_revocation = read_partitions(&mut r)?;
        r.tagged_fields(|_, _| Ok(()))?;
        r.finish()?;
        Ok(ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch,
            previous_member_epoch,
            state,
            assigned_partitions,
            partitions_pending_revocation,
        })
    }
}

// ---------------------------------------------------------------------------------------
// __transaction_state

/// `TransactionLogKey` (version 0): the transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionLogKey {
    pub transactional_id: String,
}

impl TransactionLogKey {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.string(&self.transactional_id);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "TransactionLogKey";
        let mut r = Reader::new(bytes, WHAT, false);
        let version = r.i16()?;
        if version != 0 {
            return Err(RecordFormatError::UnknownVersion { what: WHAT, version });
        }
        let transactional_id = r.string()?;
        r.finish()?;
        Ok(TransactionLogKey { transactional_id })
    }
}

/// Kafka's `TransactionState` ids as `TransactionLogValue.TransactionStatus` stores them.
pub mod transaction_status {
    pub const EMPTY: i8 = 0;
    pub const ONGOING: i8 = 1;
    pub const PREPARE_COMMIT: i8 = 2;
    pub const PREPARE_ABORT: i8 = 3;
    pub const COMPLETE_COMMIT: i8 = 4;
    pub const COMPLETE_ABORT: i8 = 5;
    pub const DEAD: i8 = 6;
    pub const PREPARE_EPOCH_FENCE: i8 = 7;
}

/// `TransactionLogValue`: one transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogValue {
    pub producer_id: i64,
    /// The producer id before the last one was handed out (tagged field 0); -1 for none.
    pub previous_producer_id: i64,
    /// The producer id handed out next, while it is not yet in use (tagged field 1); -1.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so that a retried InitProducerId (KIP-360) is
    /// recognised after a reload. Kafka keeps this in memory only; Rivulet stores it in
    /// tagged field [`LAST_PRODUCER_EPOCH_TAG`], which Kafka's readers skip. -1 for none.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    /// One of [`transaction_status`].
    pub status: i8,
    /// `(topic, partitions)` in the transaction, topics in order, partitions ascending.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    /// The client's transaction version (tagged field 2); 0 for the KIP-98 protocol.
    pub client_transaction_version: i16,
}

/// The tagged field of `TransactionLogValue` that holds [`TransactionLogValue::last_producer_epoch`].
/// Far above Kafka's own tags (0–2), so that a later Kafka field cannot collide with it.
pub const LAST_PRODUCER_EPOCH_TAG: u32 = 10_000;

impl TransactionLogValue {
    /// The value's bytes, version 1 (flexible); tagged fields at their defaults are left
    /// out, as Kafka's generated writers do.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer { flexible: true, ..Writer::default() };
        w.i16(1);
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.i32(self.timeout_ms);
        w.i8(self.status);
        // Kafka writes a null list for an Empty transaction.
        if self.partitions.is_empty() {
            w.null_array();
        } else {
            w.array_len(self.partitions.len());
            for (topic, ids) in &self.partitions {
                w.string(topic);
                w.array_len(ids.len());
                for id in ids {
                    w.i32(*id);
                }
                w.no_tagged_fields();
            }
        }
        w.i64(self.last_update_timestamp_ms);
        w.i64(self.start_timestamp_ms);
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if self.previous_producer_id != -1 {
            tags.push((0, self.previous_producer_id.to_be_bytes().to_vec()));
        }
        if self.next_producer_id != -1 {
            tags.push((1, self.next_producer_id.to_be_bytes().to_vec()));
        }
        if self.client_transaction_version != 0 {
            tags.push((2, self.client_transaction_version.to_be_bytes().to_vec()));
        }
        if self.last_producer_epoch != -1 {
            tags.push((LAST_PRODUCER_EPOCH_TAG, self.last_producer_epoch.to_be_bytes().to_vec()));
        }
        w.tagged_fields(&tags);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "TransactionLogValue";
        let (_, mut r) = Reader::versioned(bytes, WHAT, 1, 1)?;
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let timeout_ms = r.i32()?;
        let status = r.i8()?;
        let mut partitions = Vec::new();
        if let Some(count) = r.array_len()? {
            for _ in 0..count {
                let topic = r.string()?;
                let ids_count = r.array_len()?.unwrap_or(0);
                let mut ids = Vec::with_capacity(ids_count.min(1024));
                for _ in 0..ids_count {
                    ids.push(r.i32()?);
                }
                r.tagged_fields(|_, _| Ok(()))?;
                partitions.push((topic, ids));
            }
        }
        let last_update_timestamp_ms = r.i64()?;
        let start_timestamp_ms = r.i64()?;
        let mut value = TransactionLogValue {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch,
            last_producer_epoch: -1,
            timeout_ms,
            status,
            partitions,
            last_update_timestamp_ms,
            start_timestamp_ms,
            client_transaction_version: 0,
        };
        r.tagged_fields(|tag, mut field| {
            let malformed = RecordFormatError::Malformed { what: WHAT, reason: "tagged field of the wrong size" };
            match (tag, field.len()) {
                (0, 8) => value.previous_producer_id = field.get_i64(),
                (1, 8) => value.next_producer_id = field.get_i64(),
                (2, 2) => value.client_transaction_version = field.get_i16(),
                (LAST_PRODUCER_EPOCH_TAG, 2) => value.last_producer_epoch = field.get_i16(),
                (0 | 1 | 2 | LAST_PRODUCER_EPOCH_TAG, _) => return Err(malformed),
                _ => {}
            }
            Ok(())
        })?;
        r.finish()?;
        Ok(value)
    }
}

// ---------------------------------------------------------------------------------------
// Primitive types (Kafka's `protocol/types`), classic and compact (flexible versions).

#[derive(Default)]
struct Writer {
    buf: BytesMut,
    flexible: bool,
}

impl Writer {
    fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }
    fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }
    fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }
    fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }
    /// A length prefix: `int16`/`int32` classic, or unsigned varint of `len + 1` compact.
    fn len(&mut self, len: usize, classic_i16: bool) {
        if self.flexible {
            self.varint(len as u64 + 1);
        } else if classic_i16 {
            // Kafka strings are at most i16::MAX bytes; callers hold names, ids and hosts.
            self.buf.put_i16(len.min(i16::MAX as usize) as i16);
        } else {
            self.buf.put_i32(len.min(i32::MAX as usize) as i32);
        }
    }
    fn string(&mut self, s: &str) {
        let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
        self.len(bytes.len(), true);
        self.buf.put_slice(bytes);
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None if self.flexible => self.varint(0),
            None => self.buf.put_i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len(), false);
        self.buf.put_slice(b);
    }
    fn array_len(&mut self, len: usize) {
        self.len(len, false);
    }
    fn null_array(&mut self) {
        if self.flexible {
            self.varint(0);
        } else {
            self.buf.put_i32(-1);
        }
    }
    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.varint(0);
        }
    }
    /// Tagged fields, which must be in ascending tag order.
    fn tagged_fields(&mut self, fields: &[(u32, Vec<u8>)]) {
        if !self.flexible {
            return;
        }
        debug_assert!(fields.windows(2).all(|w| w[0].0 < w[1].0));
        self.varint(fields.len() as u64);
        for (tag, data) in fields {
            self.varint(u64::from(*tag));
            self.varint(data.len() as u64);
            self.buf.put_slice(data);
        }
    }
    fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str, flexible: bool) -> Self {
        Reader { buf, what, flexible }
    }
    /// Reads a value's `int16` version, refusing one above `max`, and returns a reader of
    /// the fields that follow, flexible from version `flexible_from` on.
    fn versioned(bytes: &'a [u8], what: &'static str, max: i16, flexible_from: i16) -> Result<(i16, Self)> {
        let mut r = Reader::new(bytes, what, false);
        let version = r.i16()?;
        if !(0..=max).contains(&version) {
            return Err(RecordFormatError::UnknownVersion { what, version });
        }
        r.flexible = version >= flexible_from;
        Ok((version, r))
    }
    fn need(&self, n: usize) -> Result<()> {
        if self.buf.remaining() < n {
            Err(RecordFormatError::Truncated { what: self.what })
        } else {
            Ok(())
        }
    }
    fn malformed(&self, reason: &'static str) -> RecordFormatError {
        RecordFormatError::Malformed { what: self.what, reason }
    }
    fn i8(&mut self) -> Result<i8> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }
    fn i16(&mut self) -> Result<i16> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }
    fn i32(&mut self) -> Result<i32> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }
    fn i64(&mut self) -> Result<i64> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }
    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            self.need(1)?;
            let byte = self.buf.get_u8();
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("varint longer than 64 bits"))
    }
    /// A length prefix; `None` is null.
    fn len(&mut self, classic_i16: bool) -> Result<Option<usize>> {
        let len: i64 = if self.flexible {
            // Compact lengths are stored plus one; zero is null. A varint this long cannot
            // describe bytes that follow, but must not overflow on the way to saying so.
            match self.varint()? {
                0 => -1,
                n => i64::try_from(n - 1).map_err(|_| self.malformed("length beyond the record"))?,
            }
        } else if classic_i16 {
            i64::from(self.i16()?)
        } else {
            i64::from(self.i32()?)
        };
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(self.malformed("negative length")),
            n => Ok(Some(n as usize)),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.need(n)?;
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn nullable_string(&mut self) -> Result<Option<String>> {
        let Some(len) = self.len(true)? else { return Ok(None) };
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| self.malformed("string is not UTF-8"))
    }
    fn string(&mut self) -> Result<String> {
        self.nullable_string()?.ok_or_else(|| self.malformed("null in a non-nullable string"))
    }
    fn bytes(&mut self) -> Result<Bytes> {
        let len = self.len(false)?.ok_or_else(|| self.malformed("null in non-nullable bytes"))?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
    fn array_len(&mut self) -> Result<Option<usize>> {
        let len = self.len(false)?;
        // Each element takes at least one byte: refuse counts the input cannot hold before
        // anything is allocated for them.
        if len.is_some_and(|n| n > self.buf.remaining()) {
            return Err(RecordFormatError::Truncated { what: self.what });
        }
        Ok(len)
    }
    /// Reads a tagged-field section (flexible versions only) and hands each to `visit`.
    fn tagged_fields(&mut self, mut visit: impl FnMut(u32, &[u8]) -> Result<()>) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.varint()?;
        for _ in 0..count {
            let tag = u32::try_from(self.varint()?).map_err(|_| self.malformed("tag above u32"))?;
            let size = usize::try_from(self.varint()?).map_err(|_| self.malformed("tagged field too large"))?;
            let data = self.take(size)?;
            visit(tag, data)?;
        }
        Ok(())
    }
    fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("bytes left after the last field"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn offset_commit_key_and_value_match_kafkas_bytes() {
        // OffsetCommitKey v1 {group "g", topic "t", partition 2}, as Kafka's
        // MessageUtil.toVersionPrefixedBytes writes it.
        let key = GroupKey::OffsetCommit { group: "g".into(), topic: "t".into(), partition: 2 };
        assert_eq!(hex(&key.encode()), "0001".to_string() + "000167" + "000174" + "00000002");
        let value = OffsetCommitValue {
            offset: 5,
            leader_epoch: 1,
            metadata: "m".into(),
            commit_timestamp_ms: 7,
            expire_timestamp_ms: -1,
        };
        assert_eq!(
            hex(&value.encode()),
            "0003".to_string() + "0000000000000005" + "00000001" + "00016d" + "0000000000000007"
        );
        assert_eq!(OffsetCommitValue::decode(&value.encode()), Ok(value));
        assert_eq!(GroupKey::decode(&key.encode()), Ok(Ok(key)));
    }

    #[test]
    fn group_metadata_v0_reads_the_session_timeout_as_rebalance_timeout() {
        let mut w = Writer::default();
        w.i16(0);
        w.string("consumer");
        w.i32(3);
        w.nullable_string(Some("range"));
        w.nullable_string(None);
        w.array_len(1);
        for s in ["m", "c", "/h"] {
            w.string(s);
        }
        w.i32(10_000);
        w.bytes(&[1]);
        w.bytes(&[]);
        let value = GroupMetadataValue::decode(&w.finish()).unwrap();
        assert_eq!(value.members[0].rebalance_timeout_ms, 10_000);
        assert_eq!(value.current_state_timestamp_ms, -1);
        assert_eq!(value.leader, None);
    }

    #[test]
    fn transaction_value_v0_and_v1_read() {
        let value = TransactionLogValue {
            producer_id: 9,
            previous_producer_id: 8,
            next_producer_id: -1,
            producer_epoch: 3,
            last_producer_epoch: 2,
            timeout_ms: 60_000,
            status: transaction_status::ONGOING,
            partitions: vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])],
            last_update_timestamp_ms: 11,
            start_timestamp_ms: 10,
            client_transaction_version: 0,
        };
        assert_eq!(TransactionLogValue::decode(&value.encode()), Ok(value.clone()));
        // Version 0 (classic): no tagged fields, so the tagged values are defaults.
        let mut w = Writer::default();
        w.i16(0);
        w.i64(9);
        w.i16(3);
        w.i32(60_000);
        w.i8(transaction_status::EMPTY);
        w.null_array();
        w.i64(11);
        w.i64(-1);
        let v0 = TransactionLogValue::decode(&w.finish()).unwrap();
        assert_eq!((v0.previous_producer_id, v0.last_producer_epoch, v0.partitions.len()), (-1, -1, 0));
    }

    #[test]
    fn unknown_key_versions_are_named_not_refused() {
        assert_eq!(GroupKey::decode(&[0, 4, 0, 1, b'g']), Ok(Err(4)));
        assert!(TransactionLogKey::decode(&[0, 1, 0, 0]).is_err());
    }

    fn short_string() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._ /-]{0,12}"
    }

    proptest! {
        #[test]
        fn group_values_round_trip(
            protocol_type in short_string(),
            generation in any::<i32>(),
            protocol in proptest::option::of(short_string()),
            leader in proptest::option::of(short_string()),
            ts in any::<i64>(),
            members in proptest::collection::vec(
                (short_string(), proptest::option::of(short_string()), short_string(), any::<i32>(),
                 any::<i32>(), proptest::collection::vec(any::<u8>(), 0..16)),
                0..4),
        ) {
            let value = GroupMetadataValue {
                protocol_type, generation, protocol, leader, current_state_timestamp_ms: ts,
                members: members.into_iter().map(|(id, instance, host, rt, st, sub)| MemberMetadata {
                    member_id: id.clone(), group_instance_id: instance, client_id: id, client_host: host,
                    rebalance_timeout_ms: rt, session_timeout_ms: st,
                    subscription: Bytes::from(sub.clone()), assignment: Bytes::from(sub),
                }).collect(),
            };
            let bytes = value.encode();
            prop_assert_eq!(GroupMetadataValue::decode(&bytes), Ok(value.clone()));
            // Canonical: decoding then encoding gives the same bytes.
            prop_assert_eq!(GroupMetadataValue::decode(&bytes).map(|v| v.encode()), Ok(bytes));
        }

        #[test]
        fn transaction_values_round_trip(
            producer_id in any::<i64>(), previous in any::<i64>(), epoch in any::<i16>(),
            last_epoch in any::<i16>(), timeout in any::<i32>(), status in 0i8..8,
            partitions in proptest::collection::btree_map(short_string(),
                proptest::collection::btree_set(0i32..100, 1..4), 0..4),
            update in any::<i64>(), start in any::<i64>(),
        ) {
            let value = TransactionLogValue {
                producer_id, previous_producer_id: previous, next_producer_id: -1,
                producer_epoch: epoch, last_producer_epoch: last_epoch, timeout_ms: timeout, status,
                partitions: partitions.into_iter().map(|(t, ids)| (t, ids.into_iter().collect())).collect(),
                last_update_timestamp_ms: update, start_timestamp_ms: start, client_transaction_version: 0,
            };
            let bytes = value.encode();
            prop_assert_eq!(TransactionLogValue::decode(&bytes), Ok(value));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = GroupKey::decode(&bytes);
            let _ = OffsetCommitValue::decode(&bytes);
            let _ = GroupMetadataValue::decode(&bytes);
            let _ = TransactionLogKey::decode(&bytes);
            let _ = TransactionLogValue::decode(&bytes);
        }
    }
}
