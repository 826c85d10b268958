//! DescribeCluster (key 60): cluster id, controller and brokers, as the admin client's
//! `describeCluster()` asks.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rivulet_protocol::kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

/// `endpoint_type` values (KIP-919).
const ENDPOINT_BROKERS: i8 = 1;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id()));
    if request.endpoint_type != ENDPOINT_BROKERS {
        // A broker answers for brokers only, as Kafka's brokers do.
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("The target broker only supports broker endpoints")));
    }
    response.brokers = broker
        .brokers_for(&ctx.listener_name)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(str_bytes(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = broker.authorized_operations(
            ctx,
            rivulet_metadata::ResourceType::Cluster,
            crate::security::authorizer::CLUSTER_NAME,
        );
    }
    response
}
