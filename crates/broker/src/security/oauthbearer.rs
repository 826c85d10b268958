//! SASL/OAUTHBEARER (RFC 7628, KIP-255, KIP-768) as Kafka's `OAuthBearerSaslServer` runs
//! it: the client's first message carries a bearer token (a JWT), the broker validates it
//! and the connection is authenticated as `User:<the token's subject>`.
//!
//! Two validators, chosen per listener as Kafka chooses its server callback handler:
//!
//! * **Unsecured JWS** (Kafka's default, `OAuthBearerUnsecuredValidatorCallbackHandler`,
//!   for development only): the token is not signed (`alg: none`, empty signature); it
//!   needs an `exp` claim and a string principal claim. Options come from the listener's
//!   `OAuthBearerLoginModule` JAAS entry: `unsecuredValidatorPrincipalClaimName` (`sub`),
//!   `unsecuredValidatorScopeClaimName` (`scope`), `unsecuredValidatorRequiredScope`
//!   (space-separated) and `unsecuredValidatorAllowableClockSkewMs` (0).
//! * **Signed JWTs** (`listener.name.<l>.oauthbearer.sasl.server.callback.handler.class=
//!   org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler`, as
//!   Kafka's `BrokerJwtValidator`): the signature is verified against the keys of a JWKS
//!   file (`sasl.oauthbearer.jwks.endpoint.url=file:///…`, read again when it changes, so
//!   keys rotate without a restart); `exp` and `iat` are required, `alg: none` is refused,
//!   `sasl.oauthbearer.expected.audience` / `.expected.issuer` are checked when set, the
//!   subject comes from `sasl.oauthbearer.sub.claim.name` (`sub`), and
//!   `sasl.oauthbearer.clock.skew.seconds` (30) is allowed either way.
//!
//! A token that does not validate is answered, as Kafka does, with a JSON error
//! (`{"status":"invalid_token"}`) in a successful SaslAuthenticate response; the client
//! must then send `%x01`, and only that is failed with SASL_AUTHENTICATION_FAILED. A
//! malformed first message fails at once with the generic message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

/// The JAAS login module of OAUTHBEARER.
pub const LOGIN_MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
/// The server callback handler class that selects signed-JWT validation.
pub const VALIDATOR_CALLBACK_HANDLER: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";
/// Kafka's former name of the unsecured validator, accepted as the explicit default.
pub const UNSECURED_CALLBACK_HANDLER: &str =
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// How a listener's OAUTHBEARER tokens are validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatorConfig {
    Unsecured {
        principal_claim: String,
        scope_claim: String,
        required_scope: Vec<String>,
        clock_skew_ms: u64,
    },
    Jwks {
        /// The JWKS file (`file:` URL of `sasl.oauthbearer.jwks.endpoint.url`).
        path: PathBuf,
        expected_audience: Vec<String>,
        expected_issuer: Option<String>,
        sub_claim: String,
        scope_claim: String,
        clock_skew_s: u64,
    },
}

/// A validated token: who it names and when it expires.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidToken {
    pub principal: String,
    /// Milliseconds since the epoch.
    pub expires_ms: u64,
}

/// Why a token was refused: the RFC 7628 status sent to the client (`invalid_token`, or
/// `insufficient_scope` with the scope needed) and the reason logged on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: &'static str,
    pub scope: Option<String>,
    pub reason: String,
}

impl Rejection {
    fn invalid(reason: impl Into<String>) -> Self {
        Rejection { status: "invalid_token", scope: None, reason: reason.into() }
    }

    /// The error the server sends back (Kafka's `jsonErrorResponse`).
    pub fn json(&self) -> String {
        let quoted = |s: &str| Value::String(s.to_string()).to_string();
        let scope = self.scope.as_deref().map_or(String::new(), |s| format!(", \"scope\":{}", quoted(s)));
        format!("{{\"status\":{}{scope}}}", quoted(self.status))
    }
}

/// The client's first message: `n,[a=<authzid>],\x01auth=Bearer <token>\x01[key=value\x01]...\x01`.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst {
    pub authzid: String,
    pub token: String,
    pub extensions: BTreeMap<String, String>,
}

