//! What a handler knows about a request besides its body: who sent it, over which
//! listener, as whom, and the header fields that shape the answer (mirrors Kafka's
//! `RequestContext`).
//!
//! Every handler takes one [`RequestContext`], so a fact about the connection — today the
//! peer, the listener and the principal an authenticator established — reaches every
//! API the same way instead of being threaded into the few handlers that needed it first.
//! A connection on a PLAINTEXT listener is [`KafkaPrincipal::anonymous`] (`User:ANONYMOUS`),
//! as Kafka's own PLAINTEXT listeners report; on a SASL_PLAINTEXT listener it is
//! `User:<name>` once the SASL exchange succeeded (no request reaches a handler before).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{ApiKey, RequestHeader};
use rivulet_protocol::kafka_protocol::protocol::StrBytes;

/// The security protocol of the listener a connection came in on, under Kafka's names
/// (`listener.security.protocol.map` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    Plaintext,
    /// TLS, optionally with client certificates.
    Ssl,
    /// SASL authentication over a plain socket (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses Kafka's name for a protocol (case-insensitive, as Kafka's `forName`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// The name Kafka gives the protocol (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An authenticated identity, as Kafka's `KafkaPrincipal`: a type (`User` for every
/// built-in authenticator) and a name. Displayed `type:name`, the form ACLs name it by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    /// The principal type of every built-in Kafka authenticator.
    pub const USER_TYPE: &'static str = "User";

    /// `User:<name>`: a connection that authenticated as `name`.
    pub fn user(name: &str) -> Self {
        KafkaPrincipal { principal_type: Self::USER_TYPE.to_string(), name: name.to_string() }
    }

    /// `User:ANONYMOUS`: what Kafka assigns a connection that did not authenticate.
    pub fn anonymous() -> Self {
        KafkaPrincipal { principal_type: Self::USER_TYPE.to_string(), name: "ANONYMOUS".to_string() }
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// One request's context, built by the connection from the decoded header and what it
/// knows about itself.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The API the request is for; the body passed beside the context is this API's.
    pub api_key: ApiKey,
    /// The request's version: decides which fields the request carries and which the
    /// response may carry. Always within the range `versions::SUPPORTED_APIS` lists.
    pub api_version: i16,
    /// Echoed in the response header; the client matches responses to requests by it.
    pub correlation_id: i32,
    /// The client's self-chosen name (`client.id`); empty when the header carries none.
    /// Kafka reports it in group membership (DescribeGroups) and uses it for quotas.
    pub client_id: StrBytes,
    /// The address the connection came from; Kafka reports its IP as a group member's
    /// `client_host`.
    pub peer: SocketAddr,
    /// The name of the configured listener (`listeners`, e.g. `PLAINTEXT`) whose socket
    /// accepted the connection.
    pub listener_name: Arc<str>,
    /// How the connection is secured: the protocol of its listener.
    pub security_protocol: SecurityProtocol,
    /// Who the connection authenticated as: [`KafkaPrincipal::anonymous`] on PLAINTEXT
    /// listeners, `User:<name>` after SASL, `User:<subject>` with a client certificate;
    /// the authorizer checks it.
    pub principal: Arc<KafkaPrincipal>,
    /// The client software's name and version from its ApiVersions v3+ request (KIP-511),
    /// `unknown` until one arrives, as Kafka's `ClientInformation`.
    pub client_software_name: Arc<str>,
    pub client_software_version: Arc<str>,
}

/// Kafka's `ClientInformation.UNKNOWN_NAME_OR_VERSION`.
pub const UNKNOWN_SOFTWARE: &str = "unknown";

impl RequestContext {
    /// The context of a request with `header` (already validated as `api_key` at a
    /// supported version) on the connection `connection`.
    pub fn new(header: &RequestHeader, api_key: ApiKey, connection: &ConnectionContext) -> Self {
        RequestContext {
            api_key,
            api_version: header.request_api_version,
            correlation_id: header.correlation_id,
            client_id: header.client_id.clone().unwrap_or_default(),
            peer: connection.peer,
            listener_name: connection.listener_name.clone(),
            security_protocol: connection.security_protocol,
            principal: connection.principal.clone(),
            client_software_name: connection.client_software_name.clone(),
            client_software_version: connection.client_software_version.clone(),
        }
    }
}

/// What a connection knows about itself from its accept on: the part of every
/// [`RequestContext`] that does not change between its requests.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// See [`RequestContext::peer`].
    pub peer: SocketAddr,
    /// See [`RequestContext::listener_name`].
    pub listener_name: Arc<str>,
    /// See [`RequestContext::security_protocol`].
    pub security_protocol: SecurityProtocol,
    /// See [`RequestContext::principal`].
    pub principal: Arc<KafkaPrincipal>,
    /// See [`RequestContext::client_software_name`].
    pub client_software_name: Arc<str>,
    pub client_software_version: Arc<str>,
}

impl ConnectionContext {
    /// A plaintext, unauthenticated connection from `peer` on the listener `listener_name`.
    pub fn plaintext(peer: SocketAddr, listener_name: Arc<str>) -> Self {
        Self::new(peer, listener_name, SecurityProtocol::Plaintext)
    }

    /// A connection on a listener of `security_protocol`, anonymous until an authenticator
    /// sets its principal.
    pub fn new(peer: SocketAddr, listener_name: Arc<str>, security_protocol: SecurityProtocol) -> Self {
        ConnectionContext {
            peer,
            listener_name,
            security_protocol,
            principal: Arc::new(KafkaPrincipal::anonymous()),
            client_software_name: Arc::from(UNKNOWN_SOFTWARE),
            client_software_version: Arc::from(UNKNOWN_SOFTWARE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_principal_displays_as_kafka_does() {
        assert_eq!(KafkaPrincipal::anonymous().to_string(), "User:ANONYMOUS");
    }

    #[test]
    fn security_protocols_have_kafka_names() {
        let names: Vec<String> = [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(names, ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]);
    }

    #[test]
    fn context_takes_header_fields_and_connection_facts() {
        let peer: SocketAddr = ([127, 0, 0, 1], 40_000).into();
        let connection = ConnectionContext::plaintext(peer, Arc::from("INTERNAL"));
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(99)
            .with_client_id(Some(StrBytes::from_static_str("consumer-1")));
        let ctx = RequestContext::new(&header, ApiKey::Metadata, &connection);
        assert_eq!(ctx.api_key, ApiKey::Metadata);
        assert_eq!((ctx.api_version, ctx.correlation_id), (12, 99));
        assert_eq!(ctx.client_id.as_str(), "consumer-1");
        assert_eq!(ctx.peer, peer);
        assert_eq!(&*ctx.listener_name, "INTERNAL");
        assert_eq!(ctx.security_protocol, SecurityProtocol::Plaintext);
        assert_eq!(ctx.principal.to_string(), "User:ANONYMOUS");

        let anonymous_client = RequestContext::new(&header.with_client_id(None), ApiKey::Metadata, &connection);
        assert_eq!(anonymous_client.client_id.as_str(), "");
    }
}
