//! AlterClientQuotas (key 49, v0–1): sets and removes quota values of user, client-id and
//! IP entities (`kafka-configs --alter --entity-type users|clients|ips --add-config
//! producer_byte_rate=...`), validated as Kafka's `ClientQuotaControlManager`. Needs
//! ALTER_CONFIGS on the cluster.
//!
//! User and client-id entities take `producer_byte_rate`, `consumer_byte_rate` (integral),
//! `request_percentage` and `controller_mutation_rate`; an IP entity (`ip`, named or the
//! default) takes only `connection_creation_rate` (integral, at most `i32::MAX`) and is
//! never combined with a user or client id. Every value must be greater than 0. An IP entity
//! must name an IP address: Kafka also accepts a host name it can resolve, which is refused
//! here.
//!
//! Each entity's changes are one read-modify-write in the metadata store; this broker's
//! quotas are then reloaded from the store (other brokers' at their next etcd sync).
//! `controller_mutation_rate` is stored but not enforced.

use std::collections::HashSet;
use std::sync::Arc;

use rivulet_metadata::{AclOperation, QuotaEntity, QuotaName};
use rivulet_protocol::kafka_protocol::messages::alter_client_quotas_request::EntryData as RequestEntry;
use rivulet_protocol::kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use rivulet_protocol::kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::quota::{CONNECTION_CREATION_RATE, CONTROLLER_MUTATION_RATE, IP_KEYS, REQUEST_PERCENTAGE, USER_CLIENT_KEYS};
use crate::request_context::RequestContext;

type Refusal = (ResponseError, String);
/// Quota keys to set (`Some`) or remove (`None`).
type Changes = Vec<(String, Option<f64>)>;

fn invalid(message: impl Into<String>) -> Refusal {
    (ResponseError::InvalidRequest, message.into())
}

