//! AlterUserScramCredentials (key 51, KIP-554): upsert or delete users' SCRAM credentials,
//! validated as Kafka's `ScramControlManager` validates them. An upsertion carries the
//! salt and the salted password the client computed (`Hi(password, salt, i)`); the broker
//! keeps only salt, StoredKey, ServerKey and iterations.
//!
//! No authorizer exists yet, so any client may alter credentials (Kafka without an
//! authorizer allows the same); put the admin on a listener only trusted hosts reach.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rivulet_metadata::ScramChange;
use rivulet_protocol::kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use rivulet_protocol::kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;
use crate::security::scram::{ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

enum Change {
    Upsert(ScramMechanism, rivulet_metadata::ScramCredential),
    Delete(ScramMechanism),
}

/// A validated change, or the error refusing it.
type Checked = Result<Change, (ResponseError, String)>;

fn result(user: &str, error: Option<(ResponseError, String)>) -> AlterUserScramCredentialsResult {
    let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
    match error {
        None => result,
        Some((error, message)) => result.with_error_code(error.code()).with_error_message(Some(str_bytes(message))),
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // ALTER on the cluster, as Kafka checks: every user named gets the error.
    if !broker.authorized_cluster(ctx, rivulet_metadata::AclOperation::Alter) {
        let denied = (ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".to_string());
        let mut users: Vec<String> = request.deletions.iter().map(|d| d.name.to_string()).collect();
        users.extend(request.upsertions.iter().map(|u| u.name.to_string()));
        users.dedup();
        return AlterUserScramCredentialsResponse::default()
            .with_results(users.iter().map(|u| result(u, Some(denied.clone()))).collect());
    }
    // Users in request order, each with its changes; a user named twice (in either
    // list) is refused whole, as Kafka refuses it.
    let mut order: Vec<String> = Vec::new();
    let mut changes: BTreeMap<String, Vec<Checked>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for deletion in request.deletions {
        let user = deletion.name.to_string();
        *counts.entry(user.clone()).or_default() += 1;
        let change = match ScramMechanism::from_code(deletion.mechanism) {
            None => Err((ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism".to_string())),
            Some(_) if user.is_empty() => {
                Err((ResponseError::UnacceptableCredential, "Username must not be empty".to_string()))
            }
            Some(mechanism) => Ok(Change::Delete(mechanism)),
        };
        if !changes.contains_key(&user) {
            order.push(user.clone());
        }
        changes.entry(user).or_default().push(change);
    }
    for upsertion in request.upsertions {
        let user = upsertion.name.to_string();
        *counts.entry(user.clone()).or_default() += 1;
        let change = match ScramMechanism::from_code(upsertion.mechanism) {
            None => Err((ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism".to_string())),
            Some(_) if user.is_empty() => {
                Err((ResponseError::UnacceptableCredential, "Username must not be empty".to_string()))
            }
            Some(m) if upsertion.iterations < MIN_ITERATIONS => Err((
                ResponseError::UnacceptableCredential,
                format!(
                    "Too few iterations: {} is less than the minimum {MIN_ITERATIONS} for {}",
                    upsertion.iterations,
                    m.name()
                ),
            )),
            Some(m) if upsertion.iterations > MAX_ITERATIONS => Err((
                ResponseError::UnacceptableCredential,
                format!(
                    "Too many iterations: {} is more than the maximum {MAX_ITERATIONS} for {}",
                    upsertion.iterations,
                    m.name()
                ),
            )),
            Some(m) if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() => Err((
                ResponseError::UnacceptableCredential,
                format!("Salt and salted password must not be empty for {}", m.name()),
            )),
            Some(m) => {
                Ok(Change::Upsert(m, m.credential(&upsertion.salted_password, &upsertion.salt, upsertion.iterations)))
            }
        };
        if !changes.contains_key(&user) {
            order.push(user.clone());
        }
        changes.entry(user).or_default().push(change);
    }
    let mut results = Vec::with_capacity(order.len());
    let mut done = BTreeSet::new();
    for user in order {
        if !done.insert(user.clone()) {
            continue;
        }
        if counts.get(&user).copied().unwrap_or(0) > 1 {
            results.push(result(
                &user,
                Some((
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request".to_string(),
                )),
            ));
            continue;
        }
        let Some(Some(change)) = changes.remove(&user).map(|mut c| c.pop()) else { continue };
        let outcome = match change {
            Err(error) => Err(error),
            Ok(change) => apply(broker, &user, change).await,
        };
        results.push(result(&user, outcome.err()));
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

async fn apply(broker: &Arc<Broker>, user: &str, change: Change) -> Result<(), (ResponseError, String)> {
    let storage_error = |e: rivulet_metadata::MetadataError| {
        tracing::error!(user, error = %e, "cannot store SCRAM credentials");
        (ResponseError::UnknownServerError, e.to_string())
    };
    let change = match change {
        Change::Upsert(mechanism, credential) => {
            ScramChange::Upsert { mechanism: mechanism.name().to_string(), credential }
        }
        Change::Delete(mechanism) => ScramChange::Delete { mechanism: mechanism.name().to_string() },
    };
    // One compare-and-swap in the metadata store: a change made at the same moment
    // through another broker is kept, not overwritten.
    if broker.metadata.alter_user_scram_credentials(user, change).await.map_err(storage_error)? {
        Ok(())
    } else {
        Err((ResponseError::ResourceNotFound, "Attempt to delete a user credential that does not exist".to_string()))
    }
}
