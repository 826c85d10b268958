//! CreatePartitions (key 37): grow a topic's partition count (`kafka-topics --alter
//! --partitions N`). Partitions can only be added, as in Kafka. Needs ALTER on the topic.

use std::collections::HashSet;

use rivulet_metadata::{AclOperation, MetadataError, ResourceType};
use rivulet_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use rivulet_protocol::kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use rivulet_protocol::ResponseError;

use std::sync::Arc;

use super::{deadline_in, str_bytes, until_deadline};
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let deadline = deadline_in(request.timeout_ms);
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        request.topics.iter().map(|t| t.name.0.to_string()).filter(|n| !seen.insert(n.clone())).collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let refuse = |error: ResponseError, message: String| {
            CreatePartitionsTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message)))
        };
        if duplicates.contains(&name) {
            results.push(refuse(ResponseError::InvalidRequest, format!("Duplicate topic in request: {name}")));
            continue;
        }
        if !broker.authorized(ctx, AclOperation::Alter, ResourceType::Topic, &name) {
            results.push(refuse(ResponseError::TopicAuthorizationFailed, "Authorization failed.".to_string()));
            continue;
        }
        let Some(existing) = broker.replicas.topics.get(&name) else {
            results.push(refuse(ResponseError::UnknownTopicOrPartition, format!("The topic '{name}' does not exist.")));
            continue;
        };
        let current = existing.logs.len() as i32;
        if topic.count <= current {
            results.push(refuse(
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {current} partitions, which is higher than the requested {}.",
                    topic.count
                ),
            ));
            continue;
        }
        if let Some(assignments) = &topic.assignments {
            let node = broker.config.node_id;
            if assignments.len() as i32 != topic.count - current {
                results.push(refuse(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Increasing the number of partitions by {} but {} assignments provided.",
                        topic.count - current,
                        assignments.len()
                    ),
                ));
                continue;
            }
            if assignments.iter().any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != node) {
                results.push(refuse(
                    ResponseError::InvalidReplicaAssignment,
                    "Each new partition must have exactly one replica on this broker".into(),
                ));
                continue;
            }
        }
        if request.validate_only {
            results.push(result);
            continue;
        }
        let (growing, count, subject) = (broker.clone(), topic.count, name.clone());
        let grown = until_deadline(deadline, "CreatePartitions", &name, async move {
            growing.add_partitions(&subject, count).await
        })
        .await;
        match grown {
            Err(error) => results.push(refuse(
                error,
                format!("Partitions of '{name}' were not added within the request's timeout; they may still be added."),
            )),
            Ok(Ok(_)) => results.push(result),
            Ok(Err(MetadataError::PartitionsNotIncreased { current, requested })) => results.push(refuse(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than the requested {requested}."),
            )),
            Ok(Err(e)) => {
                tracing::error!(topic = %name, error = %e, "adding partitions failed");
                results.push(refuse(ResponseError::UnknownServerError, e.to_string()));
            }
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
