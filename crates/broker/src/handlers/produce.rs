//! Produce (key 0): validate each partition's batch, append it, answer with its offset.
//!
//! Mirrors Kafka's `KafkaApis.handleProduceRequest` / `ReplicaManager.appendRecords`:
//! each partition succeeds or fails on its own; acks=0 gets no response, and a failed
//! acks=0 request closes the connection so the client notices.
//!
//! With an authorizer: WRITE on the transactional id (if any) and on each topic, checked
//! before a topic's existence so an unauthorized client learns nothing about it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rivulet_metadata::{AclOperation, ResourceType};
use rivulet_protocol::kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use rivulet_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use rivulet_protocol::record_batch::{split_batches, BatchError};
use rivulet_protocol::{ResponseError, ResponseKind};
use rivulet_storage::{AppendError, AppendOptions, AppendOrigin};

use super::{str_bytes, Reply};
use crate::broker::Broker;
use crate::metrics::METRICS;
use crate::quota::QuotaType;
use crate::replication::replica::Replica;
use crate::replication::topics::Topic;
use crate::request_context::RequestContext;

/// An acks=all append waiting for the ISR to reach `end_offset`.
struct Pending {
    topic_index: usize,
    partition_index: usize,
    replica: Arc<Replica>,
    end_offset: i64,
    min_insync: usize,
}

/// The one place append failures become Kafka error codes.
pub(crate) fn append_error_code(error: &AppendError) -> ResponseError {
    match error {
        AppendError::Batch(BatchError::Corrupt(_)) => ResponseError::CorruptMessage,
        AppendError::Batch(BatchError::Invalid(_)) => ResponseError::InvalidRecord,
        AppendError::TooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        AppendError::TransactionCoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
        AppendError::Storage(_) => ResponseError::KafkaStorageError,
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn failed(index: i32, error: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_error_message(message.map(str_bytes))
}

/// KIP-467: a batch refused because of some of its records names them, so the client fails
/// exactly those (Kafka's `LogValidator` and `RecordValidationException`).
fn keyless_refused(topic: &str, index: i32, keyless: &[i32]) -> PartitionProduceResponse {
    let message = format!("Compacted topic cannot accept message without key in topic partition {topic}-{index}.");
    let errors: Vec<BatchIndexAndErrorMessage> = keyless
        .iter()
        .map(|&i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(str_bytes(&message)))
        })
        .collect();
    let shown: Vec<String> =
        keyless.iter().take(3).map(|i| format!("RecordError(batchIndex={i}, message='{message}')")).collect();
    let summary = format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        keyless.len(),
        shown.join(", ")
    );
    failed(index, ResponseError::InvalidRecord, Some(summary)).with_record_errors(errors)
}

