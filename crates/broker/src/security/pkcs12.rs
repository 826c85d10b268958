//! PKCS12 key stores and truststores (`ssl.keystore.type=PKCS12`,
//! `ssl.truststore.type=PKCS12`), read as Java's `PKCS12` `KeyStore` reads them for
//! Kafka's `DefaultSslEngineFactory`.
//!
//! Stores made by `openssl pkcs12 -export` (OpenSSL 3's PBES2/AES-256 and the legacy
//! `-legacy` RC2/3DES encryptions) and by `keytool -storetype PKCS12` (Java 17's
//! PBES2/AES-256) are read. The store password opens the store: it checks the store's
//! integrity (its MAC) and decrypts the key and the certificates, as in every store keytool
//! and openssl write.
//!
//! - A key store must hold exactly one private key entry. With several, Java's key manager
//!   would pick one per handshake by key type in no documented order; here the store is
//!   refused, naming the entries.
//! - A truststore's trust anchors are its trusted certificate entries: certificates carrying
//!   Java's trusted-key-usage attribute (`keytool -importcert` writes it), plus the first
//!   certificate of every key entry, as Java's `TrustManagerFactory` takes them. A
//!   certificate without that attribute and without a key (`openssl pkcs12 -export -nokeys`
//!   before OpenSSL 3.2's `-jdktrust`) is no entry at all for Java, so not for Rivulet
//!   either: such a store is refused rather than trusting nothing.

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12Archive, Pkcs12ImportPolicy};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why a PKCS12 store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    #[error("the password is wrong (the store's integrity check failed)")]
    WrongPassword,
    #[error("not a readable PKCS12 store ({0}); a wrong password or a damaged file")]
    Unreadable(String),
    #[error("the store holds no private key entry with its certificate")]
    NoKey,
    #[error(
        "the store holds {} private key entries ({}); keep exactly one (keytool -delete -alias <name>)",
        .0.len(),
        .0.join(", ")
    )]
    SeveralKeys(Vec<String>),
    #[error("the private key of entry {alias} cannot be used: {reason}")]
    UnusableKey { alias: String, reason: String },
    #[error(
        "the store holds no trusted certificate entry{}",
        if *.untrusted > 0 {
            format!(
                "; its {} certificate(s) lack Java's trusted-certificate attribute, so Java (and Kafka) would not \
                 trust them either: import them with `keytool -importcert -storetype PKCS12` (or, with OpenSSL 3.2 \
                 and later, `openssl pkcs12 -export -nokeys -jdktrust anyExtendedKeyUsage`)",
                .untrusted
            )
        } else {
            String::new()
        }
    )]
    NoTrustedCertificate { untrusted: usize },
}

fn open_error(e: p12_keystore::error::Error) -> Pkcs12Error {
    match e {
        p12_keystore::error::Error::MacError(_) => Pkcs12Error::WrongPassword,
        other => Pkcs12Error::Unreadable(other.to_string()),
    }
}

/// A key store's only private key and its certificate chain (the key's own certificate
/// first). Returns the entry's alias too, for messages.
pub fn key_entry(
    store: &[u8],
    password: &str,
) -> Result<(String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Pkcs12Error> {
    let store = KeyStore::from_pkcs12(store, password, Pkcs12ImportPolicy::Strict).map_err(open_error)?;
    let mut keys: Vec<_> = store
        .entries()
        .filter_map(|(alias, entry)| match entry {
            KeyStoreEntry::PrivateKeyChain(chain) if !chain.certs().is_empty() => Some((alias.clone(), chain)),
            _ => None,
        })
        .collect();
    let (alias, chain) = match keys.len() {
        0 => return Err(Pkcs12Error::NoKey),
        1 => keys.remove(0),
        _ => return Err(Pkcs12Error::SeveralKeys(keys.into_iter().map(|(alias, _)| alias).collect())),
    };
    let certs = chain.certs().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
    let key =
        usable_key(chain.key().as_der()).map_err(|reason| Pkcs12Error::UnusableKey { alias: alias.clone(), reason })?;
    Ok((alias, certs, key))
}

/// A truststore's trust anchors (see the module documentation).
pub fn trust_anchors(store: &[u8], password: &str) -> Result<Vec<CertificateDer<'static>>, Pkcs12Error> {
    let archive = Pkcs12Archive::from_pkcs12(store, password).map_err(open_error)?;
    let key_ids: Vec<&[u8]> =
        archive.keys.iter().filter_map(|k| k.local_key_id.as_ref().map(|id| id.as_ref())).collect();
    let mut anchors: Vec<CertificateDer<'static>> = Vec::new();
    let mut untrusted = 0;
    for bag in &archive.certs {
        let of_a_key = bag.local_key_id.as_deref().is_some_and(|id| key_ids.contains(&id));
        if bag.trusted || of_a_key {
            let der = CertificateDer::from(bag.cert.as_der().to_vec());
            if !anchors.contains(&der) {
                anchors.push(der);
            }
        } else {
            untrusted += 1;
        }
    }
    if anchors.is_empty() {
        return Err(Pkcs12Error::NoTrustedCertificate { untrusted });
    }
    Ok(anchors)
}