/// Parses the client's first message as Kafka's `OAuthBearerClientInitialResponse`.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, String> {
    const INVALID: &str = "Invalid OAUTHBEARER client first message";
    let text = std::str::from_utf8(message).map_err(|_| INVALID.to_string())?;
    let rest = text.strip_prefix("n,").ok_or(INVALID)?;
    let (gs2_authzid, rest) = rest.split_once(',').ok_or(INVALID)?;
    let authzid = match gs2_authzid {
        "" => String::new(),
        a => {
            let name = a.strip_prefix("a=").filter(|n| !n.is_empty()).ok_or(INVALID)?;
            if name.bytes().any(|b| b == 0 || b > 0x7f) {
                return Err(INVALID.into());
            }
            name.replace("=2C", ",").replace("=3D", "=")
        }
    };
    // `\x01` key=value pairs, then a final `\x01`.
    let pairs = rest.strip_prefix('\x01').and_then(|r| r.strip_suffix("\x01\x01")).ok_or(INVALID)?;
    let mut auth = None;
    let mut extensions = BTreeMap::new();
    for pair in pairs.split('\x01') {
        let (key, value) = pair.split_once('=').ok_or(INVALID)?;
        let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic());
        let value_ok = !value.is_empty()
            && value.bytes().all(|b| (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        if !key_ok || !value_ok {
            return Err(INVALID.into());
        }
        if key == "auth" {
            auth = Some(value);
        } else {
            extensions.insert(key.to_string(), value.to_string());
        }
    }
    let auth = auth.ok_or_else(|| format!("{INVALID}: 'auth' not specified"))?;
    let (scheme, token) = auth.split_once(' ').ok_or_else(|| format!("{INVALID}: invalid 'auth' format"))?;
    let token = token.trim_start_matches(' ');
    let token_ok = !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !token_ok || scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("{INVALID}: invalid 'auth' format"));
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(format!("Invalid scheme in OAUTHBEARER client first message: {scheme}"));
    }
    Ok(ClientFirst { authzid, token: token.to_string(), extensions })
}

/// The keys of a JWKS file, read again when the file's modification time changes.
#[derive(Debug, Default)]
struct KeyCache {
    modified: Option<SystemTime>,
    keys: Option<JwkSet>,
}

/// A listener's validator: its configuration and, for signed tokens, the cached keys.
#[derive(Debug)]
pub struct Validator {
    pub config: ValidatorConfig,
    keys: Mutex<KeyCache>,
}

impl PartialEq for Validator {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for Validator {}

/// Reads and parses a JWKS file.
fn read_jwks(path: &std::path::Path) -> Result<(Option<SystemTime>, JwkSet), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read(path).map_err(|e| format!("cannot read the JWKS file {}: {e}", path.display()))?;
    let keys: JwkSet = serde_json::from_slice(&text)
        .map_err(|e| format!("the JWKS file {} is not a JSON Web Key Set: {e}", path.display()))?;
    Ok((modified, keys))
}

/// Seconds since the epoch of a numeric claim (JWT NumericDate, fractions allowed).
fn numeric_claim(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Option<f64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| Rejection::invalid(format!("The {name} claim is not a number"))),
        Some(_) => Err(Rejection::invalid(format!("The {name} claim had the incorrect type"))),
    }
}

