//! Encoding responses, size prefix included.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader, ResponseKind};
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

/// Generates, from the list of responses that carry `throttle_time_ms`, the functions that
/// read and set it on any [`ResponseKind`] and the list itself. A variant named here without
/// the field does not compile; one with the field left out is caught by the test below.
macro_rules! throttle_time_field {
    ($($variant:ident),* $(,)?) => {
        /// The APIs whose responses have a `throttle_time_ms` field (at some versions).
        pub const APIS_WITH_THROTTLE_TIME: &[ApiKey] = &[$(ApiKey::$variant),*];

        /// The `throttle_time_ms` of `body`, if its API's response has one.
        pub fn throttle_time_ms(body: &ResponseKind) -> Option<i32> {
            match body {
                $(ResponseKind::$variant(response) => Some(response.throttle_time_ms),)*
                _ => None,
            }
        }

        /// Sets the `throttle_time_ms` of `body`; false if its API's response has none. A
        /// version without the field encodes without it (the client is throttled all the
        /// same, by the connection reading nothing meanwhile).
        pub fn set_throttle_time_ms(body: &mut ResponseKind, throttle_time_ms: i32) -> bool {
            match body {
                $(ResponseKind::$variant(response) => {
                    response.throttle_time_ms = throttle_time_ms;
                    true
                })*
                _ => false,
            }
        }
    };
}

throttle_time_field! {
    Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup,
    Heartbeat, LeaveGroup, SyncGroup, DescribeGroups, ListGroups, ApiVersions, CreateTopics,
    DeleteTopics, DeleteRecords, InitProducerId, OffsetForLeaderEpoch, AddPartitionsToTxn,
    AddOffsetsToTxn, EndTxn, TxnOffsetCommit, DescribeAcls, CreateAcls, DeleteAcls,
    DescribeConfigs, AlterConfigs, AlterReplicaLogDirs, DescribeLogDirs, CreatePartitions,
    CreateDelegationToken, RenewDelegationToken, ExpireDelegationToken, DescribeDelegationToken,
    DeleteGroups, ElectLeaders, IncrementalAlterConfigs, AlterPartitionReassignments,
    ListPartitionReassignments, OffsetDelete, DescribeClientQuotas, AlterClientQuotas,
    DescribeUserScramCredentials, AlterUserScramCredentials, AlterPartition, UpdateFeatures,
    FetchSnapshot, DescribeCluster, DescribeProducers, BrokerRegistration, BrokerHeartbeat,
    UnregisterBroker, DescribeTransactions, ListTransactions, AllocateProducerIds,
    ConsumerGroupHeartbeat, ConsumerGroupDescribe, ControllerRegistration,
    GetTelemetrySubscriptions, PushTelemetry, AssignReplicasToDirs, ListConfigResources,
    DescribeTopicPartitions, ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch,
    ShareAcknowledge, AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter, DescribeShareGroupOffsets,
    AlterShareGroupOffsets, DeleteShareGroupOffsets,
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
    use kafka_protocol::messages::{MetadataResponse, SaslHandshakeResponse};
    use kafka_protocol::protocol::Decodable;

    /// Every API served has its throttle set, but the four whose responses have no field
    /// for it in any version.
    #[test]
    fn every_served_response_with_the_field_can_carry_a_throttle() {
        const WITHOUT: &[ApiKey] =
            &[ApiKey::SaslHandshake, ApiKey::SaslAuthenticate, ApiKey::WriteTxnMarkers, ApiKey::DescribeQuorum];
        for api in SUPPORTED_APIS {
            assert!(
                APIS_WITH_THROTTLE_TIME.contains(&api.key) != WITHOUT.contains(&api.key),
                "{:?}: listed in neither or both",
                api.key
            );
        }
        let mut metadata = ResponseKind::Metadata(MetadataResponse::default());
        assert!(set_throttle_time_ms(&mut metadata, 250));
        assert_eq!(throttle_time_ms(&metadata), Some(250));
        // Metadata v0-v2 have no field: encoded without it, and v3 with it.
        let v2 = encode_response(1, 2, &metadata).unwrap();
        let mut v3 = encode_response(1, 3, &metadata).unwrap().freeze();
        assert_eq!(v3.len(), v2.len() + 4);
        v3.advance(8);
        assert_eq!(MetadataResponse::decode(&mut v3, 3).unwrap().throttle_time_ms, 250);
        let mut handshake = ResponseKind::SaslHandshake(SaslHandshakeResponse::default());
        assert!(!set_throttle_time_ms(&mut handshake, 250));
        assert_eq!(throttle_time_ms(&handshake), None);
    }

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
