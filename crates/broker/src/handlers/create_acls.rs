//! CreateAcls (key 30, v1–3): adds ACL bindings to the metadata store, as Kafka's
//! `AclControlManager.createAcls`. Needs ALTER on the cluster; without an authorizer every
//! creation gets SECURITY_DISABLED, as Kafka answers (tools then say security is off).
//!
//! Each creation is validated on its own (INVALID_REQUEST with Kafka's message); the valid
//! ones are stored in one atomic write, then this broker's authorizer reloads the store's
//! copy (other brokers of a cluster at their next sync from etcd).

use std::sync::Arc;

use rivulet_metadata::AclOperation;
use rivulet_protocol::kafka_protocol::messages::create_acls_response::AclCreationResult;
use rivulet_protocol::kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::security::authorizer::new_binding;

fn failed(error: ResponseError, message: impl Into<String>) -> AclCreationResult {
    AclCreationResult::default().with_error_code(error.code()).with_error_message(Some(str_bytes(message)))
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: CreateAclsRequest) -> CreateAclsResponse {
    let all_failed = |error: ResponseError, message: &str| {
        CreateAclsResponse::default().with_results(request.creations.iter().map(|_| failed(error, message)).collect())
    };
    let Some(authorizer) = &broker.authorizer else {
        return all_failed(ResponseError::SecurityDisabled, "No Authorizer is configured.");
    };
    if !broker.authorized_cluster(ctx, AclOperation::Alter) {
        return all_failed(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.");
    }
    let mut results: Vec<AclCreationResult> = Vec::with_capacity(request.creations.len());
    let mut valid = Vec::new();
    for c in &request.creations {
        match new_binding(
            c.resource_type,
            c.resource_name.as_str(),
            c.resource_pattern_type,
            c.principal.as_str(),
            c.host.as_str(),
            c.operation,
            c.permission_type,
        ) {
            Ok(binding) => {
                valid.push(binding);
                results.push(AclCreationResult::default());
            }
            Err(e) => results.push(failed(ResponseError::InvalidRequest, e.0)),
        }
    }
    if valid.is_empty() {
        return CreateAclsResponse::default().with_results(results);
    }
    if let Err(e) = broker.metadata.create_acls(&valid).await {
        tracing::error!(error = %e, "cannot store ACLs");
        let message = e.to_string();
        for r in results.iter_mut().filter(|r| r.error_code == 0) {
            *r = failed(ResponseError::UnknownServerError, message.clone());
        }
        return CreateAclsResponse::default().with_results(results);
    }
    broker.acls_changed(ctx, authorizer, "create", &valid).await;
    CreateAclsResponse::default().with_results(results)
}
