//! The client side of the protocol, which a broker speaks to other brokers (a follower
//! fetching from its leader): requests encoded with their header and size prefix, and
//! responses decoded back into typed messages.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::ProtocolError;

/// Encodes `request` at `version` with its header, size prefix included.
pub fn encode_request<R: Request>(
    correlation_id: i32,
    client_id: &str,
    version: i16,
    request: &R,
) -> Result<Bytes, ProtocolError> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    header.encode(&mut buf, R::header_version(version)).map_err(|e| ProtocolError::Encode(e.to_string()))?;
    request.encode(&mut buf, version).map_err(|e| ProtocolError::Encode(e.to_string()))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| ProtocolError::Encode("request over 2 GiB".into()))?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without its size prefix) to a request of type `R` sent at
/// `version`; returns the correlation id and the response.
pub fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> Result<(i32, R::Response), ProtocolError> {
    let malformed = |e: anyhow::Error| ProtocolError::Malformed { what: "response", reason: e.to_string() };
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version)).map_err(malformed)?;
    let response = R::Response::decode(&mut frame, version).map_err(malformed)?;
    if frame.has_remaining() {
        return Err(ProtocolError::Malformed {
            what: "response",
            reason: format!("{} bytes left after the response", frame.remaining()),
        });
    }
    Ok((header.correlation_id, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseKind};

    #[test]
    fn requests_round_trip_through_the_server_decoder() {
        let encoded = encode_request(7, "replica-2", 3, &ApiVersionsRequest::default()).unwrap();
        let frame = encoded.slice(4..);
        let crate::request::Request::Known { header, body, .. } = crate::request::decode_request(frame).unwrap() else {
            panic!("not decoded as a known request");
        };
        assert_eq!(header.correlation_id, 7);
        assert_eq!(header.request_api_version, 3);
        assert_eq!(header.client_id.as_deref(), Some("replica-2"));
        assert!(matches!(*body, crate::RequestKind::ApiVersions(_)));

        let response = ResponseKind::ApiVersions(ApiVersionsResponse::default().with_error_code(35));
        let mut bytes = crate::response::encode_response(7, 3, &response).unwrap().freeze();
        bytes.advance(4);
        let (correlation, decoded) = decode_response::<ApiVersionsRequest>(bytes, 3).unwrap();
        assert_eq!((correlation, decoded.error_code), (7, 35));
    }
}