fn append_partition(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    records: Option<bytes::Bytes>,
    transactional_id: Option<&str>,
    acks: i16,
) -> (PartitionProduceResponse, i64) {
    let Some(replica) = topic.replica(index) else {
        return (failed(index, ResponseError::UnknownTopicOrPartition, None), -1);
    };
    // A leader whose registration may have lapsed could already be replaced: refuse, as a
    // fenced Kafka leader does, rather than acknowledge what a new leader never sees.
    if !replica.is_leader() || !broker.membership.may_acknowledge() {
        return (failed(index, ResponseError::NotLeaderOrFollower, None), -1);
    }
    let view = replica.view();
    if acks == -1 && view.isr.len() < topic.settings.min_insync_replicas {
        let message = format!(
            "The size of the current ISR {:?} is insufficient to satisfy the min.isr requirement of {} for partition {}-{index}",
            view.isr, topic.settings.min_insync_replicas, topic.record.name
        );
        return (failed(index, ResponseError::NotEnoughReplicas, Some(message)), -1);
    }
    let log = &replica.log;
    let records = records.unwrap_or_default();
    let batches = match split_batches(&records) {
        Ok(batches) => batches,
        Err(e) => return (failed(index, ResponseError::CorruptMessage, Some(e.to_string())), -1),
    };
    // Produce v3+ carries exactly one batch per partition (Kafka's
    // `ProduceRequest.validateRecords`).
    if batches.len() != 1 {
        let message = format!(
            "Produce requests are only allowed to contain exactly one record batch per partition, got {}",
            batches.len()
        );
        return (failed(index, ResponseError::InvalidRecord, Some(message)), -1);
    }
    let batch = &batches[0];
    let header = rivulet_protocol::record_batch::BatchHeader::parse(batch).ok();
    let transaction = match (header.filter(|h| h.is_transactional()), transactional_id) {
        (Some(_), None) => {
            return (
                failed(
                    index,
                    ResponseError::InvalidTxnState,
                    Some("transactional batch without a transactional id".into()),
                ),
                -1,
            );
        }
        (Some(h), Some(id)) => Some((id, h.producer_id, h.producer_epoch)),
        (None, _) => None,
    };
    // A batch that does not decode is left to the append's validation, which names the fault.
    if topic.settings.compacted {
        if let Ok(keyless) = rivulet_protocol::record_batch::keyless_records(batch) {
            if !keyless.is_empty() {
                return (keyless_refused(&topic.record.name, index, &keyless), -1);
            }
        }
    }
    let options = AppendOptions {
        leader_epoch: view.leader_epoch,
        max_batch_bytes: topic.settings.max_message_bytes,
        log_append_time_ms: topic.settings.log_append_time.then(now_ms),
        origin: AppendOrigin::Client,
    };
    let appended = match transaction {
        // KIP-890: a transactional batch may only land in a partition of the producer's
        // open transaction, so a zombie or a late retry cannot reopen one. Only the
        // coordinator of the id can check; in a cluster it may be another broker.
        Some((id, producer_id, epoch)) if broker.txns.status(id).is_none() => {
            match broker
                .txns
                .append_verified(id, producer_id, epoch, &topic.record.name, index, || log.append(batch, &options))
            {
                Ok(appended) => appended,
                Err(error) => return (failed(index, error, Some(format!("{id}: {error}"))), -1),
            }
        }
        _ => log.append(batch, &options),
    };
    match appended {
        Ok(outcome) => {
            if !outcome.duplicate {
                METRICS.messages_in.inc_by(u64::try_from(outcome.last_offset - outcome.base_offset + 1).unwrap_or(0));
                METRICS.bytes_in.inc_by(batch.len() as u64);
            }
            if outcome.duplicate {
                tracing::debug!(topic = %topic.record.name, partition = index, offset = outcome.base_offset, "duplicate batch acknowledged");
            }
            // With the ISR just this leader, the batch is committed now.
            replica.maybe_advance_high_watermark();
            let response = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(outcome.base_offset)
                .with_log_append_time_ms(outcome.log_append_time_ms)
                .with_log_start_offset(outcome.log_start_offset);
            (response, outcome.last_offset + 1)
        }
        Err(e) => {
            METRICS.failed_produce.inc();
            let error = append_error_code(&e);
            if error == ResponseError::KafkaStorageError {
                tracing::error!(topic = %topic.record.name, partition = index, error = %e, "append failed");
            } else {
                tracing::debug!(topic = %topic.record.name, partition = index, error = %e, "batch refused");
            }
            (failed(index, error, Some(e.to_string())), -1)
        }
    }
}

