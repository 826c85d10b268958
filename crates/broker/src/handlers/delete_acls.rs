//! DeleteAcls (key 31, v1–3): removes the bindings matching each filter, as Kafka's
//! `AclControlManager.deleteAcls`, and answers per filter with the bindings it removed.
//! Needs ALTER on the cluster; SECURITY_DISABLED without an authorizer.
//!
//! The matches are found in the store's copy (not this broker's cache), so a binding
//! another broker just created is deleted too; all removals are one atomic write.

use std::collections::BTreeSet;
use std::sync::Arc;

use rivulet_metadata::{AclBinding, AclOperation};
use rivulet_protocol::kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use rivulet_protocol::kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::security::authorizer::AclFilter;

fn failed(error: ResponseError, message: impl Into<String>) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default().with_error_code(error.code()).with_error_message(Some(str_bytes(message)))
}

fn matching(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(str_bytes(b.resource_name.clone()))
        .with_pattern_type(b.pattern_type.code())
        .with_principal(str_bytes(b.principal.clone()))
        .with_host(str_bytes(b.host.clone()))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission_type.code())
}

pub async fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let all_failed = |error: ResponseError, message: &str| {
        DeleteAclsResponse::default()
            .with_filter_results(request.filters.iter().map(|_| failed(error, message)).collect())
    };
    let Some(authorizer) = &broker.authorizer else {
        return all_failed(ResponseError::SecurityDisabled, "No Authorizer is configured.");
    };
    if !broker.authorized_cluster(ctx, AclOperation::Alter) {
        return all_failed(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.");
    }
    let stored = match broker.metadata.acls().await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!(error = %e, "cannot read ACLs");
            return all_failed(ResponseError::UnknownServerError, &e.to_string());
        }
    };
    let mut removed: BTreeSet<AclBinding> = BTreeSet::new();
    let mut results = Vec::with_capacity(request.filters.len());
    for f in &request.filters {
        match AclFilter::from_codes(
            f.resource_type_filter,
            f.resource_name_filter.as_deref(),
            f.pattern_type_filter,
            f.principal_filter.as_deref(),
            f.host_filter.as_deref(),
            f.operation,
            f.permission_type,
        ) {
            Ok(filter) => {
                let matched: Vec<&AclBinding> = stored.iter().filter(|b| filter.matches(b)).collect();
                removed.extend(matched.iter().map(|b| (*b).clone()));
                results.push(
                    DeleteAclsFilterResult::default().with_matching_acls(matched.into_iter().map(matching).collect()),
                );
            }
            Err(e) => results.push(failed(ResponseError::InvalidRequest, e.0)),
        }
    }
    if removed.is_empty() {
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let removed: Vec<AclBinding> = removed.into_iter().collect();
    if let Err(e) = broker.metadata.delete_acls(&removed).await {
        tracing::error!(error = %e, "cannot delete ACLs");
        return all_failed(ResponseError::UnknownServerError, &e.to_string());
    }
    broker.acls_changed(ctx, authorizer, "delete", &removed).await;
    DeleteAclsResponse::default().with_filter_results(results)
}
