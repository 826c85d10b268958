//! AlterClientQuotas (key 49, v0–1): sets and removes quota values of user and client-id
//! entities (`kafka-configs --alter --entity-type users|clients --add-config
//! producer_byte_rate=...`), validated as Kafka's `ClientQuotaControlManager`. Needs
//! ALTER_CONFIGS on the cluster.
//!
//! Each entity's changes are one read-modify-write in the metadata store; this broker's
//! quotas are then reloaded from the store (other brokers' at their next etcd sync). IP
//! quotas (`connection_creation_rate`) are not enforced and are refused.

use std::collections::HashSet;
use std::sync::Arc;

use rivulet_metadata::{AclOperation, QuotaEntity, QuotaName};
use rivulet_protocol::kafka_protocol::messages::alter_client_quotas_request::EntryData as RequestEntry;
use rivulet_protocol::kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use rivulet_protocol::kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::quota::{CONTROLLER_MUTATION_RATE, REQUEST_PERCENTAGE, USER_CLIENT_KEYS};
use crate::request_context::RequestContext;

type Refusal = (ResponseError, String);
/// Quota keys to set (`Some`) or remove (`None`).
type Changes = Vec<(String, Option<f64>)>;

fn invalid(message: impl Into<String>) -> Refusal {
    (ResponseError::InvalidRequest, message.into())
}

/// The entity and its changes, checked.
fn validate(entry: &RequestEntry) -> Result<(QuotaEntity, Changes), Refusal> {
    let mut entity = QuotaEntity { user: None, client_id: None };
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
            "ip" => return Err(invalid("IP quotas (connection_creation_rate) are not supported")),
            other => return Err(invalid(format!("Unhandled client quota entity type: {other}"))),
        }
    }
    if entity.user.is_none() && entity.client_id.is_none() {
        return Err(invalid("Invalid empty client quota entity"));
    }
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
        if !USER_CLIENT_KEYS.contains(&key) {
            return Err(invalid(format!("Invalid configuration key {key}")));
        }
        let value = op.value;
        if !value.is_finite() || value <= 0.0 {
            return Err(invalid(format!("Quota {key} must be greater than 0")));
        }
        // Byte rates are longs in Kafka's config definitions; the others doubles.
        let integral = key != REQUEST_PERCENTAGE && key != CONTROLLER_MUTATION_RATE;
        if integral && value.fract() != 0.0 {
            return Err(invalid(format!("{key} cannot be a fractional value.")));
        }
        if integral && value > i64::MAX as f64 {
            return Err(invalid(format!("Proposed value for {key} is too large for a LONG.")));
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
