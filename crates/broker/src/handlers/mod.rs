//! One module per Kafka API, each the same shape: take the decoded request, validate,
//! act on the broker, build the response. [`handle`] routes a request to its module.
//!
//! Every module exposes
//! `handle(broker: &Arc<Broker>, ctx: &RequestContext, request: <Api>Request) -> R`,
//! `async` only when it awaits. The request's version, client and connection facts come
//! from the [`RequestContext`], never from extra arguments. `R` is the API's own
//! `<Api>Response`, which the connection always sends; only a handler that may answer
//! nothing or must close the connection returns [`Reply`] (Produce: acks=0 has no
//! response, and a failed acks=0 produce closes the connection, as in Kafka).
//!
//! The routing is one table (`dispatch_table!` below): adding an API is a module and a
//! row, and a test holds the table equal to the APIs advertised in
//! `rivulet_protocol::versions::SUPPORTED_APIS`.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_replica_log_dirs;
mod alter_user_scram_credentials;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod get_telemetry_subscriptions;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod push_telemetry;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use std::future::Future;
use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::ApiKey;
use rivulet_protocol::kafka_protocol::protocol::StrBytes;
use rivulet_protocol::{RequestKind, ResponseError, ResponseKind};

use crate::broker::Broker;
use crate::request_context::RequestContext;

pub(crate) use fetch::{follower_id, throttle_fetch_for_request_time};

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    Response(Box<ResponseKind>),
    /// acks=0 produce: the client expects nothing.
    NoResponse,
    /// Close the connection (e.g. an acks=0 produce that failed, as Kafka does).
    Close(String),
}

/// A handler's result, as the connection acts on it: an API's response type is always
/// answered; a handler returning [`Reply`] itself decides.
trait IntoReply {
    fn into_reply(self) -> Reply;
}

impl IntoReply for Reply {
    fn into_reply(self) -> Reply {
        self
    }
}

impl<T: Into<ResponseKind>> IntoReply for T {
    fn into_reply(self) -> Reply {
        Reply::Response(Box::new(self.into()))
    }
}

/// Generates, from one row per API, both [`handle`] (the routing) and [`ROUTED_APIS`] (the
/// keys it routes), so the two cannot disagree. A row is `Variant => module`, or
/// `Variant => module.await` for a handler that is `async`: `Variant` names the API in both
/// `ApiKey` and `RequestKind`, and `module::handle(broker, ctx, request)` serves it.
macro_rules! dispatch_table {
    ($($variant:ident => $module:ident $(.$await_:ident)?),* $(,)?) => {
        /// Every API [`handle`] routes to a handler, in table order. Only the test below
        /// reads it today; it is the table's answer to "which APIs have a handler".
        #[cfg_attr(not(test), allow(dead_code))]
        pub(crate) const ROUTED_APIS: &[ApiKey] = &[$(ApiKey::$variant),*];

        /// Routes one decoded request to its handler.
        pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, body: RequestKind) -> Reply {
            match body {
                $(RequestKind::$variant(request) => $module::handle(broker, ctx, request)$(.$await_)?.into_reply(),)*
                // The protocol layer only lets through APIs listed in
                // `versions::SUPPORTED_APIS`, which a test holds equal to the table.
                _ => Reply::Close(format!("no handler for {:?}", ctx.api_key)),
            }
        }
    };
}

