//! # rivulet-broker
//!
//! The Kafka broker proper: configuration under Kafka's names ([`config`]), the shared
//! broker state ([`broker`]), the accept loop ([`server`]), one task per connection
//! ([`connection`]) and one handler module per Kafka API (`handlers`). The group and
//! transaction coordinators come from `rivulet-coordinator` (re-exported as [`group`],
//! [`txn`], [`internal_topic`], [`coordinator_partitions`]); the broker hands them the
//! internal-topic partitions it leads and writes their transaction markers. The
//! partitions held here and their replication state — leader, epoch, ISR, follower
//! progress, high watermark — live in [`replication`]; this broker's part in a cluster is
//! one seam, [`membership::Membership`], either [`membership::SingleNode`] or the etcd
//! [`membership::etcd::Cluster`] (sync, controller, follower fetchers). Dependencies point
//! one way: [`broker`] → [`membership`] → [`replication`].
//!
//! A request flows: socket → [`connection`] reads a length-prefixed frame (size checked
//! before allocation) → `rivulet-protocol` decodes it → `handlers::handle` routes it, with
//! its [`request_context::RequestContext`] (header fields, peer, listener, security
//! protocol, principal), to the API's module → that module acts on [`broker::Broker`]
//! (topics, logs in `rivulet-storage`, metadata in `rivulet-metadata`) → the response is
//! encoded and written before the next request on that connection is read. On a
//! `SASL_PLAINTEXT` listener, [`security`]'s authenticator runs first and sets the principal.
//!
//! The optional web console ([`console`]) reads the same state over HTTP, read-only.
//!
//! This crate never touches RocksDB directly and never panics on client input: every
//! malformed request ends in a Kafka error code or a logged, closed connection.

mod background;
pub mod broker;
pub mod cleaner;
pub mod config;
pub mod connection;
pub mod console;
mod handlers;
pub mod membership;
pub mod metrics;
pub mod producer_expiry;
pub mod quota;
pub mod replication;
pub mod request_context;
pub mod retention;
pub mod security;
pub mod server;
pub mod telemetry;
pub mod topic_config;

// The coordinators live in their own crate; re-exported under the paths handlers use.
pub use rivulet_coordinator::{coordinator_partitions, group, internal_topic, txn};

pub use broker::Broker;
pub use config::BrokerConfig;
