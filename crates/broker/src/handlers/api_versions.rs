//! ApiVersions (key 18): the versions of every API Rivulet serves.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use rivulet_protocol::response::advertised_api_versions;

use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(_broker: &Arc<Broker>, _ctx: &RequestContext, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    // Feature flags (v3+) stay empty: Rivulet has no finalized features to report.
    ApiVersionsResponse::default().with_api_keys(advertised_api_versions())
}
