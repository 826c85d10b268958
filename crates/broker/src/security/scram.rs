//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's `ScramSaslServer` and
//! `ScramFormatter` run them: no channel binding (gs2 header `n,,` or `n,a=<user>,`), no
//! delegation tokens (`tokenauth`), credentials as salt + StoredKey + ServerKey, never the
//! password.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rivulet_metadata::ScramCredential;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on iterations (`ScramMechanism`): fewer is too weak, more too slow.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM mechanism, with the code KIP-554's APIs give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The `mechanism` byte of AlterUserScramCredentials / DescribeUserScramCredentials
    /// (0 is UNKNOWN).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
            ScramMechanism::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        }
    }

    /// The stored credential for a salted password (what a client sends in an
    /// AlterUserScramCredentials upsertion): `StoredKey = H(HMAC(salted, "Client Key"))`,
    /// `ServerKey = HMAC(salted, "Server Key")`.
    pub fn credential(self, salted_password: &[u8], salt: &[u8], iterations: i32) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }
}

/// Why an exchange failed. `InvalidCredentials` is answered with Kafka's generic message;
/// the others carry a message the client may see, as Kafka's `SaslAuthenticationException`s.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    InvalidCredentials,
    Refused(String),
}

/// The server side of one exchange, fed the client's two messages.
pub enum ScramServer {
    /// Waiting for client-first.
    Start {
        mechanism: ScramMechanism,
        server_nonce: String,
    },
    /// Server-first sent; waiting for client-final.
    SentFirst {
        mechanism: ScramMechanism,
        user: String,
        credential: ScramCredential,
        gs2_header: String,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

/// What client-first asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst {
    pub gs2_header: String,
    pub user: String,
    pub nonce: String,
    pub bare: String,
}

/// `saslname` with RFC 5802's escapes (`=2C` → `,`, `=3D` → `=`) undone.
fn decode_sasl_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Refused("Invalid SCRAM client first message: bad user name".into())),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses client-first: `n,[a=<authzid>],n=<user>,r=<nonce>[,<extensions>]`.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let invalid = |what: &str| ScramError::Refused(format!("Invalid SCRAM client first message: {what}"));
    let text = std::str::from_utf8(message).map_err(|_| invalid("not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("missing gs2 header"));
    };
    if flag != "n" {
        // `y` / `p=`: channel binding, which Kafka does not offer either.
        return Err(invalid("channel binding is not supported"));
    }
    let authzid = match authzid {
        "" => None,
        a => Some(decode_sasl_name(a.strip_prefix("a=").ok_or_else(|| invalid("bad authorization id"))?)?),
    };
    let mut fields = bare.split(',');
    if fields.clone().next().is_some_and(|f| f.starts_with("m=")) {
        return Err(invalid("mandatory extensions are not supported"));
    }
    let user = decode_sasl_name(fields.next().and_then(|f| f.strip_prefix("n=")).ok_or_else(|| invalid("no user"))?)?;
    let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| invalid("no nonce"))?;
    if user.is_empty() || nonce.is_empty() {
        return Err(invalid("empty user or nonce"));
    }
    for extension in fields {
        let (key, value) = extension.split_once('=').ok_or_else(|| invalid("bad extension"))?;
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err(ScramError::Refused(
                "Authentication failed: delegation tokens (tokenauth) are not supported".into(),
            ));
        }
    }
    if authzid.as_ref().is_some_and(|a| *a != user) {
        return Err(ScramError::Refused(
            "Authentication failed: Client requested an authorization id that is different from username".into(),
        ));
    }
    Ok(ClientFirst {
        gs2_header: format!("{flag},{},", parts_authzid(text)),
        user,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// The authzid field of the gs2 header exactly as sent (for the channel-binding check).
fn parts_authzid(text: &str) -> &str {
    text.split(',').nth(1).unwrap_or("")
}

/// A fresh server nonce: 24 random bytes, base64 (printable, never a comma).
pub fn new_server_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(BASE64.encode(bytes))
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism, server_nonce: String) -> Self {
        ScramServer::Start { mechanism, server_nonce }
    }

    /// Answers client-first with server-first, given the user's credential for this
    /// mechanism (`None`: unknown user, or no credential for this mechanism).
    pub fn server_first(
        &mut self,
        client_first: ClientFirst,
        credential: Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        let ScramServer::Start { mechanism, server_nonce } = std::mem::replace(self, ScramServer::Done) else {
            return Err(ScramError::Refused("Unexpected SCRAM client first message".into()));
        };
        let credential = credential.ok_or(ScramError::InvalidCredentials)?;
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let server_first = format!("r={nonce},s={},i={}", BASE64.encode(&credential.salt), credential.iterations);
        let reply = server_first.clone().into_bytes();
        *self = ScramServer::SentFirst {
            mechanism,
            user: client_first.user,
            credential,
            gs2_header: client_first.gs2_header,
            nonce,
            client_first_bare: client_first.bare,
            server_first,
        };
        Ok(reply)
    }

    /// Verifies client-final (`c=<gs2 header>,r=<nonce>[,ext],p=<proof>`) and returns the
    /// authenticated user and server-final (`v=<server signature>`).
    pub fn server_final(&mut self, message: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let ScramServer::SentFirst { mechanism, user, credential, gs2_header, nonce, client_first_bare, server_first } =
            std::mem::replace(self, ScramServer::Done)
        else {
            return Err(ScramError::Refused("Unexpected SCRAM client final message".into()));
        };
        let invalid = |what: &str| ScramError::Refused(format!("Invalid SCRAM client final message: {what}"));
        let text = std::str::from_utf8(message).map_err(|_| invalid("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| invalid("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields.next().and_then(|f| f.strip_prefix("c=")).ok_or_else(|| invalid("no channel binding"))?;
        let client_nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| invalid("no nonce"))?;
        if BASE64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(invalid("channel binding does not match the first message"));
        }
        if client_nonce != nonce {
            return Err(invalid("Invalid client nonce in the final client message."));
        }
        let proof = BASE64.decode(proof).map_err(|_| invalid("proof is not base64"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        let computed_stored_key = mechanism.hash(&client_key);
        if !bool::from(computed_stored_key.ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = mechanism.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((user, format!("v={}", BASE64.encode(server_signature)).into_bytes()))
    }
}

/// `saslname` with RFC 5802's escapes applied (`,` → `=2C`, `=` → `=3D`).
fn encode_sasl_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The client side of one exchange, as a broker runs it towards another broker's SCRAM
/// listener (Kafka's `ScramSaslClient`): client-first, then client-final for the
/// server-first received, then the server's signature checked, so a peer that does not
/// know the credential cannot pose as the broker it connects to.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    /// The server signature server-final must carry, once client-final was made.
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str, client_nonce: String) -> Self {
        let client_first_bare = format!("n={},r={client_nonce}", encode_sasl_name(user));
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_nonce,
            client_first_bare,
            expected_server_signature: None,
        }
    }

    /// client-first: no channel binding, no authorization id.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// client-final for `server_first` (`r=<nonce>,s=<salt>,i=<iterations>`).
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let invalid = |what: &str| ScramError::Refused(format!("Invalid SCRAM server first message: {what}"));
        let text = std::str::from_utf8(server_first).map_err(|_| invalid("not UTF-8"))?;
        let mut fields = text.split(',');
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| invalid("no nonce"))?;
        let salt = fields.next().and_then(|f| f.strip_prefix("s=")).ok_or_else(|| invalid("no salt"))?;
        let iterations = fields.next().and_then(|f| f.strip_prefix("i=")).ok_or_else(|| invalid("no iterations"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(invalid("the nonce does not extend the client's"));
        }
        let salt = BASE64.decode(salt).map_err(|_| invalid("salt is not base64"))?;
        let iterations: i32 = iterations.parse().map_err(|_| invalid("iterations is not a number"))?;
        // The same bounds the server side keeps: a peer must not make this broker spend
        // minutes hashing.
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(invalid("iterations out of range"));
        }
        let salted = self.mechanism.salted_password(self.password.as_bytes(), &salt, iterations.unsigned_abs());
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let stored_key = self.mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_signature = self.mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&client_signature).map(|(k, s)| k ^ s).collect();
        let server_key = self.mechanism.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(self.mechanism.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks server-final (`v=<server signature>`, or `e=<error>`).
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramError::Refused("Invalid SCRAM server final message: not UTF-8".into()))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::Refused(format!("the server refused: {error}")));
        }
        let signature =
            text.split(',')
                .next()
                .and_then(|f| f.strip_prefix("v="))
                .and_then(|v| BASE64.decode(v).ok())
                .ok_or_else(|| ScramError::Refused("Invalid SCRAM server final message: no signature".into()))?;
        match &self.expected_server_signature {
            Some(expected) if bool::from(expected.ct_eq(&signature)) => Ok(()),
            _ => Err(ScramError::Refused("the server's signature is wrong: it does not know the credential".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_sha256_exchange() {
        let mechanism = ScramMechanism::Sha256;
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = mechanism.salted_password(b"pencil", &salt, 4096);
        let credential = mechanism.credential(&salted, &salt, 4096);
        let mut server = ScramServer::new(mechanism, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let server_first = server.server_first(first, Some(credential.clone())).unwrap();
        assert_eq!(
            String::from_utf8(server_first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, server_final) = server
            .server_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(String::from_utf8(server_final).unwrap(), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");

        // The same exchange with a wrong proof fails as invalid credentials.
        let mut server = ScramServer::new(mechanism, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        server.server_first(first, Some(credential)).unwrap();
        let wrong = server.server_final(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(wrong, Err(ScramError::InvalidCredentials));
    }

    /// The client of RFC 7677's example produces its client-final and accepts its
    /// server-final; and a client talks to the server side here end to end.
    #[test]
    fn rfc7677_sha256_client() {
        let mechanism = ScramMechanism::Sha256;
        let mut client = ScramClient::new(mechanism, "user", "pencil", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let client_final = client
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), Ok(()));
        assert!(client.verify_server_final(b"v=AArriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
        assert!(client.verify_server_final(b"e=invalid-proof").is_err());
        // A server nonce that does not extend the client's, or absurd iterations: refused.
        let mut client = ScramClient::new(mechanism, "user", "pencil", "abc".into());
        assert!(client.client_final(b"r=xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").is_err());
        assert!(client.client_final(b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100000000").is_err());

        for mechanism in ScramMechanism::ALL {
            let salt = b"0123456789abcdef";
            let credential = mechanism.credential(&mechanism.salted_password(b"s,e=cret", salt, 4096), salt, 4096);
            for (password, accepted) in [("s,e=cret", true), ("secret", false)] {
                let mut client = ScramClient::new(mechanism, "bro=ker,1", password, "client-nonce".into());
                let mut server = ScramServer::new(mechanism, "server-nonce".into());
                let first = parse_client_first(&client.client_first()).unwrap();
                assert_eq!(first.user, "bro=ker,1");
                let server_first = server.server_first(first, Some(credential.clone())).unwrap();
                let client_final = client.client_final(&server_first).unwrap();
                match server.server_final(&client_final) {
                    Ok((user, server_final)) => {
                        assert!(accepted);
                        assert_eq!(user, "bro=ker,1");
                        assert_eq!(client.verify_server_final(&server_final), Ok(()));
                    }
                    Err(e) => {
                        assert!(!accepted);
                        assert_eq!(e, ScramError::InvalidCredentials);
                    }
                }
            }
        }
    }

    #[test]
    fn client_first_rules() {
        let first = parse_client_first(b"n,a=al=2Cice,n=al=2Cice,r=abc,ext=1").unwrap();
        assert_eq!((first.user.as_str(), first.gs2_header.as_str()), ("al,ice", "n,a=al=2Cice,"));
        assert!(matches!(parse_client_first(b"n,a=bob,n=alice,r=abc"), Err(ScramError::Refused(_))));
        assert!(matches!(parse_client_first(b"y,,n=alice,r=abc"), Err(ScramError::Refused(_))));
        assert!(matches!(parse_client_first(b"n,,n=alice,r=abc,tokenauth=true"), Err(ScramError::Refused(_))));
        assert!(matches!(parse_client_first(b"n,,n=alice"), Err(ScramError::Refused(_))));
        assert!(matches!(parse_client_first(b"n,,n=al=ice,r=x"), Err(ScramError::Refused(_))));
        let mut server = ScramServer::new(ScramMechanism::Sha512, "s".into());
        let first = parse_client_first(b"n,,n=nobody,r=abc").unwrap();
        assert_eq!(server.server_first(first, None), Err(ScramError::InvalidCredentials));
    }
}
