//! DescribeUserScramCredentials (key 50, KIP-554): each user's SCRAM mechanisms and
//! iterations — never salts or keys — as Kafka's `ScramImage.describe` answers.
//!
//! Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED).

use std::collections::BTreeSet;
use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use rivulet_protocol::kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::security::scram::ScramMechanism;

fn infos(credentials: &rivulet_metadata::UserScramCredentials) -> Vec<CredentialInfo> {
    credentials
        .iter()
        .filter_map(|(name, credential)| {
            ScramMechanism::from_name(name)
                .map(|m| CredentialInfo::default().with_mechanism(m.code()).with_iterations(credential.iterations))
        })
        .collect()
}

fn failed(user: &str, error: ResponseError, message: String) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(str_bytes(user))
        .with_error_code(error.code())
        .with_error_message(Some(str_bytes(message)))
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let response = DescribeUserScramCredentialsResponse::default();
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Describe) {
        return response
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let all = match broker.metadata.scram_users().await {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, "cannot read SCRAM credentials");
            return response
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(str_bytes(e.to_string())));
        }
    };
    let requested: Vec<String> = request.users.unwrap_or_default().into_iter().map(|u| u.name.to_string()).collect();
    let results = if requested.is_empty() {
        // Null or empty: every user that has a credential.
        all.iter()
            .map(|(user, credentials)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user.as_str()))
                    .with_credential_infos(infos(credentials))
            })
            .collect()
    } else {
        let mut seen = BTreeSet::new();
        let duplicated: BTreeSet<&String> = requested.iter().filter(|u| !seen.insert(*u)).collect();
        let mut answered = BTreeSet::new();
        requested
            .iter()
            .filter(|user| answered.insert(*user))
            .map(|user| {
                if duplicated.contains(user) {
                    return failed(
                        user,
                        ResponseError::DuplicateResource,
                        format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                        ),
                    );
                }
                match all.get(user) {
                    Some(credentials) => DescribeUserScramCredentialsResult::default()
                        .with_user(str_bytes(user.as_str()))
                        .with_credential_infos(infos(credentials)),
                    None => failed(
                        user,
                        ResponseError::ResourceNotFound,
                        format!("Attempt to describe a user credential that does not exist: {user}"),
                    ),
                }
            })
            .collect()
    };
    response.with_results(results)
}
