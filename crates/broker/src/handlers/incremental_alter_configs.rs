//! IncrementalAlterConfigs (key 44): SET / DELETE / APPEND / SUBTRACT on single topic
//! configs, on dynamic broker configs (a broker id, or `""` for the cluster default) and on
//! client-metrics subscriptions (`kafka-client-metrics --alter`, KIP-714), as
//! `kafka-configs --alter --add-config / --delete-config` and the admin clients send them
//! (Kafka's `ConfigAdminManager.incrementalAlterConfigs`). Per-resource errors:
//! UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG for a name or value Kafka refuses,
//! INVALID_REQUEST for duplicate keys or an unknown operation.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use rivulet_protocol::kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{
    alter_broker, alter_client_metrics, alter_denied, alter_topic, apply_broker_incremental,
    apply_client_metrics_incremental, unsupported_resource, RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_TOPIC,
};
use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::topic_config;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let changes: Vec<(String, i8, Option<String>)> = resource
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.config_operation, c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let denied = alter_denied(broker, ctx, resource.resource_type, &name);
        let outcome = match resource.resource_type {
            _ if denied.is_some() => denied,
            RESOURCE_TOPIC => {
                alter_topic(broker, &name, request.validate_only, |current| {
                    topic_config::apply_incremental(current, &changes)
                })
                .await
            }
            RESOURCE_BROKER => {
                alter_broker(broker, &name, request.validate_only, |current| {
                    apply_broker_incremental(current, &changes)
                })
                .await
            }
            RESOURCE_CLIENT_METRICS => {
                alter_client_metrics(broker, &name, request.validate_only, |current| {
                    apply_client_metrics_incremental(current, &changes)
                })
                .await
            }
            other => unsupported_resource(other),
        };
        let (code, message) = outcome.map_or((0, None), |(error, message)| (error.code(), Some(str_bytes(message))));
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
