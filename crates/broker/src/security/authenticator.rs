//! The SASL state machine of one connection on a `SASL_PLAINTEXT` listener, as Kafka's
//! `SaslServerAuthenticator`: ApiVersions and SaslHandshake (v1) first, then the
//! mechanism's tokens in SaslAuthenticate requests (KIP-152), then the connection is
//! authenticated as `User:<name>`. Any other request before that closes the connection
//! (Kafka's ILLEGAL_SASL_STATE); a failure is answered after
//! `connection.failed.authentication.delay.ms` and closes it.
//!
//! SaslHandshake v0 (raw SASL tokens outside Kafka framing, only clients older than
//! Kafka 1.0 send them) is refused by closing the connection.
//!
//! KIP-368: with `connections.max.reauth.ms` set for the mechanism, a session lasts that
//! long (SaslAuthenticate v1+ tells the client in `session_lifetime_ms`). The client
//! re-authenticates on the same connection with SaslHandshake and SaslAuthenticate again,
//! with the same mechanism and as the same principal, or the connection closes; once the
//! session expired, any other request closes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use rivulet_protocol::{ResponseError, ResponseKind};

use super::oauthbearer;
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
    /// Send this response; the session is renewed for the same user (KIP-368).
    Reauthenticated(Box<ResponseKind>),
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
    OAuthBearer,
    /// The token was refused and the client told why (a JSON error): it must answer with
    /// `%x01`, then the authentication fails with this message (logged with the reason).
    OAuthBearerRefused {
        message: String,
        reason: String,
    },
    Complete,
}

/// One connection's authentication.
pub struct Authenticator {
    listener: Arc<SaslListener>,
    state: State,
    mechanism: Option<SaslMechanism>,
    /// The user the connection authenticated as first: a re-authentication must not
    /// change it.
    user: Option<String>,
    /// When the current session ends (KIP-368); none when it never does.
    session_expires: Option<Instant>,
    /// A re-authentication is under way (begun by a SaslHandshake on an authenticated
    /// connection).
    reauthenticating: bool,
    /// Whether the last SaslAuthenticate's version (v1+) lets the client learn its session
    /// lifetime and re-authenticate.
    supports_reauthentication: bool,
    /// When the last re-authentication began.
    last_reauthentication: Option<Instant>,
    /// When the credential presented expires (an OAUTHBEARER token's `exp`): a session
    /// with a lifetime ends no later (KIP-368).
    credential_expires: Option<std::time::SystemTime>,
}

