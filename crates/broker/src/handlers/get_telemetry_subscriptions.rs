//! GetTelemetrySubscriptions (key 71, KIP-714): which metrics a client should push and how
//! often, from the client-metrics subscriptions matching it (see [`crate::telemetry`]).

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse};

use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: GetTelemetrySubscriptionsRequest,
) -> GetTelemetrySubscriptionsResponse {
    broker.telemetry.get_subscriptions(ctx, &request)
}