dispatch_table! {
    ApiVersions => api_versions,
    Metadata => metadata.await,
    DescribeTopicPartitions => describe_topic_partitions,
    Produce => produce.await,
    Fetch => fetch.await,
    ListOffsets => list_offsets,
    CreateTopics => create_topics.await,
    DeleteTopics => delete_topics.await,
    CreatePartitions => create_partitions.await,
    InitProducerId => init_producer_id.await,
    OffsetForLeaderEpoch => offset_for_leader_epoch,
    DescribeConfigs => describe_configs,
    AlterConfigs => alter_configs.await,
    IncrementalAlterConfigs => incremental_alter_configs.await,
    DeleteRecords => delete_records.await,
    DescribeLogDirs => describe_log_dirs,
    AlterReplicaLogDirs => alter_replica_log_dirs,
    DescribeQuorum => describe_quorum,
    ListConfigResources => list_config_resources,
    GetTelemetrySubscriptions => get_telemetry_subscriptions,
    PushTelemetry => push_telemetry,
    DescribeCluster => describe_cluster,
    ElectLeaders => elect_leaders.await,
    AlterPartitionReassignments => alter_partition_reassignments.await,
    ListPartitionReassignments => list_partition_reassignments,
    FindCoordinator => find_coordinator,
    JoinGroup => join_group.await,
    SyncGroup => sync_group.await,
    Heartbeat => heartbeat,
    LeaveGroup => leave_group.await,
    OffsetCommit => offset_commit.await,
    OffsetFetch => offset_fetch,
    OffsetDelete => offset_delete,
    ListGroups => list_groups,
    DescribeGroups => describe_groups,
    DeleteGroups => delete_groups,
    ConsumerGroupHeartbeat => consumer_group_heartbeat.await,
    ConsumerGroupDescribe => consumer_group_describe,
    AddPartitionsToTxn => add_partitions_to_txn.await,
    AddOffsetsToTxn => add_offsets_to_txn.await,
    EndTxn => end_txn.await,
    TxnOffsetCommit => txn_offset_commit.await,
    DescribeTransactions => describe_transactions,
    ListTransactions => list_transactions,
    WriteTxnMarkers => write_txn_markers.await,
    SaslHandshake => sasl_handshake,
    SaslAuthenticate => sasl_authenticate,
    DescribeUserScramCredentials => describe_user_scram_credentials.await,
    AlterUserScramCredentials => alter_user_scram_credentials.await,
    DescribeAcls => describe_acls,
    CreateAcls => create_acls.await,
    DeleteAcls => delete_acls.await,
    DescribeClientQuotas => describe_client_quotas,
    AlterClientQuotas => alter_client_quotas.await,
}

/// How long a group's stored state may take to reach its partition's in-sync replicas.
const GROUP_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until what the group coordinator wrote for `group` so far is in the ISR of the
/// group's `__consumer_offsets` partition, as Kafka's coordinator answers a membership
/// change only once its records are committed: a coordinator failover then still knows
/// the generation and members it answered with. `None` when stored; otherwise
/// COORDINATOR_NOT_AVAILABLE (not replicated in time) or NOT_COORDINATOR (leadership moved).
pub(crate) async fn group_stored(broker: &Broker, group: &str) -> Option<ResponseError> {
    let partition = broker.groups.partition_of(group);
    broker.replicas.await_replicated(crate::group::persist::OFFSETS_TOPIC, partition, GROUP_STORE_TIMEOUT).await
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rivulet_protocol::versions::SUPPORTED_APIS;

    use super::*;

    /// An API advertised without a row would be decoded and then closed on as "no
    /// handler"; a row for an API not advertised could never be reached.
    #[test]
    fn routed_apis_are_exactly_the_supported_apis() {
        let routed: BTreeSet<i16> = ROUTED_APIS.iter().map(|&key| key as i16).collect();
        assert_eq!(routed.len(), ROUTED_APIS.len(), "an API has two rows in the dispatch table");
        let supported: BTreeSet<i16> = SUPPORTED_APIS.iter().map(|api| api.key as i16).collect();
        let name = |key: &i16| ApiKey::try_from(*key).map_or_else(|()| key.to_string(), |k| format!("{k:?}"));
        let unrouted: Vec<String> = supported.difference(&routed).map(name).collect();
        let unadvertised: Vec<String> = routed.difference(&supported).map(name).collect();
        assert!(unrouted.is_empty(), "advertised in SUPPORTED_APIS without a handler: {unrouted:?}");
        assert!(unadvertised.is_empty(), "routed to a handler but not in SUPPORTED_APIS: {unadvertised:?}");
    }
}
