//! Produce (key 0): validate each partition's batch, append it, answer with its offset.
//!
//! Mirrors Kafka's `KafkaApis.handleProduceRequest` / `ReplicaManager.appendRecords`:
//! each partition succeeds or fails on its own; acks=0 gets no response, and a failed
//! acks=0 request closes the connection so the client notices.

use std::time::{SystemTime, UNIX_EPOCH};

use rivulet_protocol::kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use rivulet_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use rivulet_protocol::record_batch::{split_batches, BatchError};
use rivulet_protocol::{ResponseError, ResponseKind};
use rivulet_storage::{AppendError, AppendOptions, AppendOrigin};

use super::{str_bytes, Reply};
use crate::broker::Broker;
use crate::metrics::METRICS;
use crate::topics::Topic;

/// The one place append failures become Kafka error codes.
pub(crate) fn append_error_code(error: &AppendError) -> ResponseError {
    match error {
        AppendError::Batch(BatchError::Corrupt(_)) => ResponseError::CorruptMessage,
        AppendError::Batch(BatchError::Invalid(_)) => ResponseError::InvalidRecord,
        AppendError::TooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
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

fn append_partition(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    records: Option<bytes::Bytes>,
    transactional_id: Option<&str>,
) -> PartitionProduceResponse {
    let Some(log) = topic.partition(index) else {
        return failed(index, ResponseError::UnknownTopicOrPartition, None);
    };
    let records = records.unwrap_or_default();
    let batches = match split_batches(&records) {
        Ok(batches) => batches,
        Err(e) => return failed(index, ResponseError::CorruptMessage, Some(e.to_string())),
    };
    // Produce v3+ carries exactly one batch per partition (Kafka's
    // `ProduceRequest.validateRecords`).
    if batches.len() != 1 {
        let message = format!(
            "Produce requests are only allowed to contain exactly one record batch per partition, got {}",
            batches.len()
        );
        return failed(index, ResponseError::InvalidRecord, Some(message));
    }
    let batch = &batches[0];
    let header = rivulet_protocol::record_batch::BatchHeader::parse(batch).ok();
    let transaction = match (header.filter(|h| h.is_transactional()), transactional_id) {
        (Some(_), None) => {
            return failed(
                index,
                ResponseError::InvalidTxnState,
                Some("transactional batch without a transactional id".into()),
            );
        }
        (Some(h), Some(id)) => Some((id, h.producer_id, h.producer_epoch)),
        (None, _) => None,
    };
    // A batch that does not decode is left to the append's validation, which names the fault.
    if topic.settings.compacted && matches!(rivulet_protocol::record_batch::all_records_have_keys(batch), Ok(false)) {
        let message = "Compacted topic cannot accept message without key.".to_string();
        return failed(index, ResponseError::InvalidRecord, Some(message));
    }
    let options = AppendOptions {
        leader_epoch: topic.leader_epoch(index),
        max_batch_bytes: topic.settings.max_message_bytes,
        log_append_time_ms: topic.settings.log_append_time.then(now_ms),
        origin: AppendOrigin::Client,
    };
    let appended = match transaction {
        // KIP-890: a transactional batch may only land in a partition of the producer's
        // open transaction, so a zombie or a late retry cannot reopen one.
        Some((id, producer_id, epoch)) => {
            match broker
                .txns
                .append_verified(id, producer_id, epoch, &topic.record.name, index, || log.append(batch, &options))
            {
                Ok(appended) => appended,
                Err(error) => return failed(index, error, Some(format!("{id}: {error}"))),
            }
        }
        None => log.append(batch, &options),
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
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(outcome.base_offset)
                .with_log_append_time_ms(outcome.log_append_time_ms)
                .with_log_start_offset(outcome.log_start_offset)
        }
        Err(e) => {
            METRICS.failed_produce.inc();
            let error = append_error_code(&e);
            if error == ResponseError::KafkaStorageError {
                tracing::error!(topic = %topic.record.name, partition = index, error = %e, "append failed");
            } else {
                tracing::debug!(topic = %topic.record.name, partition = index, error = %e, "batch refused");
            }
            failed(index, error, Some(e.to_string()))
        }
    }
}

pub fn handle(broker: &Broker, request: ProduceRequest, version: i16) -> Reply {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    let mut any_error = false;
    let mut any_appended = false;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        // v13+ (KIP-516) names topics by id.
        let topic = if version >= 13 {
            broker.topics.get_by_id(&topic_data.topic_id)
        } else {
            broker.topics.get(topic_data.name.0.as_str())
        };
        let unknown =
            if version >= 13 { ResponseError::UnknownTopicId } else { ResponseError::UnknownTopicOrPartition };
        let partitions: Vec<PartitionProduceResponse> = topic_data
            .partition_data
            .into_iter()
            .map(|p| {
                if !(-1..=1).contains(&acks) {
                    return failed(p.index, ResponseError::InvalidRequiredAcks, None);
                }
                match &topic {
                    None => failed(p.index, unknown, None),
                    Some(topic) => append_partition(broker, topic, p.index, p.records, transactional_id.as_deref()),
                }
            })
            .collect();
        for p in &partitions {
            if p.error_code == 0 {
                any_appended = true;
            } else {
                any_error = true;
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if any_appended {
        broker.notify_append();
    }
    if acks == 0 {
        if any_error {
            return Reply::Close("acks=0 produce request failed on at least one partition".into());
        }
        return Reply::NoResponse;
    }
    Reply::Response(Box::new(ResponseKind::Produce(ProduceResponse::default().with_responses(responses))))
}
