//! The SASL state machine of one connection on a `SASL_PLAINTEXT` listener, as Kafka's
//! `SaslServerAuthenticator`: ApiVersions and SaslHandshake (v1) first, then the
//! mechanism's tokens in SaslAuthenticate requests (KIP-152), then the connection is
//! authenticated as `User:<name>`. Any other request before that closes the connection
//! (Kafka's ILLEGAL_SASL_STATE); a failure is answered after
//! `connection.failed.authentication.delay.ms` and closes it.
//!
//! SaslHandshake v0 (raw SASL tokens outside Kafka framing, only clients older than
//! Kafka 1.0 send them) is refused by closing the connection.

use std::sync::Arc;

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use rivulet_protocol::{ResponseError, ResponseKind};

use super::scram::{self, ScramError, ScramMechanism, ScramServer};
use super::{SaslListener, SaslMechanism};
use crate::broker::Broker;
use crate::handlers::str_bytes;

/// What the connection does with a request on a not yet authenticated SASL connection.
#[derive(Debug)]
pub enum Step {
    /// Not an authentication request: serve it as usual (ApiVersions).
    Serve,
    /// Send this response and wait for the next token.
    Continue(Box<ResponseKind>),
    /// Send this response; the connection is now authenticated as this user.
    Authenticated(Box<ResponseKind>, String),
    /// Wait `connection.failed.authentication.delay.ms`, send this response, close.
    Failed(Box<ResponseKind>, String),
    /// Close without an answer.
    Close(String),
}

enum State {
    /// Waiting for SaslHandshake (ApiVersions may come first).
    Handshake,
    /// A mechanism is chosen; waiting for its next token.
    Plain,
    Scram(Box<ScramServer>),
    Complete,
}

/// One connection's authentication.
pub struct Authenticator {
    listener: Arc<SaslListener>,
    state: State,
    mechanism: Option<SaslMechanism>,
}

fn authenticate_response(error: Option<(ResponseError, String)>, auth_bytes: Vec<u8>) -> Box<ResponseKind> {
    let mut response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(auth_bytes));
    if let Some((error, message)) = error {
        response = response.with_error_code(error.code()).with_error_message(Some(str_bytes(message)));
    }
    Box::new(response.into())
}

/// Kafka's message for invalid credentials with a mechanism whose server throws a plain
/// `SaslException` (SCRAM): generic, so it tells nothing about which part was wrong.
fn invalid_credentials_message(mechanism: SaslMechanism) -> String {
    format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}")
}

