//! ApiVersions (key 18): the versions of every API Rivulet serves.

use rivulet_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use rivulet_protocol::response::advertised_api_versions;

pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    // Feature flags (v3+) stay empty: Rivulet has no finalized features to report.
    ApiVersionsResponse::default().with_api_keys(advertised_api_versions())
}
