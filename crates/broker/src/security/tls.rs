//! TLS on `SSL` and `SASL_SSL` listeners, configured with Kafka's `ssl.*` names (Kafka's
//! `DefaultSslEngineFactory`), served by rustls.
//!
//! Key and certificates come as PEM (`ssl.keystore.type=PEM`): one file holding the private
//! key and the certificate chain (`ssl.keystore.location`), or both inline
//! (`ssl.keystore.key`, `ssl.keystore.certificate.chain`); or as a PKCS12 key store
//! (`ssl.keystore.type=PKCS12`, `ssl.keystore.location`, `ssl.keystore.password`, and
//! `ssl.key.password` if given, which must then be the store password, as in every store
//! keytool and openssl write) holding exactly one private key entry with its chain.
//! Client certificates (`ssl.client.auth=required|requested`) are verified against a
//! truststore: PEM (`ssl.truststore.location` or `ssl.truststore.certificates`) or PKCS12
//! (`ssl.truststore.type=PKCS12`, `ssl.truststore.location`, `ssl.truststore.password`)
//! whose trusted certificate entries are the trust anchors, as Java's trust manager takes
//! them (see [`crate::security::pkcs12`]). A verified client's principal is its
//! certificate's subject in RFC 2253 form (`User:CN=app,O=team`), as Kafka's default
//! principal builder gives it. Every key may be set per listener
//! (`listener.name.<listener>.ssl.…`), which wins over the global one.
//!
//! The same settings make the client side of the inter-broker listener: peers' certificates
//! verified against its truststore (their host name too, unless
//! `ssl.endpoint.identification.algorithm` is empty), this broker's certificate offered.
//!
//! What is not served is refused at start rather than ignored (fail closed): JKS stores
//! (Kafka's default type: convert them with `keytool -importkeystore -deststoretype
//! PKCS12`), encrypted PEM keys, a PKCS12 key password other than the store password,
//! cipher suites rustls does not implement (`ssl.cipher.suites` takes Kafka's names of those it does). A store that cannot
//! be opened (a wrong password, a damaged file) stops the broker naming the key to fix;
//! passwords are never shown.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};

use super::principal_mapping::PrincipalRules;

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
    /// `ssl.principal.mapping.rules`: how a client certificate's subject names its principal.
    pub principal_rules: Arc<super::principal_mapping::PrincipalRules>,
}

impl fmt::Debug for TlsListener {
    /// The key stays out of logs; only what is enforced is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("client_auth", &self.client_auth)
            .field("client", &self.client.is_some())
            .field("principal_rules", &self.principal_rules)
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
    let cipher_suites = match settings.get("ssl.cipher.suites") {
        Some((key, value)) if !value.trim().is_empty() => Some(cipher_suites(&key, value)?),
        _ => None,
    };
    let principal_rules = match settings.get("ssl.principal.mapping.rules") {
        None => PrincipalRules::default(),
        Some((key, value)) => {
            PrincipalRules::parse(value).map_err(|reason| TlsConfigError::new(&key, value, reason))?
        }
    };

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

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = cipher_suites {
        let usable = suites.iter().any(|s| versions.iter().any(|v| s.version() == *v));
        if !usable {
            return Err(TlsConfigError::new(
                "ssl.cipher.suites",
                "",
                "none of the listed cipher suites belongs to a protocol in ssl.enabled.protocols",
            ));
        }
        provider.cipher_suites = suites;
    }
    let provider = Arc::new(provider);
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
                "client certificates need a truststore (ssl.truststore.type=PEM or PKCS12 with \
                 ssl.truststore.location, or PEM ssl.truststore.certificates)",
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
    Ok(TlsListener { server: Arc::new(server), client_auth, client, principal_rules: Arc::new(principal_rules) })
}