/// Waits until every acks=all append is replicated to the ISR (Kafka's delayed produce),
/// failing those still short at `timeout` with REQUEST_TIMED_OUT, those whose leader moved
/// with NOT_LEADER_OR_FOLLOWER, and those whose ISR shrank below `min.insync.replicas`
/// meanwhile with NOT_ENOUGH_REPLICAS_AFTER_APPEND.
async fn await_replication(
    broker: &Broker,
    pending: Vec<Pending>,
    responses: &mut [TopicProduceResponse],
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting = broker.replicas.subscribe_appends();
    let mut remaining = pending;
    loop {
        remaining.retain(|p| {
            let response = &mut responses[p.topic_index].partition_responses[p.partition_index];
            let view = p.replica.view();
            // Leadership may have moved since the append, or this broker's registration
            // lapsed (a new leader may exist): do not acknowledge then.
            let fenced = !broker.membership.may_acknowledge();
            let outcome = if view.leader != broker.config.node_id || fenced {
                Some(Some(ResponseError::NotLeaderOrFollower))
            } else if p.replica.log.high_watermark() >= p.end_offset {
                Some((view.isr.len() < p.min_insync).then_some(ResponseError::NotEnoughReplicasAfterAppend))
            } else {
                None
            };
            match outcome {
                None => true,
                Some(None) => false,
                Some(Some(error)) => {
                    *response = failed(response.index, error, None);
                    false
                }
            }
        });
        if remaining.is_empty() {
            return;
        }
        match tokio::time::timeout_at(deadline, waiting.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    for p in remaining {
        let response = &mut responses[p.topic_index].partition_responses[p.partition_index];
        *response = failed(response.index, ResponseError::RequestTimedOut, None);
    }
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: ProduceRequest) -> Reply {
    let version = ctx.api_version;
    let acks = request.acks;
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    // Client quotas count the bytes a request carries (Kafka counts the whole request;
    // the record batches are nearly all of it).
    let throttle = if broker.quotas.is_empty() {
        Duration::ZERO
    } else {
        let bytes: usize = request
            .topic_data
            .iter()
            .flat_map(|t| t.partition_data.iter())
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        broker.quotas.record(QuotaType::Produce, &ctx.principal.name, ctx.client_id.as_str(), bytes)
    };
    let mut any_error = false;
    let mut any_appended = false;
    let mut pending = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let transactional_id_denied = transactional_id
        .as_deref()
        .is_some_and(|id| !broker.authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, id));
    for topic_data in request.topic_data {
        // v13+ (KIP-516) names topics by id.
        let topic = if version >= 13 {
            broker.replicas.topics.get_by_id(&topic_data.topic_id)
        } else {
            broker.replicas.topics.get(topic_data.name.0.as_str())
        };
        let unknown =
            if version >= 13 { ResponseError::UnknownTopicId } else { ResponseError::UnknownTopicOrPartition };
        let denied = if transactional_id_denied {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if broker.authorizer.is_some() {
            let name = topic.as_ref().map_or(topic_data.name.0.as_str(), |t| t.record.name.as_str());
            // v13 names topics by id only: an unknown id stays UNKNOWN_TOPIC_ID.
            let checkable = topic.is_some() || version < 13;
            (checkable && !broker.authorized(ctx, AclOperation::Write, ResourceType::Topic, name))
                .then_some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        let appended: Vec<(PartitionProduceResponse, i64)> = topic_data
            .partition_data
            .into_iter()
            .map(|p| {
                if !(-1..=1).contains(&acks) {
                    return (failed(p.index, ResponseError::InvalidRequiredAcks, None), -1);
                }
                if let Some(error) = denied {
                    return (failed(p.index, error, None), -1);
                }
                match &topic {
                    None => (failed(p.index, unknown, None), -1),
                    Some(topic) => {
                        append_partition(broker, topic, p.index, p.records, transactional_id.as_deref(), acks)
                    }
                }
            })
            .collect();
        let mut partitions = Vec::with_capacity(appended.len());
        for (partition_index, (p, end_offset)) in appended.into_iter().enumerate() {
            if p.error_code == 0 {
                any_appended = true;
                if acks == -1 {
                    if let Some((topic, replica)) = topic.as_ref().and_then(|t| t.replica(p.index).map(|r| (t, r))) {
                        pending.push(Pending {
                            topic_index: responses.len(),
                            partition_index,
                            replica: replica.clone(),
                            end_offset,
                            min_insync: topic.settings.min_insync_replicas,
                        });
                    }
                }
            } else {
                any_error = true;
            }
            // Per-record errors exist from v8 on (KIP-467).
            partitions.push(if version < 8 { p.with_record_errors(Vec::new()) } else { p });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if any_appended {
        broker.replicas.notify_append();
    }
    if acks == 0 {
        // No response to carry the throttle: the connection waits it out here, as Kafka
        // mutes the channel.
        if !throttle.is_zero() {
            tokio::time::sleep(throttle).await;
        }
        if any_error {
            return Reply::Close("acks=0 produce request failed on at least one partition".into());
        }
        return Reply::NoResponse;
    }
    if !pending.is_empty() {
        await_replication(broker, pending, &mut responses, timeout).await;
    }
    let throttle_ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
    Reply::Response(Box::new(ResponseKind::Produce(
        ProduceResponse::default().with_responses(responses).with_throttle_time_ms(throttle_ms),
    )))
}
