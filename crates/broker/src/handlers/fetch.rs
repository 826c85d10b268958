//! Fetch (key 1): read batches for each requested partition, long-polling until
//! `min_bytes` are available or `max_wait_ms` has passed.
//!
//! A fetch naming a `replica_id` comes from a follower: it reads up to the log end, and
//! its fetch offset tells the leader how far that follower has replicated, which moves the
//! high watermark and may return the follower to the ISR. Consumers read up to the high
//! watermark (or the last stable offset). Only the leader serves a partition.
//!
//! With an authorizer a consumer needs READ on each topic, a follower CLUSTER_ACTION on
//! the cluster; partitions of a denied topic get TOPIC_AUTHORIZATION_FAILED, as in Kafka.
//!
//! Sessions (KIP-227) are not kept: every response carries session id 0, which tells the
//! Java client to keep sending full fetch requests. Only partitions the client asked for
//! are ever returned, in the order it asked.

use std::sync::Arc;
use std::time::Duration;

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::fetch_response::AbortedTransaction;
use rivulet_protocol::kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use rivulet_protocol::kafka_protocol::messages::ProducerId;
use rivulet_protocol::kafka_protocol::messages::{FetchRequest, FetchResponse};
use rivulet_protocol::ResponseError;
use rivulet_storage::{Isolation, StorageError};
use tokio::time::Instant;

use super::{check_leader_epoch, code};
use crate::broker::Broker;
use crate::metrics::METRICS;
use crate::quota::QuotaType;
use crate::request_context::RequestContext;

/// `isolation_level` of a read_committed consumer.
const READ_COMMITTED: i8 = 1;
/// Longest wait honoured, whatever the client asks (Kafka bounds it by the request timeout).
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

fn partition_error(index: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_aborted_transactions(None)
}

/// The broker id of a follower's fetch, or `None` for a consumer.
pub(crate) fn follower_id(request: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= 15 { request.replica_state.replica_id.0 } else { request.replica_id.0 };
    (id >= 0).then_some(id)
}

/// Which of the request's topics (by position) the principal may not read; empty when
/// every one may be read.
fn denied_topics(broker: &Broker, ctx: &RequestContext, request: &FetchRequest) -> Vec<bool> {
    if broker.authorizer.is_none() {
        return Vec::new();
    }
    if follower_id(request, ctx.api_version).is_some() {
        let allowed = broker.authorized_cluster(ctx, AclOperation::ClusterAction);
        return vec![!allowed; request.topics.len()];
    }
    request
        .topics
        .iter()
        .map(|wanted| {
            let name = if ctx.api_version >= 13 {
                match broker.replicas.topics.get_by_id(&wanted.topic_id) {
                    Some(topic) => topic.record.name.clone(),
                    // An unknown id stays UNKNOWN_TOPIC_ID.
                    None => return false,
                }
            } else {
                wanted.topic.0.to_string()
            };
            !broker.authorized(ctx, AclOperation::Read, ResourceType::Topic, &name)
        })
        .collect()
}

