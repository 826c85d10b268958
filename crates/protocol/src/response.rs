//! Encoding responses, size prefix included.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::versions::SUPPORTED_APIS;
use crate::{ProtocolError, ResponseError};

/// Encodes `body` as the response to a request of `version` with `correlation_id`, into a
/// buffer that starts with the 4-byte size prefix.
pub fn encode_response(correlation_id: i32, version: i16, body: &ResponseKind) -> Result<BytesMut, ProtocolError> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, body.header_version(version)).map_err(|e| ProtocolError::Encode(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| ProtocolError::Encode(e.to_string()))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| ProtocolError::Encode("response over 2 GiB".into()))?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// The `api_keys` list of an ApiVersions response.
pub fn advertised_api_versions() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.advertised_min)
                .with_max_version(api.max)
        })
        .collect()
}

/// The KIP-511 answer to an ApiVersions request of an unknown version: a v0 response with
/// UNSUPPORTED_VERSION and the supported ranges.
pub fn encode_api_versions_fallback(correlation_id: i32) -> Result<BytesMut, ProtocolError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(advertised_api_versions());
    encode_response(correlation_id, 0, &ResponseKind::ApiVersions(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn fallback_is_a_v0_api_versions_response() {
        let mut buf = encode_api_versions_fallback(9).unwrap().freeze();
        let size = buf.get_i32() as usize;
        assert_eq!(size, buf.len());
        assert_eq!(buf.get_i32(), 9);
        let body = ApiVersionsResponse::decode(&mut buf, 0).unwrap();
        assert_eq!(body.error_code, 35);
        assert!(body.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16 && k.max_version == 13));
    }
}
