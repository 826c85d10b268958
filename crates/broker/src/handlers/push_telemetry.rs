//! PushTelemetry (key 72, KIP-714): a client's metrics, shown on the Prometheus endpoint
//! by client instance (see [`crate::telemetry`]).

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{PushTelemetryRequest, PushTelemetryResponse};

use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: PushTelemetryRequest) -> PushTelemetryResponse {
    broker.telemetry.push(ctx, &request)
}