impl Authenticator {
    pub fn new(listener: Arc<SaslListener>) -> Self {
        Authenticator { listener, state: State::Handshake, mechanism: None }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// The mechanism the client chose, once it did.
    pub fn mechanism(&self) -> Option<SaslMechanism> {
        self.mechanism
    }

    /// Where ApiVersions may be served: only before the handshake.
    fn illegal(&self, what: &str) -> Step {
        Step::Close(format!("ILLEGAL_SASL_STATE: unexpected {what} request during SASL authentication"))
    }

    pub fn on_api_versions(&self) -> Step {
        match self.state {
            State::Handshake => Step::Serve,
            _ => self.illegal("ApiVersions"),
        }
    }

    /// Any request other than ApiVersions, SaslHandshake and SaslAuthenticate.
    pub fn on_other(&self, api: &str) -> Step {
        self.illegal(api)
    }

    pub fn on_handshake(&mut self, version: i16, request: &SaslHandshakeRequest) -> Step {
        if !matches!(self.state, State::Handshake) {
            return self.illegal("SaslHandshake");
        }
        if version == 0 {
            return Step::Close(
                "SaslHandshake v0 (raw SASL tokens without SaslAuthenticate) is not supported".to_string(),
            );
        }
        let enabled: Vec<_> = self.listener.mechanism_names().into_iter().map(str_bytes).collect();
        let requested = request.mechanism.as_str();
        let chosen = SaslMechanism::from_name(requested).filter(|m| self.listener.mechanisms.contains(m));
        let Some(mechanism) = chosen else {
            let response = SaslHandshakeResponse::default()
                .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                .with_mechanisms(enabled);
            return Step::Failed(Box::new(response.into()), format!("unsupported SASL mechanism {requested}"));
        };
        self.mechanism = Some(mechanism);
        self.state = match mechanism {
            SaslMechanism::Plain => State::Plain,
            SaslMechanism::Scram(m) => match scram::new_server_nonce() {
                Ok(nonce) => State::Scram(Box::new(ScramServer::new(m, nonce))),
                Err(e) => return Step::Close(format!("no randomness for a SCRAM nonce: {e}")),
            },
        };
        Step::Continue(Box::new(SaslHandshakeResponse::default().with_mechanisms(enabled).into()))
    }

    pub async fn on_authenticate(&mut self, broker: &Arc<Broker>, request: &SaslAuthenticateRequest) -> Step {
        let token = &request.auth_bytes[..];
        match std::mem::replace(&mut self.state, State::Handshake) {
            State::Plain => self.plain(token),
            State::Scram(server) => self.scram(broker, *server, token).await,
            state @ (State::Handshake | State::Complete) => {
                self.state = state;
                self.illegal("SaslAuthenticate")
            }
        }
    }

    /// PLAIN (RFC 4616): `[authzid] NUL user NUL password`, as Kafka's `PlainSaslServer`.
    fn plain(&mut self, token: &[u8]) -> Step {
        let fail = |message: &str| {
            let response =
                authenticate_response(Some((ResponseError::SaslAuthenticationFailed, message.to_string())), Vec::new());
            Step::Failed(response, message.to_string())
        };
        let Ok(text) = std::str::from_utf8(token) else {
            return fail("Authentication failed: Invalid username or password");
        };
        let parts: Vec<&str> = text.split('\0').collect();
        let [authzid, user, password] = parts.as_slice() else {
            return fail("Invalid SASL/PLAIN response: expected 3 tokens");
        };
        if user.is_empty() {
            return fail("Authentication failed: username not specified");
        }
        if password.is_empty() {
            return fail("Authentication failed: password not specified");
        }
        if !self.listener.plain_users.verify(user, password) {
            return fail("Authentication failed: Invalid username or password");
        }
        if !authzid.is_empty() && authzid != user {
            return fail("Authentication failed: Client requested an authorization id that is different from username");
        }
        self.state = State::Complete;
        Step::Authenticated(authenticate_response(None, Vec::new()), (*user).to_string())
    }

    async fn scram(&mut self, broker: &Arc<Broker>, mut server: ScramServer, token: &[u8]) -> Step {
        let Some(mechanism) = self.mechanism else {
            return self.illegal("SaslAuthenticate");
        };
        let outcome = match server {
            ScramServer::Start { mechanism: scram_mechanism, .. } => match scram::parse_client_first(token) {
                Ok(first) => {
                    let credential = lookup(broker, &first.user, scram_mechanism).await;
                    match credential {
                        Ok(credential) => server.server_first(first, credential).map(|reply| (None, reply)),
                        Err(reason) => {
                            tracing::error!(%reason, "cannot read SCRAM credentials");
                            Err(ScramError::InvalidCredentials)
                        }
                    }
                }
                Err(e) => Err(e),
            },
            _ => server.server_final(token).map(|(user, reply)| (Some(user), reply)),
        };
        match outcome {
            Ok((None, reply)) => {
                self.state = State::Scram(Box::new(server));
                Step::Continue(authenticate_response(None, reply))
            }
            Ok((Some(user), reply)) => {
                self.state = State::Complete;
                Step::Authenticated(authenticate_response(None, reply), user)
            }
            Err(error) => {
                let message = match error {
                    ScramError::InvalidCredentials => invalid_credentials_message(mechanism),
                    ScramError::Refused(message) => message,
                };
                let response =
                    authenticate_response(Some((ResponseError::SaslAuthenticationFailed, message.clone())), Vec::new());
                Step::Failed(response, message)
            }
        }
    }
}

/// The user's credential for `mechanism`, read from the metadata store at each login so
/// changes apply at once on every broker.
async fn lookup(
    broker: &Arc<Broker>,
    user: &str,
    mechanism: ScramMechanism,
) -> Result<Option<rivulet_metadata::ScramCredential>, rivulet_metadata::MetadataError> {
    Ok(broker.metadata.user_scram_credentials(user).await?.remove(mechanism.name()))
}