/// One pass over every requested partition. Returns the response and the bytes it holds.
fn read_once(
    broker: &Arc<Broker>,
    request: &FetchRequest,
    version: i16,
    denied: &[bool],
) -> (FetchResponse, usize, bool) {
    let mut remaining = usize::try_from(request.max_bytes).unwrap_or(0);
    let mut total = 0usize;
    let mut any_error = false;
    let mut high_watermark_moved = false;
    let follower = follower_id(request, version);
    let isolation = match follower {
        Some(_) => Isolation::Replica,
        None if request.isolation_level == READ_COMMITTED => Isolation::ReadCommitted,
        None => Isolation::ReadUncommitted,
    };
    let mut responses = Vec::with_capacity(request.topics.len());
    for (position, wanted) in request.topics.iter().enumerate() {
        if denied.get(position).copied().unwrap_or(false) {
            any_error = true;
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| partition_error(p.partition, ResponseError::TopicAuthorizationFailed))
                .collect();
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(wanted.topic.clone())
                    .with_topic_id(wanted.topic_id)
                    .with_partitions(partitions),
            );
            continue;
        }
        let topic = if version >= 13 {
            broker.replicas.topics.get_by_id(&wanted.topic_id)
        } else {
            broker.replicas.topics.get(wanted.topic.0.as_str())
        };
        let unknown =
            if version >= 13 { ResponseError::UnknownTopicId } else { ResponseError::UnknownTopicOrPartition };
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for p in &wanted.partitions {
            let Some((topic, replica)) = topic.as_ref().and_then(|t| t.replica(p.partition).map(|r| (t, r))) else {
                any_error = true;
                partitions.push(partition_error(p.partition, unknown));
                continue;
            };
            if !replica.is_leader() {
                any_error = true;
                partitions.push(partition_error(p.partition, ResponseError::NotLeaderOrFollower));
                continue;
            }
            if let Some(error) = check_leader_epoch(p.current_leader_epoch, replica.leader_epoch()) {
                any_error = true;
                partitions.push(partition_error(p.partition, error));
                continue;
            }
            let log = &replica.log;
            if let Some(follower) = follower {
                if let Some(isr) = replica.record_follower_fetch(follower, p.fetch_offset, p.log_start_offset) {
                    broker.membership.propose_isr(replica, isr);
                }
                high_watermark_moved |= replica.maybe_advance_high_watermark();
            }
            // A follower still catching up on a throttled replica (a reassignment's copy)
            // gets data only within `leader.replication.throttled.rate`.
            let throttle_rate = follower
                .filter(|f| {
                    crate::topic_config::throttles(
                        topic.record.configs.get("leader.replication.throttled.replicas"),
                        p.partition,
                        broker.replicas.node_id(),
                    ) && !replica.view().isr.contains(f)
                })
                .map(|_| broker.replicas.effective_config().leader_replication_throttled_rate);
            if throttle_rate.is_some_and(|rate| !broker.replicas.leader_throttle.allows(rate)) {
                partitions.push(
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(log.high_watermark())
                        .with_last_stable_offset(log.last_stable_offset())
                        .with_log_start_offset(log.log_start_offset())
                        .with_records(Some(Default::default())),
                );
                continue;
            }
            let limit = usize::try_from(p.partition_max_bytes).unwrap_or(0).min(remaining);
            // KIP-74: the first partition with data may exceed the limits by one batch.
            let min_one_batch = total == 0;
            let data = match log.read_with(p.fetch_offset, limit, min_one_batch, isolation) {
                Ok(data) => data,
                Err(StorageError::OffsetOutOfRange { log_start, log_end, .. }) => {
                    any_error = true;
                    partitions.push(
                        partition_error(p.partition, ResponseError::OffsetOutOfRange)
                            .with_high_watermark(log_end)
                            .with_last_stable_offset(log.last_stable_offset())
                            .with_log_start_offset(log_start),
                    );
                    continue;
                }
                Err(e) => {
                    tracing::error!(topic = %topic.record.name, partition = p.partition, error = %e, "read failed");
                    any_error = true;
                    partitions.push(partition_error(p.partition, ResponseError::KafkaStorageError));
                    continue;
                }
            };
            if let Some(rate) = throttle_rate {
                broker.replicas.leader_throttle.record(rate, data.records.len());
            }
            total += data.records.len();
            remaining = remaining.saturating_sub(data.records.len());
            partitions.push(
                PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_error_code(code(None))
                    .with_high_watermark(data.high_watermark)
                    .with_last_stable_offset(data.last_stable_offset)
                    .with_log_start_offset(data.log_start_offset)
                    // read_committed clients drop the records of these producers from each
                    // transaction's first offset up to its ABORT marker.
                    .with_aborted_transactions(data.aborted.map(|aborted| {
                        aborted
                            .iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset)
                            })
                            .collect()
                    }))
                    .with_records(Some(data.records)),
            );
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_topic_id(wanted.topic_id)
                .with_partitions(partitions),
        );
    }
    METRICS.bytes_out.inc_by(total as u64);
    if high_watermark_moved {
        // acks=all produces and consumers waiting for committed records.
        broker.replicas.notify_append();
    }
    (FetchResponse::default().with_responses(responses), total, any_error)
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: FetchRequest) -> FetchResponse {
    let version = ctx.api_version;
    if request.session_id != 0 {
        // We never hand out sessions, so any id the client names is unknown.
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    // Subscribe before reading so an append between the read and the wait is not missed.
    let mut appended = broker.replicas.subscribe_appends();
    let denied = denied_topics(broker, ctx, &request);
    // A consumer under a byte-rate quota reads at most what the quota allows in a window.
    let mut request = request;
    if follower_id(&request, version).is_none() {
        if let Some(max) = broker.quotas.max_in_window(QuotaType::Fetch, &ctx.principal.name, ctx.client_id.as_str()) {
            request.max_bytes = request.max_bytes.min(i32::try_from(max).unwrap_or(i32::MAX).max(1));
        }
    }
    let (response, bytes) = loop {
        let (response, bytes, any_error) = read_once(broker, &request, version, &denied);
        if bytes >= min_bytes || any_error || Instant::now() >= deadline || request.topics.is_empty() {
            break (response, bytes);
        }
        match tokio::time::timeout_at(deadline, appended.changed()).await {
            Ok(Ok(())) => continue,
            // Deadline reached (or the broker is shutting down): answer with what is there.
            Ok(Err(_)) | Err(_) => {
                let (response, bytes, _) = read_once(broker, &request, version, &denied);
                break (response, bytes);
            }
        }
    };
    throttled(broker, ctx, &request, response, bytes)
}

/// Applies a consumer's byte-rate quota, as Kafka's `handleFetchRequest`: a fetch that
/// would take the client over its quota is answered without records (and its bytes not
/// counted) and with the time to wait; the connection then waits it out.
fn throttled(
    broker: &Broker,
    ctx: &RequestContext,
    request: &FetchRequest,
    response: FetchResponse,
    bytes: usize,
) -> FetchResponse {
    if broker.quotas.is_empty() || follower_id(request, ctx.api_version).is_some() {
        return response;
    }
    let throttle = broker.quotas.record(QuotaType::Fetch, &ctx.principal.name, ctx.client_id.as_str(), bytes);
    if throttle.is_zero() {
        return response;
    }
    broker.quotas.unrecord(QuotaType::Fetch, &ctx.principal.name, ctx.client_id.as_str(), bytes);
    let throttle_ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
    FetchResponse::default().with_throttle_time_ms(throttle_ms)
}

/// A consumer's fetch throttled for its request time (`request_percentage`) is answered
/// without records, as Kafka answers any throttled fetch; the bytes it would have served
/// are taken back from its byte-rate quota (Kafka's `unrecordQuotaSensor`).
pub(crate) fn throttle_fetch_for_request_time(broker: &Broker, ctx: &RequestContext, response: &mut FetchResponse) {
    let bytes: usize = response
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .map(|partition| partition.records.as_ref().map_or(0, |records| records.len()))
        .sum();
    if bytes > 0 {
        broker.quotas.unrecord(QuotaType::Fetch, &ctx.principal.name, ctx.client_id.as_str(), bytes);
    }
    *response = FetchResponse::default().with_error_code(response.error_code);
}