/// A cipher suite's name as Kafka (JSSE) writes it: the IANA name, with TLS 1.3's suites
/// named `TLS_AES_128_GCM_SHA256` where rustls says `TLS13_AES_128_GCM_SHA256`.
fn kafka_suite_name(suite: rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// `ssl.cipher.suites`: the suites to offer, in the order given, by Kafka's names. A name
/// rustls does not implement refuses the configuration, as JSSE refuses an unsupported
/// suite (rustls has only AEAD suites with forward secrecy).
fn cipher_suites(key: &str, value: &str) -> Result<Vec<rustls::SupportedCipherSuite>, TlsConfigError> {
    let available = rustls::crypto::ring::ALL_CIPHER_SUITES;
    let mut chosen = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let suite = available.iter().copied().find(|s| kafka_suite_name(*s) == name).ok_or_else(|| {
            let names: Vec<String> = available.iter().map(|s| kafka_suite_name(*s)).collect();
            TlsConfigError::unsupported(
                key,
                value,
                format!("cipher suite {name} is not available; these are: {}", names.join(", ")),
            )
        })?;
        if !chosen.contains(&suite) {
            chosen.push(suite);
        }
    }
    Ok(chosen)
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

/// Kafka's store types (`ssl.keystore.type`, `ssl.truststore.type`): PEM and PKCS12 are
/// read; JKS, Kafka's default, is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreType {
    Pem,
    Pkcs12,
}

/// The store type `type_key` names (`what`: "key store" or "truststore").
fn store_type(settings: &mut Settings<'_>, type_key: &str, what: &str) -> Result<StoreType, TlsConfigError> {
    let convert = "convert a JKS store with `keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 \
                   -deststoretype PKCS12`";
    match settings.get(type_key) {
        Some((_, t)) if t.trim().eq_ignore_ascii_case("PEM") => Ok(StoreType::Pem),
        Some((_, t)) if t.trim().eq_ignore_ascii_case("PKCS12") => Ok(StoreType::Pkcs12),
        Some((key, t)) if t.trim().eq_ignore_ascii_case("JKS") => Err(TlsConfigError::unsupported(
            &key,
            t,
            format!("JKS {what}s are not read: set {type_key}=PKCS12 (or PEM); {convert}"),
        )),
        Some((key, t)) => Err(TlsConfigError::unsupported(&key, t, format!("only PEM and PKCS12 {what}s are read"))),
        None => Err(TlsConfigError::unsupported(
            type_key,
            "JKS (Kafka's default)",
            format!("JKS {what}s are not read: set {type_key}=PKCS12 or {type_key}=PEM; {convert}"),
        )),
    }
}

/// What a PKCS12 store's failure to open says about the settings: a wrong password names
/// the password's key, anything else the store's location.
fn pkcs12_error(
    e: crate::security::pkcs12::Pkcs12Error,
    what: &str,
    path: &str,
    location_key: &str,
    password_key: &str,
) -> TlsConfigError {
    let (key, value) = match e {
        crate::security::pkcs12::Pkcs12Error::WrongPassword => (password_key, ""),
        _ => (location_key, path),
    };
    TlsConfigError::new(key, value, format!("the PKCS12 {what} {path} cannot be used: {e}"))
}

