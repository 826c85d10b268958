//! Decoding one request frame into a header and a typed body.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::versions;
use crate::ProtocolError;

/// A request frame, decoded.
#[derive(Debug)]
pub enum Request {
    /// A request Rivulet implements, at a version it supports.
    Known { header: RequestHeader, api_key: ApiKey, body: Box<RequestKind> },
    /// An ApiVersions request of a version newer than Rivulet knows (KIP-511): answer with a
    /// v0 response carrying UNSUPPORTED_VERSION and the supported ranges, so the client can
    /// retry with a version both sides know.
    ApiVersionsFallback { correlation_id: i32, version: i16 },
}

/// The fixed-position fields every request header starts with.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads the api key, version and correlation id without consuming the frame.
pub fn peek_header(frame: &[u8]) -> Result<HeaderPrefix, ProtocolError> {
    let mut cursor = frame;
    if cursor.len() < 8 {
        return Err(ProtocolError::FrameTooShort(frame.len()));
    }
    Ok(HeaderPrefix { api_key: cursor.get_i16(), api_version: cursor.get_i16(), correlation_id: cursor.get_i32() })
}

/// Decodes a whole frame (without its size prefix).
///
/// Mirrors Kafka's `Processor`: an unknown API key, a version that is not enabled or a body
/// that does not parse is an error after which the connection is closed; only ApiVersions
/// has the KIP-511 fallback.
pub fn decode_request(mut frame: Bytes) -> Result<Request, ProtocolError> {
    let prefix = peek_header(&frame)?;
    let api_key = ApiKey::try_from(prefix.api_key).map_err(|_| ProtocolError::UnknownApiKey(prefix.api_key))?;
    if !versions::is_supported(api_key, prefix.api_version) {
        if api_key == ApiKey::ApiVersions && prefix.api_version > ApiKey::ApiVersions.valid_versions().max {
            return Ok(Request::ApiVersionsFallback {
                correlation_id: prefix.correlation_id,
                version: prefix.api_version,
            });
        }
        return Err(ProtocolError::UnsupportedVersion {
            api_key,
            version: prefix.api_version,
            correlation_id: prefix.correlation_id,
        });
    }
    let header_version = api_key.request_header_version(prefix.api_version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| ProtocolError::Malformed { what: "request header", reason: e.to_string() })?;
    let body = RequestKind::decode(api_key, &mut frame, prefix.api_version).map_err(|e| ProtocolError::Malformed {
        what: "request body",
        reason: format!("{api_key:?} v{}: {e}", prefix.api_version),
    })?;
    Ok(Request::Known { header, api_key, body: Box::new(body) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame_for(api_key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header.encode(&mut buf, api_key.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_every_supported_api_versions_version() {
        for version in 0..=4 {
            let frame = frame_for(ApiKey::ApiVersions, version, &ApiVersionsRequest::default());
            match decode_request(frame).unwrap() {
                Request::Known { header, api_key, .. } => {
                    assert_eq!(api_key, ApiKey::ApiVersions);
                    assert_eq!(header.correlation_id, 7);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn future_api_versions_falls_back() {
        let mut buf = BytesMut::new();
        buf.put_i16(ApiKey::ApiVersions as i16);
        buf.put_i16(99);
        buf.put_i32(42);
        buf.put_slice(b"\x00\x00garbage that a future version may carry");
        match decode_request(buf.freeze()).unwrap() {
            Request::ApiVersionsFallback { correlation_id, version } => {
                assert_eq!((correlation_id, version), (42, 99));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_key_and_unsupported_version_are_errors() {
        let mut buf = BytesMut::new();
        buf.put_i16(12345);
        buf.put_i16(0);
        buf.put_i32(1);
        buf.put_i16(-1);
        assert!(matches!(decode_request(buf.freeze()), Err(ProtocolError::UnknownApiKey(12345))));

        let frame = frame_for(ApiKey::Metadata, 0, &kafka_protocol::messages::MetadataRequest::default());
        let mut raw = BytesMut::from(&frame[..]);
        raw[0..2].copy_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
        raw[2..4].copy_from_slice(&2i16.to_be_bytes());
        assert!(matches!(decode_request(raw.freeze()), Err(ProtocolError::UnsupportedVersion { version: 2, .. })));
    }
}
