//! DeleteTopics (key 20): by name (v1-v5) or by name or topic id (v6+). Needs DELETE on
//! the topic (TOPIC_AUTHORIZATION_FAILED, whether or not a named topic exists).

use rivulet_metadata::{AclOperation, MetadataError, ResourceType};
use rivulet_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use rivulet_protocol::kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use rivulet_protocol::ResponseError;
use uuid::Uuid;

use std::sync::Arc;

use super::{deadline_in, str_bytes, until_deadline};
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let version = ctx.api_version;
    let deadline = deadline_in(request.timeout_ms);
    let wanted: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        request.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        request.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, topic_id) in wanted {
        let topic = match &name {
            Some(n) => broker.replicas.topics.get(n.0.as_str()),
            None => broker.replicas.topics.get_by_id(&topic_id),
        };
        let result = DeletableTopicResult::default().with_name(name.clone()).with_topic_id(topic_id);
        let checked_name =
            name.as_ref().map(|n| n.0.to_string()).or_else(|| topic.as_ref().map(|t| t.record.name.clone()));
        if checked_name.is_some_and(|n| !broker.authorized(ctx, AclOperation::Delete, ResourceType::Topic, &n)) {
            responses.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some(topic) = topic else {
            let error =
                if name.is_none() { ResponseError::UnknownTopicId } else { ResponseError::UnknownTopicOrPartition };
            responses.push(result.with_error_code(error.code()));
            continue;
        };
        let result = result
            .with_name(Some(TopicName(str_bytes(topic.record.name.clone()))))
            .with_topic_id(topic.record.topic_id);
        if topic.record.internal {
            // Internal topics hold the coordinators' state; Kafka refuses to delete them too.
            responses.push(
                result
                    .with_error_code(ResponseError::TopicDeletionDisabled.code())
                    .with_error_message(Some(str_bytes(format!("Topic {} is an internal topic", topic.record.name)))),
            );
            continue;
        }
        if !broker.config.delete_topic_enable {
            responses.push(result.with_error_code(ResponseError::TopicDeletionDisabled.code()));
            continue;
        }
        let (deleting, name) = (broker.clone(), topic.record.name.clone());
        let deleted =
            until_deadline(
                deadline,
                "DeleteTopics",
                &topic.record.name,
                async move { deleting.delete_topic(&name).await },
            )
            .await;
        match deleted {
            Err(error) => responses.push(result.with_error_code(error.code())),
            Ok(Ok(())) => responses.push(result),
            Ok(Err(MetadataError::UnknownTopic(_))) => {
                responses.push(result.with_error_code(ResponseError::UnknownTopicOrPartition.code()))
            }
            Ok(Err(e)) => {
                tracing::error!(topic = %topic.record.name, error = %e, "deleting topic failed");
                responses.push(
                    result
                        .with_error_code(ResponseError::UnknownServerError.code())
                        .with_error_message(Some(str_bytes(e.to_string()))),
                );
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