/// The broker's certificate chain and private key.
fn keystore(
    settings: &mut Settings<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let store_type = store_type(settings, "ssl.keystore.type", "key store");
    let location = settings.get("ssl.keystore.location");
    let inline_chain = settings.get("ssl.keystore.certificate.chain");
    let inline_key = settings.get("ssl.keystore.key");
    let key_password = settings.get("ssl.key.password");
    let store_password = settings.get("ssl.keystore.password");
    if store_type? == StoreType::Pkcs12 {
        return pkcs12_keystore(location, inline_chain.or(inline_key), store_password, key_password);
    }
    if let Some((key, value)) = key_password {
        return Err(TlsConfigError::unsupported(
            &key,
            value,
            "encrypted private keys are not supported: give the key unencrypted (PKCS#8 or PKCS#1 PEM) in a file \
             only the broker can read",
        ));
    }
    if let Some((key, value)) = store_password {
        return Err(TlsConfigError::new(&key, value, "a PEM key store has no password (Kafka refuses one too)"));
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

/// A PKCS12 key store (`ssl.keystore.type=PKCS12`), as Kafka reads one: a file and its
/// store password, both required; `ssl.key.password`, when set, must be the store's
/// password too, as keytool and openssl write every PKCS12 store.
fn pkcs12_keystore(
    location: Option<(String, &str)>,
    inline: Option<(String, &str)>,
    store_password: Option<(String, &str)>,
    key_password: Option<(String, &str)>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    if let Some((key, _)) = inline {
        return Err(TlsConfigError::new(
            &key,
            "",
            "a key and certificate chain given inline are PEM (ssl.keystore.type=PEM); a PKCS12 key store is a file \
             (ssl.keystore.location)",
        ));
    }
    let Some((location_key, path)) = location else {
        return Err(TlsConfigError::new(
            "ssl.keystore.location",
            "",
            "a PKCS12 key store (ssl.keystore.type=PKCS12) needs ssl.keystore.location and ssl.keystore.password",
        ));
    };
    let Some((password_key, password)) = store_password else {
        return Err(TlsConfigError::new(
            "ssl.keystore.password",
            "",
            format!("the PKCS12 key store {path} needs its password (Kafka requires it too)"),
        ));
    };
    if let Some((key, key_password)) = key_password {
        if key_password != password {
            return Err(TlsConfigError::new(
                &key,
                "",
                format!(
                    "differs from {password_key}: a PKCS12 store protects its key with the store password \
                     (keytool and openssl write them equal); leave {key} out or set it to the store password"
                ),
            ));
        }
    }
    let store = read_file(&location_key, path)?;
    let (alias, certs, key) = crate::security::pkcs12::key_entry(&store, password)
        .map_err(|e| pkcs12_error(e, "key store", path, &location_key, &password_key))?;
    tracing::debug!(path, alias, certificates = certs.len(), "PKCS12 key store read");
    Ok((certs, key))
}

/// The certificates client certificates are verified against, if a truststore is set.
fn truststore(settings: &mut Settings<'_>) -> Result<Option<RootCertStore>, TlsConfigError> {
    // Consulted even without a store, so setting only the type is no unenforced setting.
    let _ = settings.get("ssl.truststore.type");
    let location = settings.get("ssl.truststore.location");
    let inline = settings.get("ssl.truststore.certificates");
    let password = settings.get("ssl.truststore.password");
    if location.is_none() && inline.is_none() {
        if let Some((key, value)) = password {
            return Err(TlsConfigError::new(&key, value, "a truststore password needs ssl.truststore.location"));
        }
        return Ok(None);
    }
    let store_type = store_type(settings, "ssl.truststore.type", "truststore")?;
    let (certs, location_key) = match (store_type, location, inline) {
        (_, Some((key, _)), Some(_)) => {
            return Err(TlsConfigError::new(
                &key,
                "",
                "set ssl.truststore.location or ssl.truststore.certificates, not both",
            ))
        }
        (StoreType::Pem, location, inline) => {
            if let Some((key, value)) = password {
                return Err(TlsConfigError::new(
                    &key,
                    value,
                    "a PEM truststore has no password (Kafka refuses one too)",
                ));
            }
            let (pem, key) = match (location, inline) {
                (Some((key, path)), _) => (read_file(&key, path)?, key),
                (None, Some((key, certificates))) => (certificates.as_bytes().to_vec(), key),
                (None, None) => return Ok(None),
            };
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsConfigError::new(&key, "", format!("unreadable: {e}")))?;
            (certs, key)
        }
        (StoreType::Pkcs12, None, Some((key, _))) => {
            return Err(TlsConfigError::new(
                &key,
                "",
                "certificates given inline are PEM (ssl.truststore.type=PEM); a PKCS12 truststore is a file \
                 (ssl.truststore.location)",
            ))
        }
        (StoreType::Pkcs12, Some((location_key, path)), None) => {
            let store = read_file(&location_key, path)?;
            // Kafka opens a truststore without a password too, unchecked; here its integrity
            // is always checked, so a store with a password needs it given.
            let (password_key, password) = match &password {
                Some((key, value)) => (key.clone(), *value),
                None => (String::new(), ""),
            };
            let certs = crate::security::pkcs12::trust_anchors(&store, password).map_err(|e| {
                if password_key.is_empty() && matches!(e, crate::security::pkcs12::Pkcs12Error::WrongPassword) {
                    TlsConfigError::new(
                        "ssl.truststore.password",
                        "",
                        format!("the PKCS12 truststore {path} cannot be opened without its password: set it"),
                    )
                } else {
                    pkcs12_error(e, "truststore", path, &location_key, &password_key)
                }
            })?;
            (certs, location_key)
        }
        (StoreType::Pkcs12, None, None) => return Ok(None),
    };
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsConfigError::new(&location_key, "", format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::new(&location_key, "", "no certificate found in the truststore"));
    }
    Ok(Some(roots))
}