/// Kafka's `MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS`: a client may re-authenticate at most
/// once a second.
const MIN_REAUTH_INTERVAL: Duration = Duration::from_secs(1);

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
        Authenticator {
            listener,
            state: State::Handshake,
            mechanism: None,
            user: None,
            session_expires: None,
            reauthenticating: false,
            supports_reauthentication: false,
            last_reauthentication: None,
            credential_expires: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Whether the session ended: the client should have re-authenticated by `now`.
    pub fn session_expired(&self, now: Instant) -> bool {
        self.is_complete() && self.session_expires.is_some_and(|end| now >= end)
    }

    /// Whether a re-authentication is under way.
    pub fn is_reauthenticating(&self) -> bool {
        self.reauthenticating
    }

    /// A SaslHandshake arrived on the authenticated connection: it begins a
    /// re-authentication (KIP-368), after which the connection serves nothing else until it
    /// is done, if Kafka's `KafkaChannel.maybeBeginServerReauthentication` would begin one:
    /// the session has a lifetime, the client authenticated with SaslAuthenticate v1+ and
    /// the last re-authentication began at least a second ago. Otherwise (false) the
    /// handshake is an ordinary request, answered ILLEGAL_SASL_STATE.
    pub fn begin_reauthentication(&mut self, now: Instant) -> bool {
        if !self.is_complete()
            || self.session_expires.is_none()
            || !self.supports_reauthentication
            || self.last_reauthentication.is_some_and(|at| now.saturating_duration_since(at) < MIN_REAUTH_INTERVAL)
        {
            return false;
        }
        self.last_reauthentication = Some(now);
        self.state = State::Handshake;
        self.reauthenticating = true;
        true
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
            State::Handshake if !self.reauthenticating => Step::Serve,
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
        let chosen = match (chosen, self.mechanism) {
            // Kafka refuses a re-authentication with another mechanism than the session's.
            (Some(m), Some(previous)) if self.reauthenticating && m != previous => None,
            (chosen, _) => chosen,
        };
        let Some(mechanism) = chosen else {
            let response = SaslHandshakeResponse::default()
                .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                .with_mechanisms(enabled);
            let reason = match self.mechanism {
                Some(previous) if self.reauthenticating => {
                    format!("SASL mechanism changed from {previous} to {requested} during re-authentication")
                }
                _ => format!("unsupported SASL mechanism {requested}"),
            };
            return Step::Failed(Box::new(response.into()), reason);
        };
        self.mechanism = Some(mechanism);
        self.state = match mechanism {
            SaslMechanism::Plain => State::Plain,
            SaslMechanism::OAuthBearer => State::OAuthBearer,
            SaslMechanism::Scram(m) => match scram::new_server_nonce() {
                Ok(nonce) => State::Scram(Box::new(ScramServer::new(m, nonce))),
                Err(e) => return Step::Close(format!("no randomness for a SCRAM nonce: {e}")),
            },
        };
        Step::Continue(Box::new(SaslHandshakeResponse::default().with_mechanisms(enabled).into()))
    }

    pub async fn on_authenticate(
        &mut self,
        broker: &Arc<Broker>,
        version: i16,
        request: &SaslAuthenticateRequest,
    ) -> Step {
        let token = &request.auth_bytes[..];
        let step = match std::mem::replace(&mut self.state, State::Handshake) {
            State::Plain => self.plain(token),
            State::Scram(server) => self.scram(broker, *server, token).await,
            State::OAuthBearer => self.oauthbearer(token),
            State::OAuthBearerRefused { message, reason } if token == [0x01] => {
                let response =
                    authenticate_response(Some((ResponseError::SaslAuthenticationFailed, message)), Vec::new());
                Step::Failed(response, reason)
            }
            // Anything else after a refusal starts over, as Kafka's server does.
            State::OAuthBearerRefused { .. } => self.oauthbearer(token),
            state @ (State::Handshake | State::Complete) => {
                self.state = state;
                return self.illegal("SaslAuthenticate");
            }
        };
        let Step::Authenticated(mut response, user) = step else { return step };
        if self.reauthenticating {
            let previous = self.user.as_deref().unwrap_or_default();
            if previous != user {
                let message =
                    format!("Cannot change principals during re-authentication from User:{previous}: User:{user}");
                let response =
                    authenticate_response(Some((ResponseError::SaslAuthenticationFailed, message.clone())), Vec::new());
                return Step::Failed(response, message);
            }
        }
        let mut lifetime_ms = self.mechanism.map_or(0, |m| self.listener.max_reauth_ms(m));
        // Kafka's `SaslServerAuthenticator`: with re-authentication on, a session ends when
        // its credential does, if that is sooner.
        if let (true, Some(expires)) = (lifetime_ms > 0, self.credential_expires) {
            let left = expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
            lifetime_ms = lifetime_ms.min((left.as_millis() as u64).max(1));
        }
        self.session_expires = (lifetime_ms > 0).then(|| Instant::now() + Duration::from_millis(lifetime_ms));
        self.supports_reauthentication = version >= 1;
        // The field exists from v1; a v0 client is not told and is cut off at expiry, as
        // Kafka does with clients that cannot re-authenticate.
        if let (true, ResponseKind::SaslAuthenticate(r)) = (version >= 1, response.as_mut()) {
            r.session_lifetime_ms = i64::try_from(lifetime_ms).unwrap_or(i64::MAX);
        }
        if std::mem::replace(&mut self.reauthenticating, false) {
            Step::Reauthenticated(response)
        } else {
            self.user = Some(user.clone());
            Step::Authenticated(response, user)
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

    /// OAUTHBEARER (RFC 7628): the bearer token of the client's first message, validated
    /// as the listener says (see [`oauthbearer`]).
    fn oauthbearer(&mut self, token: &[u8]) -> Step {
        let generic = || {
            let message = invalid_credentials_message(SaslMechanism::OAuthBearer);
            authenticate_response(Some((ResponseError::SaslAuthenticationFailed, message)), Vec::new())
        };
        let first = match oauthbearer::parse_client_first(token) {
            Ok(first) => first,
            Err(reason) => return Step::Failed(generic(), reason),
        };
        let Some(validator) = self.listener.oauthbearer.clone() else {
            return Step::Failed(generic(), "OAUTHBEARER has no validator on this listener".to_string());
        };
        match validator.validate(&first.token) {
            Ok(valid) => {
                if !first.authzid.is_empty() && first.authzid != valid.principal {
                    let message = format!(
                        "Authentication failed: Client requested an authorization id ({}) that is different from \
                         the token's principal name ({})",
                        first.authzid, valid.principal
                    );
                    let response = authenticate_response(
                        Some((ResponseError::SaslAuthenticationFailed, message.clone())),
                        Vec::new(),
                    );
                    return Step::Failed(response, message);
                }
                self.credential_expires =
                    Some(std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(valid.expires_ms));
                self.state = State::Complete;
                Step::Authenticated(authenticate_response(None, Vec::new()), valid.principal)
            }
            Err(rejection) => {
                let message = rejection.json();
                tracing::info!(reason = %rejection.reason, "OAUTHBEARER token refused");
                self.state = State::OAuthBearerRefused { message: message.clone(), reason: rejection.reason };
                Step::Continue(authenticate_response(None, message.into_bytes()))
            }
        }
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