/// The PKCS#8 key as rustls (ring) takes it. Java writes EC keys without their public key,
/// which the format allows and ring refuses: those get it back, computed from the private
/// key (P-256 and P-384, the curves ring signs with).
fn usable_key(pkcs8: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    let Err(refused) = rustls::crypto::ring::sign::any_supported_type(&key) else {
        return Ok(key);
    };
    use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
    let completed = if let Ok(secret) = p256::SecretKey::from_pkcs8_der(pkcs8) {
        secret.to_pkcs8_der()
    } else if let Ok(secret) = p384::SecretKey::from_pkcs8_der(pkcs8) {
        secret.to_pkcs8_der()
    } else {
        return Err(refused.to_string());
    };
    let completed = completed.map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(completed.as_bytes().to_vec()));
    rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    //! The stores under `testdata/` were made with OpenSSL 3.0 and Java 17's keytool; see
    //! `testdata/README.md`.
    use super::*;

    const OPENSSL: &[u8] = include_bytes!("testdata/openssl-keystore.p12");
    const OPENSSL_LEGACY: &[u8] = include_bytes!("testdata/openssl-legacy-keystore.p12");
    const OPENSSL_TRUST: &[u8] = include_bytes!("testdata/openssl-truststore.p12");
    const KEYTOOL: &[u8] = include_bytes!("testdata/keytool-keystore.p12");
    const KEYTOOL_RSA: &[u8] = include_bytes!("testdata/keytool-rsa-keystore.p12");
    const KEYTOOL_TRUST: &[u8] = include_bytes!("testdata/keytool-truststore.p12");
    const TWO_KEYS: &[u8] = include_bytes!("testdata/two-keys.p12");
    const CA: &str = include_str!("testdata/ca.pem");

    fn ca() -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject as _;
        CertificateDer::from_pem_slice(CA.as_bytes()).unwrap()
    }

    #[test]
    fn openssl_and_keytool_key_stores_give_their_key_and_chain() {
        for (store, alias, chain) in
            [(OPENSSL, "broker", 2), (OPENSSL_LEGACY, "broker", 2), (KEYTOOL, "broker", 1), (KEYTOOL_RSA, "broker", 1)]
        {
            let (found, certs, key) = key_entry(store, "store-secret").unwrap();
            assert_eq!((found.as_str(), certs.len()), (alias, chain));
            // The key fits the certificate: rustls checks both belong together.
            let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
            let certified = rustls::sign::CertifiedKey::new(certs, signer);
            certified.keys_match().unwrap();
        }
        let (_, certs, _) = key_entry(OPENSSL, "store-secret").unwrap();
        assert_eq!(certs[1], ca());
    }

    #[test]
    fn a_wrong_password_is_told_apart() {
        for store in [OPENSSL, OPENSSL_LEGACY, KEYTOOL, KEYTOOL_TRUST] {
            assert!(matches!(key_entry(store, "wrong"), Err(Pkcs12Error::WrongPassword)));
            assert!(matches!(trust_anchors(store, "wrong"), Err(Pkcs12Error::WrongPassword)));
        }
        assert!(matches!(key_entry(b"not a store", "x"), Err(Pkcs12Error::Unreadable(_))));
        assert!(matches!(key_entry(&OPENSSL[..OPENSSL.len() / 2], "store-secret"), Err(Pkcs12Error::Unreadable(_))));
    }

    #[test]
    fn several_keys_or_none_are_refused_naming_the_entries() {
        let err = key_entry(TWO_KEYS, "store-secret").unwrap_err();
        assert!(matches!(&err, Pkcs12Error::SeveralKeys(aliases) if aliases == &["broker", "other"]), "{err}");
        assert!(matches!(key_entry(KEYTOOL_TRUST, "trust-secret"), Err(Pkcs12Error::NoKey)));
    }

    #[test]
    fn trusted_certificates_are_those_java_trusts() {
        assert_eq!(trust_anchors(KEYTOOL_TRUST, "trust-secret").unwrap(), [ca()]);
        // A key store as truststore: the key's own certificate, as Java's trust manager takes it.
        let (_, certs, _) = key_entry(KEYTOOL, "store-secret").unwrap();
        assert_eq!(trust_anchors(KEYTOOL, "store-secret").unwrap(), certs[..1]);
        // openssl's -nokeys export marks nothing trusted: Java sees no entry in it.
        let err = trust_anchors(OPENSSL_TRUST, "trust-secret").unwrap_err();
        assert!(matches!(err, Pkcs12Error::NoTrustedCertificate { untrusted: 1 }), "{err}");
        assert!(err.to_string().contains("keytool -importcert"), "{err}");
    }
}