/// The `metadata.store.ssl.*` keys: TLS towards etcd, named after Kafka's
/// `zookeeper.ssl.*` settings for ZooKeeper, whose role etcd takes.
pub const METADATA_STORE_TLS_KEYS: &[&str] = &[
    "metadata.store.ssl.client.enable",
    "metadata.store.ssl.truststore.location",
    "metadata.store.ssl.truststore.type",
    "metadata.store.ssl.truststore.password",
    "metadata.store.ssl.keystore.location",
    "metadata.store.ssl.keystore.type",
    "metadata.store.ssl.keystore.password",
    "metadata.store.ssl.endpoint.identification.algorithm",
];

/// TLS towards etcd (`metadata.store.ssl.*`), as Kafka's ZooKeeper client takes
/// `zookeeper.ssl.*`: `metadata.store.ssl.client.enable=true` turns it on; etcd's
/// certificate is verified against `metadata.store.ssl.truststore.location` (required) and,
/// unless `metadata.store.ssl.endpoint.identification.algorithm` is empty, must name the
/// host it is reached at; `metadata.store.ssl.keystore.location` is the broker's certificate
/// for etcd's `--client-cert-auth`. Stores are PEM or PKCS12: `….type`, or without it the
/// file name tells, as ZooKeeper's client reads it (`.p12`, `.pfx`: PKCS12; `.jks`: JKS,
/// refused; anything else PEM). `None` when TLS is off; any other `metadata.store.ssl.*`
/// key, or one set while TLS is off, is refused (fail closed: never plaintext to an etcd
/// the operator meant to reach over TLS).
pub fn metadata_store_tls(
    props: &BTreeMap<String, String>,
) -> Result<Option<rivulet_metadata::EtcdTls>, TlsConfigError> {
    const ENABLE: &str = "metadata.store.ssl.client.enable";
    let set: Vec<(&str, &str)> = props
        .iter()
        .filter(|(k, _)| k.starts_with("metadata.store.ssl."))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some((key, value)) = set.iter().find(|(k, _)| !METADATA_STORE_TLS_KEYS.contains(k)) {
        return Err(TlsConfigError::unsupported(
            key,
            value,
            format!("not a TLS setting for etcd that Rivulet reads ({})", METADATA_STORE_TLS_KEYS.join(", ")),
        ));
    }
    let enabled = match props.get(ENABLE).map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => return Err(TlsConfigError::new(ENABLE, &v, "expected true or false")),
    };
    if !enabled {
        if let Some((key, value)) = set.iter().find(|(k, _)| *k != ENABLE) {
            return Err(TlsConfigError::new(
                key,
                value,
                format!("TLS to etcd is off ({ENABLE} is not true), so this setting would not be enforced"),
            ));
        }
        return Ok(None);
    }
    let get = |key: &'static str| props.get(key).map(|v| (key, v.as_str()));

    let verify_host_name = match get("metadata.store.ssl.endpoint.identification.algorithm") {
        None => true,
        Some((key, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "https" => true,
            "" => false,
            _ => return Err(TlsConfigError::new(key, value, "expected HTTPS or empty")),
        },
    };

    let Some((location_key, path)) = get("metadata.store.ssl.truststore.location") else {
        return Err(TlsConfigError::new(
            "metadata.store.ssl.truststore.location",
            "",
            "TLS to etcd needs the CA certificates etcd's certificate is verified against",
        ));
    };
    let password = get("metadata.store.ssl.truststore.password");
    let trust_anchors = match file_store_type(get("metadata.store.ssl.truststore.type"), location_key, path)? {
        StoreType::Pem => {
            if let Some((key, value)) = password {
                return Err(TlsConfigError::new(key, value, "a PEM truststore has no password"));
            }
            let pem = read_file(location_key, path)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsConfigError::new(location_key, path, format!("unreadable: {e}")))?;
            if certs.is_empty() {
                return Err(TlsConfigError::new(location_key, path, "no certificate found in the truststore"));
            }
            certs
        }
        StoreType::Pkcs12 => {
            let store = read_file(location_key, path)?;
            let (password_key, password) = password.unwrap_or(("", ""));
            crate::security::pkcs12::trust_anchors(&store, password).map_err(|e| {
                if password_key.is_empty() && matches!(e, crate::security::pkcs12::Pkcs12Error::WrongPassword) {
                    TlsConfigError::new(
                        "metadata.store.ssl.truststore.password",
                        "",
                        format!("the PKCS12 truststore {path} cannot be opened without its password: set it"),
                    )
                } else {
                    pkcs12_error(e, "truststore", path, location_key, password_key)
                }
            })?
        }
    };

    let identity = match get("metadata.store.ssl.keystore.location") {
        None => {
            for key in ["metadata.store.ssl.keystore.type", "metadata.store.ssl.keystore.password"] {
                if let Some((key, value)) = get(key) {
                    return Err(TlsConfigError::new(key, value, "needs metadata.store.ssl.keystore.location"));
                }
            }
            None
        }
        Some((location_key, path)) => {
            let password = get("metadata.store.ssl.keystore.password");
            let (certs, key) = match file_store_type(get("metadata.store.ssl.keystore.type"), location_key, path)? {
                StoreType::Pem => {
                    if let Some((key, value)) = password {
                        return Err(TlsConfigError::unsupported(
                            key,
                            value,
                            "encrypted PEM keys are not supported: give the key unencrypted in a file only the broker \
                             can read, or use a PKCS12 key store",
                        ));
                    }
                    let pem = read_file(location_key, path)?;
                    let certs = CertificateDer::pem_slice_iter(&pem)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| TlsConfigError::new(location_key, path, format!("unreadable: {e}")))?;
                    if certs.is_empty() {
                        return Err(TlsConfigError::new(location_key, path, "no certificate found in the key store"));
                    }
                    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                        TlsConfigError::new(location_key, path, format!("no unencrypted private key found ({e})"))
                    })?;
                    (certs, key)
                }
                StoreType::Pkcs12 => {
                    let Some((password_key, password)) = password else {
                        return Err(TlsConfigError::new(
                            "metadata.store.ssl.keystore.password",
                            "",
                            format!("the PKCS12 key store {path} needs its password"),
                        ));
                    };
                    let store = read_file(location_key, path)?;
                    let (_, certs, key) = crate::security::pkcs12::key_entry(&store, password)
                        .map_err(|e| pkcs12_error(e, "key store", path, location_key, password_key))?;
                    (certs, key)
                }
            };
            let signer = rustls::crypto::ring::sign::any_supported_type(&key)
                .map_err(|e| TlsConfigError::new(location_key, path, format!("unusable private key: {e}")))?;
            rustls::sign::CertifiedKey::new(certs.clone(), signer).keys_match().map_err(|e| {
                TlsConfigError::new(location_key, path, format!("the key does not fit the certificate chain: {e}"))
            })?;
            let chain: String = certs.iter().map(|c| pem("CERTIFICATE", c.as_ref())).collect();
            let key = match &key {
                PrivateKeyDer::Pkcs1(k) => pem("RSA PRIVATE KEY", k.secret_pkcs1_der()),
                PrivateKeyDer::Sec1(k) => pem("EC PRIVATE KEY", k.secret_sec1_der()),
                PrivateKeyDer::Pkcs8(k) => pem("PRIVATE KEY", k.secret_pkcs8_der()),
                _ => return Err(TlsConfigError::new(location_key, path, "unsupported private key format")),
            };
            Some((chain, key))
        }
    };
    Ok(Some(rivulet_metadata::EtcdTls {
        trust_anchors: trust_anchors.into_iter().map(|c| c.to_vec()).collect(),
        identity,
        verify_host_name,
    }))
}

