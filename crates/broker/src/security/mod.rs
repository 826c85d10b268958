//! Security of client connections: TLS on `SSL` and `SASL_SSL` listeners ([`tls`]), SASL
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER) on `SASL_PLAINTEXT` and `SASL_SSL` listeners, as
//! Kafka's `SaslServerAuthenticator` runs it (KIP-43, KIP-152), the SCRAM credentials
//! KIP-554's APIs manage, and the ACL authorizer every handler consults ([`authorizer`]).
//!
//! What each listener enforces is resolved once at start from the configuration
//! ([`SaslListener`]); every connection accepted on a SASL listener runs an
//! [`authenticator::Authenticator`] before any other request reaches a handler.

pub mod authenticator;
pub mod authorizer;
pub mod jaas;
pub mod oauthbearer;
pub mod pkcs12;
pub mod principal_mapping;
pub mod scram;
pub mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use scram::ScramMechanism;

/// A SASL mechanism Rivulet serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Kafka's mechanism names are case-sensitive (`SaslHandshake` compares exactly).
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "PLAIN" {
            Some(SaslMechanism::Plain)
        } else if name == "OAUTHBEARER" {
            Some(SaslMechanism::OAuthBearer)
        } else {
            ScramMechanism::from_name(name).map(SaslMechanism::Scram)
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// PLAIN's users and passwords (`user_<name>="<password>"` options of the
/// `PlainLoginModule` JAAS entry). Debug shows only the names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PlainUsers(pub BTreeMap<String, String>);

impl fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl PlainUsers {
    /// Whether `user` exists with `password`. The comparison takes the same time whatever
    /// the bytes (and an unknown user costs a comparison too), so timing tells nothing
    /// about a password's prefix.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        let (expected, known) = match self.0.get(user) {
            Some(p) => (p.as_str(), true),
            None => ("", false),
        };
        let equal: bool = expected.as_bytes().ct_eq(password.as_bytes()).into();
        known & equal
    }
}

/// What a `SASL_PLAINTEXT` listener enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslListener {
    /// `listener.name.<listener>.sasl.enabled.mechanisms`, else `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<SaslMechanism>,
    /// Users of PLAIN, from the listener's JAAS configuration (empty unless PLAIN is on).
    pub plain_users: PlainUsers,
    /// KIP-368's `connections.max.reauth.ms` of each mechanism (0: sessions never expire).
    pub max_reauth_ms: Vec<(SaslMechanism, u64)>,
    /// How OAUTHBEARER tokens are validated (none unless OAUTHBEARER is on).
    pub oauthbearer: Option<Arc<oauthbearer::Validator>>,
}

impl SaslListener {
    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// How long a session authenticated with `mechanism` lasts before the client must
    /// re-authenticate; 0 is for ever.
    pub fn max_reauth_ms(&self, mechanism: SaslMechanism) -> u64 {
        self.max_reauth_ms.iter().find(|(m, _)| *m == mechanism).map_or(0, |(_, ms)| *ms)
    }
}

/// The login a broker presents to its peers' SASL inter-broker listener
/// (`sasl.mechanism.inter.broker.protocol`, and the `username` / `password` options of
/// that listener's JAAS entry, as Kafka's inter-broker clients log in). Debug hides the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslLogin").field("mechanism", &self.mechanism).field("username", &self.username).finish()
    }
}

/// How this broker connects to the other brokers of its cluster: the listener it reaches
/// them at (`inter.broker.listener.name` or `security.inter.broker.protocol`), TLS towards
/// it, and the SASL login it presents there.
#[derive(Debug, Clone, Default)]
pub struct InterBroker {
    /// The listener's name as written in `listeners`; empty when none was resolved (a
    /// configuration built by hand in tests).
    pub listener: String,
    /// TLS towards an `SSL` or `SASL_SSL` inter-broker listener.
    pub tls: Option<Arc<tls::TlsListener>>,
    /// The login on a `SASL_PLAINTEXT` or `SASL_SSL` inter-broker listener.
    pub sasl: Option<SaslLogin>,
    /// Why this broker could not authenticate to its peers (the key at fault, and what is
    /// missing). A broker of a cluster refuses to start with it; a single broker has no
    /// peers and starts.
    pub unusable: Option<(String, String)>,
}

/// The JAAS login module PLAIN's users are read from.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
/// The JAAS login module of SCRAM (its options only serve clients; the broker's
/// credentials are in the metadata store).
pub const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_users_verify_exactly() {
        let users = PlainUsers([("alice".to_string(), "alice-secret".to_string())].into_iter().collect());
        assert!(users.verify("alice", "alice-secret"));
        assert!(!users.verify("alice", "alice-secre"));
        assert!(!users.verify("alice", "alice-secret!"));
        assert!(!users.verify("bob", ""));
        assert!(!users.verify("bob", "alice-secret"));
        assert_eq!(format!("{users:?}"), "[\"alice\"]");
    }
}
