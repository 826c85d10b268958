//! DescribeAcls (key 29, v1–3): the ACL bindings matching a filter, grouped by resource
//! pattern, as Kafka's `AclControlManager.describeAcls`. Needs DESCRIBE on the cluster;
//! SECURITY_DISABLED without an authorizer (MirrorMaker 2 stops syncing ACLs on it).

use std::collections::BTreeMap;
use std::sync::Arc;

use rivulet_metadata::AclOperation;
use rivulet_protocol::kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use rivulet_protocol::kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::security::authorizer::AclFilter;

fn failed(error: ResponseError, message: impl Into<String>) -> DescribeAclsResponse {
    DescribeAclsResponse::default().with_error_code(error.code()).with_error_message(Some(str_bytes(message)))
}

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let Some(authorizer) = &broker.authorizer else {
        return failed(ResponseError::SecurityDisabled, "No Authorizer is configured.");
    };
    if !broker.authorized_cluster(ctx, AclOperation::Describe) {
        return failed(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.");
    }
    let filter = match AclFilter::from_codes(
        request.resource_type_filter,
        request.resource_name_filter.as_deref(),
        request.pattern_type_filter,
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
        request.operation,
        request.permission_type,
    ) {
        Ok(filter) => filter,
        Err(e) => return failed(ResponseError::InvalidRequest, e.0),
    };
    let acls = authorizer.acls();
    let mut resources: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for b in acls.bindings().iter().filter(|b| filter.matches(b)) {
        resources.entry((b.resource_type, b.resource_name.clone(), b.pattern_type)).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(b.principal.clone()))
                .with_host(str_bytes(b.host.clone()))
                .with_operation(b.operation.code())
                .with_permission_type(b.permission_type.code()),
        );
    }
    DescribeAclsResponse::default().with_resources(
        resources
            .into_iter()
            .map(|((kind, name, pattern), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(kind.code())
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(pattern.code())
                    .with_acls(acls)
            })
            .collect(),
    )
}