/// A store's type from its `type` setting, else from its file name as ZooKeeper's client
/// tells it (`.p12`/`.pfx` PKCS12, `.jks` JKS, anything else PEM).
fn file_store_type(
    type_setting: Option<(&str, &str)>,
    location_key: &str,
    path: &str,
) -> Result<StoreType, TlsConfigError> {
    let (key, value) = match type_setting {
        Some(setting) => setting,
        None => {
            let lower = path.to_ascii_lowercase();
            if lower.ends_with(".p12") || lower.ends_with(".pfx") {
                return Ok(StoreType::Pkcs12);
            }
            if !lower.ends_with(".jks") {
                return Ok(StoreType::Pem);
            }
            (location_key, path)
        }
    };
    match value.trim().to_ascii_uppercase().as_str() {
        "PEM" => Ok(StoreType::Pem),
        "PKCS12" => Ok(StoreType::Pkcs12),
        _ if key == location_key || value.trim().eq_ignore_ascii_case("JKS") => Err(TlsConfigError::unsupported(
            key,
            value,
            "JKS stores are not read: use PEM or PKCS12 (`keytool -importkeystore -deststoretype PKCS12`)",
        )),
        _ => Err(TlsConfigError::unsupported(key, value, "only PEM and PKCS12 stores are read")),
    }
}

