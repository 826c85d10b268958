//! ApiVersions (key 18): the versions of every API Rivulet serves.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use rivulet_protocol::response::advertised_api_versions;

use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(broker: &Arc<Broker>, _ctx: &RequestContext, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut keys = advertised_api_versions();
    if broker.config.metrics_listener.is_none() {
        // Pushed client metrics are shown on the Prometheus endpoint: without one, clients
        // are not asked for them (Kafka offers these APIs only with a receiver plugin).
        let telemetry = [ApiKey::GetTelemetrySubscriptions as i16, ApiKey::PushTelemetry as i16];
        keys.retain(|k| !telemetry.contains(&k.api_key));
    }
    // Feature flags (v3+) stay empty: Rivulet has no finalized features to report.
    ApiVersionsResponse::default().with_api_keys(keys)
}
