//! A connection to another broker, speaking the Kafka protocol as a client does: one
//! request at a time, each answered before the next is sent.
//!
//! It goes to the peer's inter-broker listener and secures itself as that listener asks
//! ([`InterBroker`]): TLS with the peer's certificate verified, then SASL (PLAIN or SCRAM)
//! with this broker's login, as Kafka's inter-broker clients do, before any other request.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rivulet_protocol::client::{decode_response, encode_request};
use rivulet_protocol::kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use rivulet_protocol::kafka_protocol::protocol::{Request, StrBytes};
use rivulet_protocol::ResponseError;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::security::scram::{self, ScramClient};
use crate::security::{InterBroker, SaslLogin, SaslMechanism};

/// Largest response accepted from a peer (a fetch answer is bounded by its `max_bytes`).
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;
/// How long connecting, the TLS handshake and each SASL step may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// SaslHandshake v1: the mechanism's tokens then travel in SaslAuthenticate (KIP-152).
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("connecting to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("i/o with broker {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(#[from] rivulet_protocol::ProtocolError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("response of {0} bytes is too large")]
    TooLarge(usize),
    #[error("response to correlation id {got}, expected {expected}")]
    Correlation { got: i32, expected: i32 },
    /// The TLS handshake failed (most often: a certificate the truststore does not accept).
    #[error("TLS with {address}: {reason}")]
    Tls { address: String, reason: String },
    /// The peer refused this broker's login, or could not prove it knows the credential.
    #[error("authentication to {address} failed: {reason}")]
    Authentication { address: String, reason: String },
}

impl PeerError {
    /// Whether retrying cannot help until the configuration changes (a wrong password, a
    /// mechanism the peer does not enable, an untrusted certificate): worth a warning,
    /// where an unreachable peer during a failover is routine.
    pub fn is_authentication(&self) -> bool {
        matches!(self, PeerError::Authentication { .. } | PeerError::Tls { .. })
    }
}

/// The byte stream under a connection: plain TCP or TLS over it.
trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerStream for T {}

pub struct PeerConnection {
    stream: Box<dyn PeerStream>,
    client_id: String,
    next_correlation_id: i32,
}

impl PeerConnection {
    /// Connects to `host:port`, the peer's inter-broker listener, and secures the
    /// connection as `security` says.
    pub async fn connect(host: &str, port: u16, client_id: String, security: &InterBroker) -> Result<Self, PeerError> {
        let address = format!("{host}:{port}");
        let failed = |reason: String| PeerError::Connect { address: address.clone(), reason };
        let tcp = tokio::time::timeout(SETUP_TIMEOUT, TcpStream::connect(&address))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn PeerStream> = match security.tls.as_ref().and_then(|t| t.client.clone()) {
            None => Box::new(tcp),
            Some(client) => {
                let tls_failed = |reason: String| PeerError::Tls { address: address.clone(), reason };
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| tls_failed(format!("{host} is not a valid server name: {e}")))?;
                let handshake = tokio_rustls::TlsConnector::from(client).connect(name, tcp);
                let tls = tokio::time::timeout(SETUP_TIMEOUT, handshake)
                    .await
                    // A peer too slow to answer (paused, overloaded) is unreachable, not refusing.
                    .map_err(|_| failed("TLS handshake timed out".into()))?
                    .map_err(|e| tls_failed(format!("handshake: {e}")))?;
                Box::new(tls)
            }
        };
        let mut connection = Self { stream, client_id, next_correlation_id: 0 };
        if let Some(login) = &security.sasl {
            connection.authenticate(login).await.map_err(|e| match e {
                PeerError::Authentication { reason, .. } => PeerError::Authentication { address, reason },
                other => other,
            })?;
        }
        Ok(connection)
    }

    /// SaslHandshake for the login's mechanism, then its tokens in SaslAuthenticate.
    async fn authenticate(&mut self, login: &SaslLogin) -> Result<(), PeerError> {
        let refused = |reason: String| PeerError::Authentication { address: String::new(), reason };
        let handshake = self
            .call(
                SASL_HANDSHAKE_VERSION,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
                SETUP_TIMEOUT,
            )
            .await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!(
                "the listener does not enable {} (it offers {})",
                login.mechanism,
                offered.join(", ")
            )));
        }
        match login.mechanism {
            SaslMechanism::Plain => {
                let token = format!("\0{}\0{}", login.username, login.password);
                self.sasl_step(Bytes::from(token)).await?;
            }
            SaslMechanism::Scram(mechanism) => {
                let nonce = scram::new_server_nonce().map_err(|e| refused(format!("no random nonce: {e}")))?;
                let mut client = ScramClient::new(mechanism, &login.username, &login.password, nonce);
                let server_first = self.sasl_step(Bytes::from(client.client_first())).await?;
                let client_final = client.client_final(&server_first).map_err(|e| refused(format!("{e:?}")))?;
                let server_final = self.sasl_step(Bytes::from(client_final)).await?;
                client.verify_server_final(&server_final).map_err(|e| refused(format!("{e:?}")))?;
            }
            // The configuration refuses OAUTHBEARER as the inter-broker mechanism.
            SaslMechanism::OAuthBearer => {
                return Err(refused("OAUTHBEARER between brokers is not implemented".to_string()));
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round: sends `token`, returns the server's.
    async fn sasl_step(&mut self, token: Bytes) -> Result<Bytes, PeerError> {
        let response = self
            .call(SASL_AUTHENTICATE_VERSION, &SaslAuthenticateRequest::default().with_auth_bytes(token), SETUP_TIMEOUT)
            .await?;
        if response.error_code != 0 {
            let named = ResponseError::try_from_code(response.error_code)
                .map_or_else(|| response.error_code.to_string(), |e| format!("{e:?}"));
            let message = response.error_message.as_ref().map_or("", |m| m.as_str());
            return Err(PeerError::Authentication { address: String::new(), reason: format!("{named}: {message}") });
        }
        Ok(response.auth_bytes)
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response.
    pub async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, PeerError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(correlation_id, &self.client_id, version, request)?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            self.stream.flush().await?;
            let size = self.stream.read_i32().await?;
            let size = usize::try_from(size).map_err(|_| PeerError::TooLarge(0))?;
            if size > MAX_RESPONSE_BYTES {
                return Err(PeerError::TooLarge(size));
            }
            let mut body = BytesMut::zeroed(size);
            self.stream.read_exact(&mut body).await?;
            Ok::<_, PeerError>(body.freeze())
        };
        let body = tokio::time::timeout(timeout, exchange).await.map_err(|_| PeerError::Timeout(timeout))??;
        let (got, response) = decode_response::<R>(body, version)?;
        if got != correlation_id {
            return Err(PeerError::Correlation { got, expected: correlation_id });
        }
        Ok(response)
    }
}