/// `der` as a PEM block labelled `label`.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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
        assert!(err.unsupported && err.reason.contains("JKS key stores are not read"), "{}", err.reason);
        assert!(err.reason.contains("-deststoretype PKCS12"), "{}", err.reason);
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

    fn testdata(name: &str) -> String {
        format!("{}/src/security/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn pkcs12_stores_serve_a_listener_and_its_client_certificates() {
        let keytool_keystore = testdata("keytool-keystore.p12");
        let openssl_keystore = testdata("openssl-keystore.p12");
        let truststore = testdata("keytool-truststore.p12");
        // Per listener, as for PEM stores; the key password, when given, is the store password.
        let settings = props(&[
            ("ssl.keystore.type", "PEM"),
            ("listener.name.ssl.ssl.keystore.type", "PKCS12"),
            ("listener.name.ssl.ssl.keystore.location", &keytool_keystore),
            ("listener.name.ssl.ssl.keystore.password", "store-secret"),
            ("listener.name.ssl.ssl.key.password", "store-secret"),
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.location", &truststore),
            ("ssl.truststore.password", "trust-secret"),
            ("ssl.client.auth", "required"),
        ]);
        let mut used = Vec::new();
        let tls = resolve(&settings, "SSL", &mut used).unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert!(tls.client.is_some());
        assert!(settings.keys().all(|k| used.contains(k)), "{used:?}");
        let settings = props(&[
            ("ssl.keystore.type", "pkcs12"),
            ("ssl.keystore.location", &openssl_keystore),
            ("ssl.keystore.password", "store-secret"),
        ]);
        assert!(resolve(&settings, "SSL", &mut Vec::new()).unwrap().client.is_none());
    }

    #[test]
    fn pkcs12_stores_that_cannot_be_opened_name_the_key_and_hide_the_password() {
        let keystore = testdata("openssl-keystore.p12");
        let truststore = testdata("keytool-truststore.p12");
        let base = [("ssl.keystore.type", "PKCS12"), ("ssl.keystore.location", keystore.as_str())];
        let trusting = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![
                ("ssl.keystore.type", "PKCS12"),
                ("ssl.keystore.location", keystore.as_str()),
                ("ssl.keystore.password", "store-secret"),
                ("ssl.truststore.type", "PKCS12"),
                ("ssl.truststore.location", truststore.as_str()),
            ];
            pairs.extend_from_slice(extra);
            props(&pairs)
        };
        let openssl_truststore = testdata("openssl-truststore.p12");
        let cases: Vec<(BTreeMap<String, String>, &str, &str)> = vec![
            (
                props(&[base[0], base[1], ("listener.name.ssl.ssl.keystore.password", "Wr0ng-pass")]),
                "listener.name.ssl.ssl.keystore.password",
                "password is wrong",
            ),
            (props(&base), "ssl.keystore.password", "needs its password"),
            (
                props(&[
                    base[0],
                    base[1],
                    ("ssl.keystore.password", "store-secret"),
                    ("ssl.key.password", "Wr0ng-pass"),
                ]),
                "ssl.key.password",
                "differs from ssl.keystore.password",
            ),
            (
                props(&[base[0], ("ssl.keystore.location", "/nonexistent.p12"), ("ssl.keystore.password", "x")]),
                "ssl.keystore.location",
                "cannot read",
            ),
            (
                props(&[base[0], ("ssl.keystore.location", &truststore), ("ssl.keystore.password", "trust-secret")]),
                "ssl.keystore.location",
                "no private key entry",
            ),
            (
                props(&[base[0], ("ssl.keystore.location", &testdata("ca.pem")), ("ssl.keystore.password", "x")]),
                "ssl.keystore.location",
                "not a readable PKCS12 store",
            ),
            (
                props(&[
                    base[0],
                    ("ssl.keystore.location", &testdata("two-keys.p12")),
                    ("ssl.keystore.password", "store-secret"),
                ]),
                "ssl.keystore.location",
                "2 private key entries (broker, other)",
            ),
            (trusting(&[]), "ssl.truststore.password", "cannot be opened without its password"),
            (trusting(&[("ssl.truststore.password", "Wr0ng-pass")]), "ssl.truststore.password", "password is wrong"),
            (
                props(&[
                    base[0],
                    base[1],
                    ("ssl.keystore.password", "store-secret"),
                    ("ssl.truststore.type", "PKCS12"),
                    ("ssl.truststore.location", &openssl_truststore),
                    ("ssl.truststore.password", "trust-secret"),
                ]),
                "ssl.truststore.location",
                "keytool -importcert",
            ),
        ];
        for (settings, key, reason) in cases {
            let err = resolve(&settings, "SSL", &mut Vec::new()).unwrap_err();
            assert_eq!(err.key, key, "{err:?}");
            assert!(err.reason.contains(reason), "{err:?}");
            assert!(!format!("{err:?}").contains("Wr0ng-pass") && !format!("{err:?}").contains("store-secret"));
        }
        // JKS, Kafka's default, is refused as not served, with the conversion to PKCS12.
        let err = resolve(&props(&[("ssl.keystore.type", "JKS")]), "SSL", &mut Vec::new()).unwrap_err();
        assert!(err.unsupported && err.reason.contains("keytool -importkeystore"), "{err:?}");
        let err = resolve(&trusting(&[("ssl.truststore.type", "JKS")]), "SSL", &mut Vec::new()).unwrap_err();
        assert_eq!(err.key, "ssl.truststore.type");
    }
}

#[cfg(test)]
mod cipher_suite_tests {
    use super::*;

    #[test]
    fn cipher_suites_go_by_kafkas_names() {
        let chosen =
            cipher_suites("ssl.cipher.suites", "TLS_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
                .unwrap();
        let names: Vec<String> = chosen.iter().map(|s| kafka_suite_name(*s)).collect();
        assert_eq!(names, ["TLS_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]);
        let err = cipher_suites("ssl.cipher.suites", "TLS_RSA_WITH_AES_128_CBC_SHA").unwrap_err();
        assert!(err.unsupported && err.reason.contains("TLS_CHACHA20_POLY1305_SHA256"), "{}", err.reason);
    }
}