/// The entity and its changes, checked.
fn validate(entry: &RequestEntry) -> Result<(QuotaEntity, Changes), Refusal> {
    let mut entity = QuotaEntity::default();
    let mut seen = HashSet::new();
    for part in &entry.entity {
        let kind = part.entity_type.as_str();
        if !seen.insert(kind) {
            return Err(invalid(format!("Invalid client quota entity, duplicate entity entry {kind}")));
        }
        let name = match part.entity_name.as_deref() {
            None => QuotaName::Default,
            Some("") => return Err(invalid(format!("Empty {kind} not supported"))),
            Some(n) => QuotaName::Named(n.to_string()),
        };
        match kind {
            "user" => entity.user = Some(name),
            "client-id" => entity.client_id = Some(name),
            "ip" => entity.ip = Some(name),
            other => return Err(invalid(format!("Unhandled client quota entity type: {other}"))),
        }
    }
    let keys_allowed = match (&entity.ip, entity.user.is_some() || entity.client_id.is_some()) {
        (Some(_), true) => {
            // Kafka's message, as it reads.
            return Err(invalid(
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId",
            ));
        }
        (Some(QuotaName::Named(ip)), false) if ip.parse::<std::net::IpAddr>().is_err() => {
            return Err(invalid(format!("{ip} is not a valid IP or resolvable host.")));
        }
        (Some(_), false) => IP_KEYS,
        (None, true) => USER_CLIENT_KEYS,
        (None, false) => return Err(invalid("Invalid empty client quota entity")),
    };
    let mut changes = Vec::with_capacity(entry.ops.len());
    let mut keys = HashSet::new();
    for op in &entry.ops {
        let key = op.key.as_str();
        if !keys.insert(key) {
            return Err(invalid(format!("Duplicate quota key {key}")));
        }
        if op.remove {
            // Kafka removes without checking the key; an absent one is no change.
            changes.push((key.to_string(), None));
            continue;
        }
        if !keys_allowed.contains(&key) {
            return Err(invalid(format!("Invalid configuration key {key}")));
        }
        let value = op.value;
        if !value.is_finite() || value <= 0.0 {
            return Err(invalid(format!("Quota {key} must be greater than 0")));
        }
        // Byte rates are longs in Kafka's config definitions, the connection rate an int,
        // the others doubles.
        if key == CONNECTION_CREATION_RATE && value > f64::from(i32::MAX) {
            return Err(invalid(format!("Proposed value for {key} is too large for an INT.")));
        }
        let integral = key != REQUEST_PERCENTAGE && key != CONTROLLER_MUTATION_RATE;
        if integral && value > i64::MAX as f64 {
            return Err(invalid(format!("Proposed value for {key} is too large for a LONG.")));
        }
        if integral && value.fract().abs() > 1e-6 {
            return Err(invalid(format!("{key} cannot be a fractional value.")));
        }
        changes.push((key.to_string(), Some(value)));
    }
    Ok((entity, changes))
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let authorized = broker.authorized_cluster(ctx, AclOperation::AlterConfigs);
    let mut results = Vec::with_capacity(request.entries.len());
    let mut changed = false;
    for entry in &request.entries {
        let response_entity: Vec<EntityData> = entry
            .entity
            .iter()
            .map(|e| {
                EntityData::default().with_entity_type(e.entity_type.clone()).with_entity_name(e.entity_name.clone())
            })
            .collect();
        let outcome = if !authorized {
            Err((ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".to_string()))
        } else {
            match validate(entry) {
                Err(refusal) => Err(refusal),
                Ok(_) if request.validate_only => Ok(()),
                Ok((entity, changes)) => match broker.metadata.alter_client_quotas(&entity, &changes).await {
                    Ok(()) => {
                        changed = true;
                        tracing::info!(target: "rivulet::audit", principal = %ctx.principal, ?entity, ?changes, "client quotas altered");
                        Ok(())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot store client quotas");
                        Err((ResponseError::UnknownServerError, e.to_string()))
                    }
                },
            }
        };
        let result = EntryData::default().with_entity(response_entity);
        results.push(match outcome {
            Ok(()) => result,
            Err((error, message)) => result.with_error_code(error.code()).with_error_message(Some(str_bytes(message))),
        });
    }
    if changed {
        match broker.metadata.client_quotas().await {
            Ok(quotas) => broker.quotas.replace_quotas(quotas),
            Err(e) => tracing::warn!(error = %e, "client quotas stored but not reloaded"),
        }
    }
    AlterClientQuotasResponse::default().with_entries(results)
}

#[cfg(test)]
mod tests {
    use rivulet_protocol::kafka_protocol::messages::alter_client_quotas_request::{EntityData, OpData};

    use super::*;
    use crate::quota::PRODUCER_BYTE_RATE;

    fn entry(entity: &[(&str, Option<&str>)], ops: &[(&str, f64)]) -> RequestEntry {
        RequestEntry::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(kind, name)| {
                        EntityData::default().with_entity_type(str_bytes(*kind)).with_entity_name(name.map(str_bytes))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter().map(|(key, value)| OpData::default().with_key(str_bytes(*key)).with_value(*value)).collect(),
            )
    }

    fn refusal(entry: &RequestEntry) -> String {
        match validate(entry) {
            Err((error, message)) => {
                assert_eq!(error, ResponseError::InvalidRequest);
                message
            }
            Ok(changes) => panic!("accepted: {changes:?}"),
        }
    }

    #[test]
    fn ip_entities_take_only_a_whole_positive_connection_rate() {
        let (entity, changes) =
            validate(&entry(&[("ip", Some("127.0.0.1"))], &[(CONNECTION_CREATION_RATE, 2.0)])).unwrap();
        assert_eq!(entity, QuotaEntity { ip: Some(QuotaName::Named("127.0.0.1".into())), ..QuotaEntity::default() });
        assert_eq!(changes, vec![(CONNECTION_CREATION_RATE.to_string(), Some(2.0))]);
        let (entity, _) = validate(&entry(&[("ip", None)], &[(CONNECTION_CREATION_RATE, 10.0)])).unwrap();
        assert_eq!(entity.ip, Some(QuotaName::Default));
        assert!(validate(&entry(&[("ip", Some("::1"))], &[(CONNECTION_CREATION_RATE, 1.0)])).is_ok());

        assert_eq!(
            refusal(&entry(&[("ip", Some("not an address"))], &[(CONNECTION_CREATION_RATE, 2.0)])),
            "not an address is not a valid IP or resolvable host."
        );
        assert!(refusal(&entry(&[("ip", Some("127.0.0.1")), ("user", Some("alice"))], &[])).contains("combination"));
        assert_eq!(
            refusal(&entry(&[("ip", Some("127.0.0.1"))], &[(PRODUCER_BYTE_RATE, 2.0)])),
            "Invalid configuration key producer_byte_rate"
        );
        assert_eq!(
            refusal(&entry(&[("client-id", Some("app"))], &[(CONNECTION_CREATION_RATE, 2.0)])),
            "Invalid configuration key connection_creation_rate"
        );
        assert_eq!(
            refusal(&entry(&[("ip", None)], &[(CONNECTION_CREATION_RATE, 2.5)])),
            "connection_creation_rate cannot be a fractional value."
        );
        assert_eq!(
            refusal(&entry(&[("ip", None)], &[(CONNECTION_CREATION_RATE, 0.0)])),
            "Quota connection_creation_rate must be greater than 0"
        );
        assert!(refusal(&entry(&[("ip", None)], &[(CONNECTION_CREATION_RATE, 3e9)])).contains("too large for an INT"));
        assert_eq!(refusal(&entry(&[("ip", Some(""))], &[])), "Empty ip not supported");
    }
}
