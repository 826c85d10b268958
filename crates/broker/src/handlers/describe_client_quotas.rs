//! DescribeClientQuotas (key 48, v0–1): the quota entities matching a filter and their
//! values, as Kafka's `ClientQuotasImage.describe` (`kafka-configs --describe
//! --entity-type users|clients|ips`). Needs DESCRIBE_CONFIGS on the cluster.
//!
//! A filter component names an entity type (`user`, `client-id`, `ip`) and matches an
//! exact name (match type 0), the default entity (1) or any entity of the type (2); an
//! entity matches when every component does, and with `strict` only if it has no other
//! types. An `ip` component cannot be combined with the others.

use std::collections::HashSet;
use std::sync::Arc;

use rivulet_metadata::{AclOperation, QuotaEntity, QuotaName};
use rivulet_protocol::kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use rivulet_protocol::kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

fn failed(error: ResponseError, message: impl Into<String>) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(str_bytes(message)))
        .with_entries(None)
}

/// An entity's parts by Kafka's entity type names.
pub(super) fn parts(entity: &QuotaEntity) -> Vec<(&'static str, &QuotaName)> {
    let mut parts = Vec::with_capacity(2);
    if let Some(user) = &entity.user {
        parts.push(("user", user));
    }
    if let Some(client_id) = &entity.client_id {
        parts.push(("client-id", client_id));
    }
    if let Some(ip) = &entity.ip {
        parts.push(("ip", ip));
    }
    parts
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if !broker.authorized_cluster(ctx, AclOperation::DescribeConfigs) {
        return failed(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.");
    }
    // Checked as Kafka's `ClientQuotasImage.describe`.
    let mut seen = HashSet::new();
    for c in &request.components {
        let kind = c.entity_type.as_str();
        if kind.is_empty() {
            return failed(ResponseError::InvalidRequest, "Invalid empty entity type.");
        }
        if !seen.insert(kind) {
            return failed(
                ResponseError::InvalidRequest,
                format!("Entity type {kind} cannot appear more than once in the filter."),
            );
        }
        if !matches!(kind, "user" | "client-id" | "ip") {
            return failed(ResponseError::UnsupportedVersion, format!("Unsupported entity type {kind}"));
        }
        match (c.match_type, &c._match) {
            (MATCH_EXACT, None) => {
                return failed(
                    ResponseError::InvalidRequest,
                    format!("Request specified MATCH_TYPE_EXACT, but set match string to null for {kind}"),
                )
            }
            (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                return failed(
                    ResponseError::InvalidRequest,
                    format!("Request specified a default or any match, but set a match string for {kind}"),
                )
            }
            (MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED, _) => {}
            (other, _) => return failed(ResponseError::InvalidRequest, format!("Unknown match type {other}")),
        }
    }
    if seen.contains("ip") && seen.len() > 1 {
        return failed(
            ResponseError::InvalidRequest,
            "IP filter component should not be used with user or clientId filter component.",
        );
    }
    let entries = broker
        .quotas
        .snapshot()
        .iter()
        .filter(|(entity, _)| {
            let parts = parts(entity);
            let components_match = request.components.iter().all(|c| {
                parts.iter().any(|(kind, name)| {
                    *kind == c.entity_type.as_str()
                        && match (c.match_type, name) {
                            (MATCH_EXACT, QuotaName::Named(n)) => c._match.as_deref() == Some(n.as_str()),
                            (MATCH_DEFAULT, QuotaName::Default) => true,
                            (MATCH_SPECIFIED, _) => true,
                            _ => false,
                        }
                })
            });
            components_match && (!request.strict || parts.len() == request.components.len())
        })
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    parts(entity)
                        .into_iter()
                        .map(|(kind, name)| {
                            EntityData::default().with_entity_type(str_bytes(kind)).with_entity_name(match name {
                                QuotaName::Default => None,
                                QuotaName::Named(n) => Some(str_bytes(n.clone())),
                            })
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(key, value)| ValueData::default().with_key(str_bytes(key.clone())).with_value(*value))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}
