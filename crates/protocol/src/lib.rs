//! # rivulet-protocol
//!
//! The Kafka wire protocol as Rivulet speaks it, with no I/O and no policy:
//!
//! * [`frame`] — the 4-byte length prefix, checked against a limit *before* anything is
//!   allocated for the body.
//! * [`request`] — turns one frame into a request header plus a typed request body
//!   (via the `kafka-protocol` crate), including the KIP-511 ApiVersions fallback.
//! * [`response`] — encodes a typed response with the right header version.
//! * [`versions`] — the one table of API versions Rivulet implements and advertises.
//! * [`client`] — the other direction, for broker-to-broker calls: requests encoded with
//!   their header, responses decoded.
//! * [`coordinator_records`] — Kafka's record formats for `__consumer_offsets` and
//!   `__transaction_state` (`OffsetCommitKey`/`Value`, `GroupMetadataKey`/`Value`,
//!   `TransactionLogKey`/`Value`), canonical and versioned, so Kafka's tools read them.
//! * [`record_batch`] — the v2 record-batch header: parsing, CRC32C validation and the
//!   in-place patches a broker makes (base offset, leader epoch, LogAppendTime), so that
//!   batches are stored and served exactly as the client sent them; and
//!   [`record_batch::BatchBuilder`], the one way Rivulet composes a data batch.
//!
//! This crate must never touch sockets, disks or clocks: callers pass everything in.

pub mod client;
pub mod coordinator_records;
pub mod error;
pub mod frame;
pub mod record_batch;
pub mod request;
pub mod response;
pub mod versions;

pub use error::ProtocolError;
pub use kafka_protocol;
pub use kafka_protocol::error::ResponseError;
pub use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
