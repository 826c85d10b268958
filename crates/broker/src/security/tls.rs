//! TLS on `SSL` and `SASL_SSL` listeners, configured with Kafka's `ssl.*` names (Kafka's
//! `DefaultSslEngineFactory`), served by rustls.
//!
//! Key and certificates come as PEM (`ssl.keystore.type=PEM`): one file holding the private
//! key and the certificate chain (`ssl.keystore.location`), or both inline
//! (`ssl.keystore.key`, `ssl.keystore.certificate.chain`). Client certificates
//! (`ssl.client.auth=required|requested`) are verified against a PEM truststore
//! (`ssl.truststore.location` or `ssl.truststore.certificates`); a verified client's
//! principal is its certificate's subject in RFC 2253 form (`User:CN=app,O=team`), as
//! Kafka's default principal builder gives it. Every key may be set per listener
//! (`listener.name.<listener>.ssl.…`), which wins over the global one.
//!
//! The same settings make the client side of the inter-broker listener: peers' certificates
//! verified against its truststore (their host name too, unless
//! `ssl.endpoint.identification.algorithm` is empty), this broker's certificate offered.
//!
//! What is not served is refused at start rather than ignored (fail closed): JKS and
//! PKCS12 stores, encrypted keys, cipher-suite lists and principal mapping rules other than
//! `DEFAULT`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// What a TLS listener serves: the rustls configuration built from its `ssl.*` settings.
#[derive(Clone)]
pub struct TlsListener {
    pub server: Arc<ServerConfig>,
    pub client_auth: ClientAuth,
    /// How this broker connects to other brokers' listeners of the same name when it is
    /// the inter-broker listener: their certificates verified against the truststore (the
    /// host name too, unless `ssl.endpoint.identification.algorithm` is empty), this
    /// broker's own certificate offered for mutual TLS. None without a truststore.
    pub client: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsListener {
    /// The key stays out of logs; only what is enforced is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("client_auth", &self.client_auth)
            .field("client", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a TLS listener's settings were refused: the key, its value (hidden when secret)
/// and the reason.
#[derive(Debug)]
pub struct TlsConfigError {
    pub key: String,
    pub value: String,
    pub reason: String,
    /// A Kafka setting Rivulet does not offer (a JKS store, cipher lists, ...), as opposed
    /// to a value that is wrong (an unreadable file, a key that does not fit).
    pub unsupported: bool,
}

impl TlsConfigError {
    fn new(key: &str, value: &str, reason: impl Into<String>) -> Self {
        let value = if crate::config::is_sensitive(key) || key.ends_with("keystore.key") {
            "(hidden)".to_string()
        } else {
            value.to_string()
        };
        TlsConfigError { key: key.to_string(), value, reason: reason.into(), unsupported: false }
    }

    fn unsupported(key: &str, value: &str, reason: impl Into<String>) -> Self {
        TlsConfigError { unsupported: true, ..Self::new(key, value, reason) }
    }
}

/// Looks up Kafka `ssl.*` keys for one listener: `listener.name.<listener>.<key>` first,
/// then `<key>`, recording every key it consults so the caller can refuse the others.
struct Settings<'a> {
    props: &'a BTreeMap<String, String>,
    prefix: String,
    used: &'a mut Vec<String>,
}

impl<'a> Settings<'a> {
    fn get(&mut self, key: &str) -> Option<(String, &'a str)> {
        let listener_key = format!("{}{key}", self.prefix);
        self.used.push(key.to_string());
        self.used.push(listener_key.clone());
        match (self.props.get(&listener_key), self.props.get(key)) {
            (Some(v), _) => Some((listener_key, v.as_str())),
            (None, Some(v)) => Some((key.to_string(), v.as_str())),
            (None, None) => None,
        }
    }
}

fn read_file(key: &str, path: &str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|e| TlsConfigError::new(key, path, format!("cannot read {path}: {e}")))
}

/// Resolves the TLS settings of `listener` (named as in `listeners`).
pub fn resolve(
    props: &BTreeMap<String, String>,
    listener: &str,
    used: &mut Vec<String>,
) -> Result<TlsListener, TlsConfigError> {
    let mut settings = Settings { props, prefix: format!("listener.name.{}.", listener.to_ascii_lowercase()), used };

    // Kafka's default `https`: a peer broker's certificate must name the host it is
    // reached at. Empty turns that off (certificates are still verified).
    let verify_host_name = match settings.get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some((key, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "https" => true,
            "" => false,
            _ => return Err(TlsConfigError::new(&key, value, "expected https or empty")),
        },
    };
    // Settings Kafka has that change nothing here.
    for key in [
        "ssl.protocol",
        "ssl.keymanager.algorithm",
        "ssl.trustmanager.algorithm",
        "ssl.secure.random.implementation",
        "ssl.engine.factory.class",
    ] {
        if let Some((key, value)) = settings.get(key) {
            if key.ends_with("ssl.engine.factory.class") {
                return Err(TlsConfigError::unsupported(&key, value, "custom SSL engine factories are not supported"));
            }
        }
    }
    if let Some((key, value)) = settings.get("ssl.cipher.suites") {
        if !value.trim().is_empty() {
            return Err(TlsConfigError::unsupported(
                &key,
                value,
                "cipher-suite lists are not supported; rustls offers only its own modern suites",
            ));
        }
    }
    if let Some((key, value)) = settings.get("ssl.principal.mapping.rules") {
        if value.trim() != "DEFAULT" {
            return Err(TlsConfigError::unsupported(
                &key,
                value,
                "only the DEFAULT principal mapping rule is supported",
            ));
        }
    }

    let versions = protocol_versions(&mut settings)?;
    let (certs, key) = keystore(&mut settings)?;
    let client_auth = match settings.get("ssl.client.auth") {
        None => ClientAuth::None,
        Some((key, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return Err(TlsConfigError::new(&key, value, "expected required, requested or none")),
        },
    };
    let roots = truststore(&mut settings)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsConfigError::new("ssl.enabled.protocols", "", e.to_string()))?;
    let client = match &roots {
        None => None,
        Some(roots) => Some(Arc::new(client_config(
            roots.clone(),
            provider.clone(),
            &versions,
            verify_host_name,
            certs.clone(),
            key.clone_key(),
        )?)),
    };
    let builder = match (client_auth, roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsConfigError::new(
                "ssl.client.auth",
                if client_auth == ClientAuth::Required { "required" } else { "requested" },
                "client certificates need a truststore (ssl.truststore.type=PEM with ssl.truststore.location or \
                 ssl.truststore.certificates)",
            ))
        }
        (_, Some(roots)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if client_auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier
                .build()
                .map_err(|e| TlsConfigError::new("ssl.truststore.location", "", format!("unusable truststore: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| {
        TlsConfigError::new("ssl.keystore.location", "", format!("the key does not fit the certificate chain: {e}"))
    })?;
    Ok(TlsListener { server: Arc::new(server), client_auth, client })
}

/// The TLS client side of the inter-broker listener (see [`TlsListener::client`]).
fn client_config(
    roots: RootCertStore,
    provider: Arc<rustls::crypto::CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    verify_host_name: bool,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, TlsConfigError> {
    let unusable = |e: &dyn fmt::Display| {
        TlsConfigError::new("ssl.truststore.location", "", format!("unusable for connections to other brokers: {e}"))
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| unusable(&e))?;
    let verifier: Arc<dyn ServerCertVerifier> =
        if verify_host_name { verifier } else { Arc::new(AnyHostName(verifier)) };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| unusable(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    builder.with_client_auth_cert(certs, key).map_err(|e| unusable(&e))
}

/// Verifies a server's certificate chain but not the name in it
/// (`ssl.endpoint.identification.algorithm=` empty, as Kafka allows).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `ssl.enabled.protocols` (default `TLSv1.2,TLSv1.3`, as Kafka's).
fn protocol_versions(
    settings: &mut Settings<'_>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsConfigError> {
    let Some((key, value)) = settings.get("ssl.enabled.protocols") else {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    };
    let mut versions = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            other => {
                return Err(TlsConfigError::unsupported(
                    &key,
                    value,
                    format!("{other} is not offered (only TLSv1.2 and TLSv1.3 are)"),
                ))
            }
        }
    }
    if versions.is_empty() {
        return Err(TlsConfigError::new(&key, value, "no protocol enabled"));
    }
    Ok(versions)
}

/// The broker's certificate chain and private key.
fn keystore(
    settings: &mut Settings<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let store_type = settings.get("ssl.keystore.type");
    let location = settings.get("ssl.keystore.location");
    let inline_chain = settings.get("ssl.keystore.certificate.chain");
    let inline_key = settings.get("ssl.keystore.key");
    if let Some((key, value)) = settings.get("ssl.key.password") {
        return Err(TlsConfigError::unsupported(
            &key,
            value,
            "encrypted private keys are not supported: give the key unencrypted (PKCS#8 or PKCS#1 PEM) in a file \
             only the broker can read",
        ));
    }
    if let Some((key, value)) = settings.get("ssl.keystore.password") {
        return Err(TlsConfigError::new(&key, value, "a PEM key store has no password (Kafka refuses one too)"));
    }
    match &store_type {
        Some((_, t)) if t.trim().eq_ignore_ascii_case("PEM") => {}
        Some((key, t)) => {
            return Err(TlsConfigError::unsupported(
                key,
                t,
                "only PEM key stores are supported; convert the store, e.g. `openssl pkcs12 -in store.p12 -nodes`, \
                 and set ssl.keystore.type=PEM",
            ))
        }
        None => {
            return Err(TlsConfigError::unsupported(
                "ssl.keystore.type",
                "JKS (Kafka's default)",
                "only PEM key stores are supported: set ssl.keystore.type=PEM with ssl.keystore.location (key and \
                 certificate chain in one PEM file) or ssl.keystore.key and ssl.keystore.certificate.chain",
            ))
        }
    }
    let (chain_source, key_source, key_name) = match (location, inline_chain, inline_key) {
        (Some((key, path)), None, None) => {
            let pem = read_file(&key, path)?;
            (pem.clone(), pem, key)
        }
        (None, Some((_, chain)), Some((key, private))) => (chain.as_bytes().to_vec(), private.as_bytes().to_vec(), key),
        _ => {
            return Err(TlsConfigError::new(
                "ssl.keystore.location",
                "",
                "a TLS listener needs either ssl.keystore.location or both ssl.keystore.key and \
                 ssl.keystore.certificate.chain",
            ))
        }
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&chain_source)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsConfigError::new(&key_name, "", format!("unreadable certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(TlsConfigError::new(&key_name, "", "no certificate found in the key store"));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_source).map_err(|e| {
        TlsConfigError::new(
            &key_name,
            "",
            format!("no unencrypted private key found ({e}); encrypted keys are not supported"),
        )
    })?;
    Ok((certs, private))
}

/// The certificates client certificates are verified against, if a truststore is set.
fn truststore(settings: &mut Settings<'_>) -> Result<Option<RootCertStore>, TlsConfigError> {
    let store_type = settings.get("ssl.truststore.type");
    let location = settings.get("ssl.truststore.location");
    let inline = settings.get("ssl.truststore.certificates");
    if let Some((key, value)) = settings.get("ssl.truststore.password") {
        return Err(TlsConfigError::new(&key, value, "a PEM truststore has no password (Kafka refuses one too)"));
    }
    let pem = match (location, inline) {
        (None, None) => return Ok(None),
        (Some((key, path)), None) => read_file(&key, path)?,
        (None, Some((_, certificates))) => certificates.as_bytes().to_vec(),
        (Some((key, _)), Some(_)) => {
            return Err(TlsConfigError::new(
                &key,
                "",
                "set ssl.truststore.location or ssl.truststore.certificates, not both",
            ))
        }
    };
    match &store_type {
        Some((_, t)) if t.trim().eq_ignore_ascii_case("PEM") => {}
        Some((key, t)) => return Err(TlsConfigError::unsupported(key, t, "only PEM truststores are supported")),
        None => {
            return Err(TlsConfigError::unsupported(
                "ssl.truststore.type",
                "JKS (Kafka's default)",
                "only PEM truststores are supported: set ssl.truststore.type=PEM",
            ))
        }
    }
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsConfigError::new("ssl.truststore.location", "", format!("unreadable: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| TlsConfigError::new("ssl.truststore.location", "", format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::new("ssl.truststore.location", "", "no certificate found in the truststore"));
    }
    Ok(Some(roots))
}

/// The principal name of a verified client certificate: its subject as RFC 2253 writes
/// it (`CN=app,OU=payments,O=team`, the most specific part first), which is what Kafka's
/// `DefaultKafkaPrincipalBuilder` takes from `X500Principal.getName()`.
pub fn subject_name(certificate: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let in_order: Vec<_> = parsed.subject().iter().collect();
    let rdns: Vec<String> = in_order
        .into_iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type();
                    let name = match x509_parser::objects::oid2abbrev(oid, registry) {
                        Ok(abbrev) => rfc2253_keyword(abbrev),
                        Err(_) => oid.to_id_string(),
                    };
                    let value = match attribute.as_str() {
                        Ok(text) => escape(text),
                        Err(_) => format!("#{}", hex(attribute.as_slice())),
                    };
                    format!("{name}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.join(","))
}

/// RFC 2253 names the attributes Java prints by keyword; the registry's abbreviations of
/// the others are Java's too except for the e-mail address, which Java prints by OID.
fn rfc2253_keyword(abbrev: &str) -> String {
    match abbrev {
        "emailAddress" => "1.2.840.113549.1.9.1".to_string(),
        other => other.to_string(),
    }
}

/// RFC 2253 section 2.4 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2253_escapes_what_it_must() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" lead#"), "\\ lead#");
        assert_eq!(escape("#x "), "\\#x\\ ");
    }

    #[test]
    fn a_listener_without_a_pem_keystore_is_refused_naming_the_key() {
        let props: BTreeMap<String, String> =
            [("ssl.keystore.location".to_string(), "/etc/kafka/broker.jks".to_string())].into_iter().collect();
        let mut used = Vec::new();
        let err = resolve(&props, "SSL", &mut used).unwrap_err();
        assert_eq!(err.key, "ssl.keystore.type");
        assert!(err.reason.contains("only PEM"), "{}", err.reason);
        let props: BTreeMap<String, String> = [
            ("ssl.keystore.type".to_string(), "PEM".to_string()),
            ("listener.name.ssl.ssl.keystore.location".to_string(), "/nonexistent.pem".to_string()),
        ]
        .into_iter()
        .collect();
        let err = resolve(&props, "SSL", &mut used).unwrap_err();
        assert_eq!(err.key, "listener.name.ssl.ssl.keystore.location");
        assert!(err.reason.contains("cannot read"), "{}", err.reason);
        assert!(used.iter().any(|k| k == "ssl.keystore.type"));
    }

    #[test]
    fn an_encrypted_key_is_refused_with_its_password_hidden() {
        let props: BTreeMap<String, String> = [
            ("ssl.keystore.type".to_string(), "PEM".to_string()),
            ("ssl.key.password".to_string(), "s3cret".to_string()),
        ]
        .into_iter()
        .collect();
        let err = resolve(&props, "SSL", &mut Vec::new()).unwrap_err();
        assert_eq!((err.key.as_str(), err.value.as_str()), ("ssl.key.password", "(hidden)"));
    }
}
