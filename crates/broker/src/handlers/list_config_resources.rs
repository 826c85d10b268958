//! ListConfigResources (key 74; v0 was ListClientMetricsResources, KIP-714): the config
//! resources that exist, as `Admin.listConfigResources` (KIP-1142) and
//! `kafka-client-metrics --list` ask.
//!
//! Listed as Kafka's `KafkaApis.handleListConfigResources` lists them, by type in Kafka's
//! order (groups, client metrics, broker loggers, brokers, topics). Rivulet has no group
//! configs and no broker-logger config resource (DescribeConfigs refuses that type), so
//! those types are accepted and list nothing; client-metrics subscriptions are listed by
//! name; the brokers are those with an endpoint on the request's listener, and every topic
//! is listed, internal ones included.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::list_config_resources_response::ConfigResource;
use rivulet_protocol::kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

/// Kafka's `ConfigResource.Type` codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// The types a v1 request may name (`ListConfigResourcesRequest.supportedResourceTypes()`).
const SUPPORTED_TYPES: [i8; 5] = [GROUP, CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC];

/// Which types to list: v0 means client metrics only; v1 lists the named types, or every
/// type for an empty list. `None` when a named type is not one Kafka supports, which fails
/// the whole request.
fn types_to_list(version: i16, requested: &[i8]) -> Option<Vec<i8>> {
    if version == 0 {
        return Some(vec![CLIENT_METRICS]);
    }
    if requested.iter().any(|t| !SUPPORTED_TYPES.contains(t)) {
        return None;
    }
    Some(SUPPORTED_TYPES.iter().copied().filter(|t| requested.is_empty() || requested.contains(t)).collect())
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    // DESCRIBE_CONFIGS on the cluster, as Kafka checks.
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::DescribeConfigs) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let Some(types) = types_to_list(ctx.api_version, &request.resource_types) else {
        return ListConfigResourcesResponse::default().with_error_code(ResponseError::UnsupportedVersion.code());
    };
    let resource = |resource_type: i8, name: String| {
        ConfigResource::default().with_resource_type(resource_type).with_resource_name(str_bytes(name))
    };
    let mut resources = Vec::new();
    for resource_type in types {
        match resource_type {
            BROKER => {
                let mut ids: Vec<i32> = broker.brokers_for(&ctx.listener_name).iter().map(|b| b.node_id).collect();
                ids.sort_unstable();
                resources.extend(ids.into_iter().map(|id| resource(BROKER, id.to_string())));
            }
            CLIENT_METRICS => resources
                .extend(broker.telemetry.subscriptions().into_keys().map(|name| resource(CLIENT_METRICS, name))),
            TOPIC => resources.extend(
                broker.replicas.topics.all().into_iter().map(|topic| resource(TOPIC, topic.record.name.clone())),
            ),
            // Nothing of these kinds exists in Rivulet (see the module comment).
            _ => {}
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_0_lists_client_metrics_only() {
        assert_eq!(types_to_list(0, &[]), Some(vec![CLIENT_METRICS]));
    }

    #[test]
    fn an_empty_list_is_every_type_in_kafkas_order() {
        assert_eq!(types_to_list(1, &[]), Some(vec![GROUP, CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC]));
    }

    #[test]
    fn named_types_are_listed_once_in_kafkas_order() {
        assert_eq!(types_to_list(1, &[TOPIC, BROKER, TOPIC]), Some(vec![BROKER, TOPIC]));
    }

    #[test]
    fn an_unknown_type_fails_the_whole_request() {
        assert_eq!(types_to_list(1, &[TOPIC, 64]), None);
        assert_eq!(types_to_list(1, &[1]), None);
    }
}
