//! The APIs Rivulet implements, and the version ranges it advertises in ApiVersions.
//!
//! Only what works is listed: an advertised API with a stub handler breaks admin tools in
//! confusing ways. Ranges follow Apache Kafka 4.x (the `kafka-protocol` crate is generated
//! from Kafka 4.1's schemas, whose minimums are those of KIP-896).

use kafka_protocol::messages::ApiKey;

/// One row of the table: an API and the versions Rivulet decodes and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    /// The minimum advertised in ApiVersions when it differs from `min` (see KAFKA-18659).
    pub advertised_min: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> SupportedApi {
    SupportedApi { key, min, max, advertised_min: min }
}

/// Every API Rivulet serves.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    // KAFKA-18659: Kafka 4 advertises Produce v0-v2 (but refuses them) because librdkafka
    // only enables compression when it sees them.
    SupportedApi { key: ApiKey::Produce, min: 3, max: 13, advertised_min: 0 },
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 13),
    // Paged topic descriptions (KIP-966) for `kafka-topics --describe` and the 4.x AdminClient.
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::CreatePartitions, 0, 3),
    // v6 (KIP-939) is in the codec's version table but not in its message schema: a v6
    // request could not be decoded.
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    // Log lifecycle: topic configs changed at run time, records deleted on request.
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    // One log directory: a move to it is a no-op, elsewhere LOG_DIR_NOT_FOUND.
    api(ApiKey::AlterReplicaLogDirs, 1, 2),
    // The controller and the brokers in the shape of Kafka's KRaft quorum.
    api(ApiKey::DescribeQuorum, 0, 2),
    // Topics and brokers (KIP-1142); v0 is KIP-714's ListClientMetricsResources.
    api(ApiKey::ListConfigResources, 0, 1),
    // Client telemetry (KIP-714), offered only with a Prometheus endpoint to show it on.
    api(ApiKey::GetTelemetrySubscriptions, 0, 0),
    api(ApiKey::PushTelemetry, 0, 0),
    api(ApiKey::DescribeCluster, 0, 2),
    // Cluster mode: preferred / unclean leader election on request.
    api(ApiKey::ElectLeaders, 0, 2),
    // Cluster mode: moving partitions between brokers (KIP-455; v1 is KIP-860).
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    // Classic consumer groups and committed offsets. OffsetCommit v10 / OffsetFetch v10
    // (topic ids) are not in the codec's message schemas.
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::DeleteGroups, 0, 2),
    // KIP-848 consumer groups; v1 of the heartbeat is KIP-1082 (client-generated member
    // ids), v1 of the describe adds the member type.
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    // Transactions (KIP-98/447/890). ListTransactions v2 filters by a Java regular
    // expression, which is not offered.
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 5),
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
    // Inter-broker: a coordinator's markers for partitions another broker leads.
    api(ApiKey::WriteTxnMarkers, 1, 1),
    // SASL on SASL_PLAINTEXT listeners (KIP-43, KIP-152). Handshake v0 (raw tokens) is
    // advertised as Kafka does but answered by closing the connection.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    // SCRAM credentials in the metadata store (KIP-554).
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    // ACLs (KIP-140, KIP-290), answered SECURITY_DISABLED without an authorizer.
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    // Client quotas (KIP-546): byte rates per user and client id.
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
];

/// The row for `key`, if Rivulet serves that API at all.
pub fn supported(key: ApiKey) -> Option<&'static SupportedApi> {
    SUPPORTED_APIS.iter().find(|api| api.key == key)
}

/// Whether Rivulet decodes and answers `version` of `key`.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported(key).is_some_and(|api| (api.min..=api.max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_is_within_what_the_codec_can_decode() {
        for api in SUPPORTED_APIS {
            let codec = api.key.valid_versions();
            assert!(api.min >= codec.min && api.max <= codec.max, "{:?}", api.key);
            assert!(api.advertised_min <= api.min);
        }
    }

    #[test]
    fn produce_v2_is_advertised_but_refused() {
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(is_supported(ApiKey::Produce, 3));
        assert_eq!(supported(ApiKey::Produce).map(|a| a.advertised_min), Some(0));
    }
}