/// A scope claim: a space-separated string or a list of strings.
fn scope_of(claims: &serde_json::Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).map(String::from).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Validator {
    /// Builds the validator; a JWKS file must be readable and well formed now, so a broker
    /// with a wrong path refuses to start rather than refusing every client.
    pub fn new(config: ValidatorConfig) -> Result<Self, String> {
        let mut cache = KeyCache::default();
        if let ValidatorConfig::Jwks { path, .. } = &config {
            let (modified, keys) = read_jwks(path)?;
            if keys.keys.is_empty() {
                return Err(format!("the JWKS file {} holds no key", path.display()));
            }
            cache = KeyCache { modified, keys: Some(keys) };
        }
        Ok(Validator { config, keys: Mutex::new(cache) })
    }

    /// Validates `token` now.
    pub fn validate(&self, token: &str) -> Result<ValidToken, Rejection> {
        self.validate_at(token, now_ms())
    }

    fn validate_at(&self, token: &str, now_ms: u64) -> Result<ValidToken, Rejection> {
        match &self.config {
            ValidatorConfig::Unsecured { principal_claim, scope_claim, required_scope, clock_skew_ms } => {
                validate_unsecured(token, now_ms, principal_claim, scope_claim, required_scope, *clock_skew_ms)
            }
            ValidatorConfig::Jwks { .. } => self.validate_signed(token, now_ms),
        }
    }

    /// The current keys, re-read if the file changed since (a file being rewritten that
    /// does not parse keeps the keys read before).
    fn current_keys(&self, path: &std::path::Path) -> Option<JwkSet> {
        let mut cache = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified != cache.modified {
            match read_jwks(path) {
                Ok((modified, keys)) => {
                    tracing::info!(path = %path.display(), keys = keys.keys.len(), "JWKS file read again");
                    *cache = KeyCache { modified, keys: Some(keys) };
                }
                Err(reason) => tracing::warn!(%reason, "keeping the keys read before"),
            }
        }
        cache.keys.clone()
    }

    fn validate_signed(&self, token: &str, now_ms: u64) -> Result<ValidToken, Rejection> {
        let ValidatorConfig::Jwks { path, expected_audience, expected_issuer, sub_claim, scope_claim: _, clock_skew_s } =
            &self.config
        else {
            return Err(Rejection::invalid("not a signed-token validator"));
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Rejection::invalid(format!("Could not validate the access token: malformed header: {e}")))?;
        let keys = self.current_keys(path).unwrap_or(JwkSet { keys: Vec::new() });
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            // Without a key id, the one key of the set (if there is exactly one).
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| {
            Rejection::invalid(format!(
                "Could not validate the access token: no key in the JWKS matches the key id {:?}",
                header.kid
            ))
        })?;
        if let Some(alg) = jwk.common.key_algorithm {
            if format!("{alg:?}") != format!("{:?}", header.alg) {
                return Err(Rejection::invalid(format!(
                    "Could not validate the access token: the key is for {alg:?}, the token is signed with {:?}",
                    header.alg
                )));
            }
        }
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| Rejection::invalid(format!("Could not validate the access token: unusable key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = *clock_skew_s;
        validation.validate_exp = false; // checked below, with Kafka's rules and clock
        validation.validate_aud = !expected_audience.is_empty();
        if !expected_audience.is_empty() {
            validation.set_audience(expected_audience);
        }
        if let Some(issuer) = expected_issuer {
            validation.set_issuer(&[issuer]);
        }
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|e| Rejection::invalid(format!("Could not validate the access token: {e}")))?;
        let claims = data.claims;
        let skew_ms = clock_skew_s.saturating_mul(1000);
        let exp = numeric_claim(&claims, "exp")?
            .ok_or_else(|| Rejection::invalid("Could not validate the access token: no exp claim"))?;
        let iat = numeric_claim(&claims, "iat")?
            .ok_or_else(|| Rejection::invalid("Could not validate the access token: no iat claim"))?;
        check_times(now_ms, skew_ms, exp, Some(iat), numeric_claim(&claims, "nbf")?)?;
        let principal = match claims.get(sub_claim.as_str()) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(Rejection::invalid(format!(
                    "Could not validate the access token: the {sub_claim} claim is missing or not a non-empty string"
                )))
            }
        };
        Ok(ValidToken { principal, expires_ms: (exp * 1000.0) as u64 })
    }
}

/// `exp` must be after now (less the skew), `iat` and `nbf` not after now (plus the skew),
/// and `exp` after `iat` (Kafka's `OAuthBearerValidationUtils`).
fn check_times(now_ms: u64, skew_ms: u64, exp: f64, iat: Option<f64>, nbf: Option<f64>) -> Result<(), Rejection> {
    let now = now_ms as f64;
    let skew = skew_ms as f64;
    if now - skew >= exp * 1000.0 {
        return Err(Rejection::invalid(format!(
            "The indicated time ({now_ms} ms) minus allowable clock skew ({skew_ms} ms) was on or after the \
             Expiration Time value ({exp} seconds)"
        )));
    }
    for (name, value) in [("Issued At", iat), ("Not Before", nbf)] {
        if let Some(at) = value {
            if at * 1000.0 > now + skew {
                return Err(Rejection::invalid(format!(
                    "The {name} value ({at} seconds) was after the indicated time ({now_ms} ms) plus allowable \
                     clock skew ({skew_ms} ms)"
                )));
            }
        }
    }
    if let Some(iat) = iat {
        if exp <= iat {
            return Err(Rejection::invalid(format!(
                "The Expiration Time time ({exp} seconds) was not after the Issued At time ({iat} seconds)"
            )));
        }
    }
    Ok(())
}

/// Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler`.
fn validate_unsecured(
    token: &str,
    now_ms: u64,
    principal_claim: &str,
    scope_claim: &str,
    required_scope: &[String],
    clock_skew_ms: u64,
) -> Result<ValidToken, Rejection> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(Rejection::invalid(
            "Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values",
        ));
    };
    if !signature.is_empty() {
        return Err(Rejection::invalid("Unsecured JWS compact serializations must have an empty signature"));
    }
    let decode = |part: &str, what: &str| -> Result<serde_json::Map<String, Value>, Rejection> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| Rejection::invalid(format!("The JWS {what} is not Base64URL")))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Rejection::invalid(format!("The JWS {what} is not a JSON object"))),
        }
    };
    decode(header, "header")?;
    let claims = decode(payload, "payload")?;
    let principal = match claims.get(principal_claim) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Rejection::invalid(format!("The {principal_claim} claim had the incorrect type"))),
        None => return Err(Rejection::invalid(format!("Required claim missing: {principal_claim}"))),
    };
    let exp = numeric_claim(&claims, "exp")?.ok_or_else(|| Rejection::invalid("Required claim missing: exp"))?;
    check_times(now_ms, clock_skew_ms, exp, numeric_claim(&claims, "iat")?, None)?;
    let scope = scope_of(&claims, scope_claim);
    if let Some(missing) = required_scope.iter().find(|s| !scope.contains(s)) {
        return Err(Rejection {
            status: "insufficient_scope",
            scope: Some(required_scope.join(" ")),
            reason: format!("The provided scope ({scope:?}) was missing a required scope ({missing})"),
        });
    }
    Ok(ValidToken { principal, expires_ms: (exp * 1000.0).max(0.0) as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsecured(claims: &str) -> String {
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims))
    }

    fn validator() -> Validator {
        Validator::new(ValidatorConfig::Unsecured {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: vec![],
            clock_skew_ms: 0,
        })
        .unwrap()
    }

    #[test]
    fn client_first_messages_parse_as_kafka_reads_them() {
        let first = parse_client_first(b"n,,\x01auth=Bearer abc.def.\x01\x01").unwrap();
        assert_eq!((first.authzid.as_str(), first.token.as_str()), ("", "abc.def."));
        let first = parse_client_first(b"n,a=alice,\x01auth=bearer t\x01traceId=42\x01\x01").unwrap();
        assert_eq!(first.authzid, "alice");
        assert_eq!(first.extensions.get("traceId").map(String::as_str), Some("42"));
        for bad in [
            &b"n,,auth=Bearer t\x01\x01"[..],
            b"y,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01key=v\x01\x01",
            b"n,,\x01auth=Bearer t!\x01\x01",
            b"",
            b"n,,\x01auth=Basic dXNlcg\x01\x01",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unsecured_tokens_need_a_principal_and_a_future_expiry() {
        let v = validator();
        let now = 1_800_000_000_000u64;
        let ok = unsecured(r#"{"sub":"alice","iat":1799999990,"exp":1800000060.5}"#);
        assert_eq!(
            v.validate_at(&ok, now),
            Ok(ValidToken { principal: "alice".into(), expires_ms: 1_800_000_060_500 })
        );
        let expired = unsecured(r#"{"sub":"alice","exp":1800000000}"#);
        assert!(v.validate_at(&expired, now).unwrap_err().reason.contains("Expiration Time"));
        assert!(v.validate_at(&unsecured(r#"{"exp":1800000060}"#), now).unwrap_err().reason.contains("sub"));
        assert!(v.validate_at(&unsecured(r#"{"sub":"a"}"#), now).unwrap_err().reason.contains("exp"));
        assert!(v.validate_at(&unsecured(r#"{"sub":7,"exp":1800000060}"#), now).is_err());
        let signed = format!("{}sig", unsecured(r#"{"sub":"alice","exp":1800000060}"#));
        assert!(v.validate_at(&signed, now).is_err(), "a signature is not an unsecured JWS");
        assert!(v.validate_at("a.b", now).is_err());
    }

    #[test]
    fn a_required_scope_is_insufficient_when_missing() {
        let v = Validator::new(ValidatorConfig::Unsecured {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: vec!["kafka".into()],
            clock_skew_ms: 0,
        })
        .unwrap();
        let now = 1_800_000_000_000u64;
        let without = unsecured(r#"{"sub":"a","exp":1800000060,"scope":"other"}"#);
        let rejection = v.validate_at(&without, now).unwrap_err();
        assert_eq!(rejection.json(), r#"{"status":"insufficient_scope", "scope":"kafka"}"#);
        let with = unsecured(r#"{"sub":"a","exp":1800000060,"scope":["other","kafka"]}"#);
        assert!(v.validate_at(&with, now).is_ok());
    }

    #[test]
    fn a_missing_jwks_file_is_refused_at_start() {
        let config = ValidatorConfig::Jwks {
            path: "/nonexistent/jwks.json".into(),
            expected_audience: vec![],
            expected_issuer: None,
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_s: 30,
        };
        assert!(Validator::new(config).unwrap_err().contains("cannot read the JWKS file"));
    }
}
