//! One module per Kafka API, each the same shape: take the decoded request, validate,
//! act on the broker, build the response. [`handle`] routes a request to its module.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_transactions;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::RequestHeader;
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::{RequestKind, ResponseError, ResponseKind};

use crate::broker::Broker;

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    Response(Box<ResponseKind>),
    /// acks=0 produce: the client expects nothing.
    NoResponse,
    /// Close the connection (e.g. an acks=0 produce that failed, as Kafka does).
    Close(String),
}

/// Routes one decoded request to its handler.
pub async fn handle(broker: &Arc<Broker>, header: &RequestHeader, body: RequestKind, peer: SocketAddr) -> Reply {
    let version = header.request_api_version;
    let response = match body {
        RequestKind::ApiVersions(req) => ResponseKind::ApiVersions(api_versions::handle(req, version)),
        RequestKind::Metadata(req) => ResponseKind::Metadata(metadata::handle(broker, req, version).await),
        RequestKind::Produce(req) => return produce::handle(broker, req, version).await,
        RequestKind::Fetch(req) => ResponseKind::Fetch(fetch::handle(broker, req, version).await),
        RequestKind::ListOffsets(req) => ResponseKind::ListOffsets(list_offsets::handle(broker, req, version)),
        RequestKind::CreateTopics(req) => ResponseKind::CreateTopics(create_topics::handle(broker, req, version).await),
        RequestKind::DeleteTopics(req) => ResponseKind::DeleteTopics(delete_topics::handle(broker, req, version).await),
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, req, version).await)
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, req))
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, req, version))
        }
        RequestKind::DescribeCluster(req) => ResponseKind::DescribeCluster(describe_cluster::handle(broker, req)),
        RequestKind::FindCoordinator(req) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(broker, req, version))
        }
        RequestKind::JoinGroup(req) => {
            ResponseKind::JoinGroup(join_group::handle(broker, header, req, peer, version).await)
        }
        RequestKind::SyncGroup(req) => ResponseKind::SyncGroup(sync_group::handle(broker, req, version).await),
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(heartbeat::handle(broker, req)),
        RequestKind::LeaveGroup(req) => ResponseKind::LeaveGroup(leave_group::handle(broker, req, version)),
        RequestKind::OffsetCommit(req) => ResponseKind::OffsetCommit(offset_commit::handle(broker, req).await),
        RequestKind::OffsetFetch(req) => ResponseKind::OffsetFetch(offset_fetch::handle(broker, req, version)),
        RequestKind::OffsetDelete(req) => ResponseKind::OffsetDelete(offset_delete::handle(broker, req)),
        RequestKind::ListGroups(req) => ResponseKind::ListGroups(list_groups::handle(broker, req, version)),
        RequestKind::DescribeGroups(req) => ResponseKind::DescribeGroups(describe_groups::handle(broker, req, version)),
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(create_partitions::handle(broker, req).await)
        }
        RequestKind::DeleteGroups(req) => ResponseKind::DeleteGroups(delete_groups::handle(broker, req)),
        RequestKind::AddPartitionsToTxn(req) => {
            ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(broker, req, version))
        }
        RequestKind::AddOffsetsToTxn(req) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(broker, req, version))
        }
        RequestKind::EndTxn(req) => ResponseKind::EndTxn(end_txn::handle(broker, req, version).await),
        RequestKind::TxnOffsetCommit(req) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(broker, req, version))
        }
        RequestKind::DescribeTransactions(req) => {
            ResponseKind::DescribeTransactions(describe_transactions::handle(broker, req))
        }
        RequestKind::ListTransactions(req) => ResponseKind::ListTransactions(list_transactions::handle(broker, req)),
        RequestKind::ElectLeaders(req) => ResponseKind::ElectLeaders(elect_leaders::handle(broker, req, version).await),
        RequestKind::WriteTxnMarkers(req) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(broker, req).await)
        }
        // The protocol layer only lets through APIs listed in `versions::SUPPORTED_APIS`,
        // all of which are matched above.
        other => return Reply::Close(format!("no handler for {other:?}")),
    };
    Reply::Response(Box::new(response))
}

/// Runs `work` (a change that waits on the cluster: etcd, the sync applying it) on a task
/// of its own and waits for its outcome until `deadline`. Past it the client gets
/// REQUEST_TIMED_OUT, as from Kafka's controller, while the work goes on: a metadata change
/// is never abandoned between its etcd write and the local copy following it, so the
/// client may find it applied later.
pub(crate) async fn until_deadline<T: Send + 'static>(
    deadline: tokio::time::Instant,
    what: &'static str,
    subject: &str,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, ResponseError> {
    let task = tokio::spawn(work);
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => {
            tracing::error!(operation = what, subject, error = %e, "request task failed");
            Err(ResponseError::UnknownServerError)
        }
        Err(_) => {
            tracing::debug!(
                operation = what,
                subject,
                "answering REQUEST_TIMED_OUT: the cluster did not finish in time; the change goes on"
            );
            Err(ResponseError::RequestTimedOut)
        }
    }
}

/// The instant `timeout_ms` (a request's own field; negative counts as 0) from now.
pub(crate) fn deadline_in(timeout_ms: i32) -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms.max(0) as u64)
}

/// `ResponseError` as the wire's `error_code`; `None` is success.
pub(crate) fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// PRODUCER_FENCED exists from the request version `since` on (KIP-588); older versions
/// get INVALID_PRODUCER_EPOCH for it, as Kafka answers them.
pub(crate) fn fenced_error(error: ResponseError, version: i16, since: i16) -> ResponseError {
    if error == ResponseError::ProducerFenced && version < since {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}

/// Kafka's leader-epoch fencing for requests carrying `current_leader_epoch`
/// (KIP-320): -1 means the client does not know it.
pub(crate) fn check_leader_epoch(requested: i32, current: i32) -> Option<ResponseError> {
    if requested < 0 || requested == current {
        None
    } else if requested > current {
        Some(ResponseError::UnknownLeaderEpoch)
    } else {
        Some(ResponseError::FencedLeaderEpoch)
    }
}
