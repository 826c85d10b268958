//! # rivulet-coordinator
//!
//! The broker's coordinators, whose state lives in keyed records of internal topics:
//!
//! * [`group`] — the group coordinator (classic JoinGroup / SyncGroup / Heartbeat /
//!   LeaveGroup, KIP-848 ConsumerGroupHeartbeat / ConsumerGroupDescribe with server-side
//!   assignors, committed offsets, transactional offsets), on `__consumer_offsets`.
//! * [`txn`] — the transaction coordinator (KIP-98/360/447), on `__transaction_state`.
//! * [`runtime`] — the runtime both coordinators run on (after Kafka 4's
//!   `CoordinatorRuntime`): one per internal topic, a [`runtime::Shard`] per served
//!   partition owning its log; the one write path (encode a batch, append it) and the one
//!   load path (replay the log into the coordinator's [`runtime::Replay`] state).
//! * [`internal_topic`] — encoding record batches for and decoding them from those topics'
//!   partition logs, and Kafka's key → partition hash.
//! * [`clock`] — wall-clock time behind a trait. Both coordinators read every time through
//!   it (session, rebalance, retention and transaction timeouts, record timestamps), kept
//!   as milliseconds like Kafka's `time.milliseconds()`, so tests move a `ManualClock`
//!   instead of sleeping.
//! * [`coordinator_partitions`] — which partitions of its topic a coordinator serves (those
//!   this broker leads), and the errors for keys hashing elsewhere.
//!
//! Records are Kafka's own formats (`rivulet_protocol::coordinator_records`). Every state
//! change a restart must see is appended to the partition log first, and loading a
//! partition replays it, so start-up, failover and compaction go through one path.
//!
//! Errors are `thiserror` enums with their causes as sources; each error a request can
//! meet has one `kafka_error()` that maps it to Kafka's code (`group::PersistError`,
//! `txn::WriteError`, `txn::MarkerError`).
//!
//! This crate never touches sockets, etcd or RocksDB directly (it appends to and reads
//! from `rivulet_storage::PartitionLog`s it is handed), never decides which partitions
//! this broker leads (the broker tells it by loading and unloading partitions), and never
//! writes transaction markers itself: the broker provides a [`txn::MarkerSink`].

pub mod clock;
pub mod coordinator_partitions;
pub mod group;
pub mod internal_topic;
pub mod runtime;
pub mod txn;
