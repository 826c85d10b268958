//! One client connection: read a frame, decode it, handle it, write the response — one
//! request at a time, so responses leave in request order however deep the client
//! pipelines (as Kafka's `Processor` mutes a channel until its response is sent).

use std::net::SocketAddr;
use std::sync::Arc;

use rivulet_protocol::frame::{check_frame_size, SIZE_PREFIX_BYTES};
use rivulet_protocol::request::{decode_request, Request};
use rivulet_protocol::response::{encode_api_versions_fallback, encode_response};
use rivulet_protocol::{ProtocolError, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use crate::broker::Broker;
use crate::handlers::{self, Reply};
use crate::metrics::METRICS;
use crate::request_context::{ConnectionContext, KafkaPrincipal, RequestContext, SecurityProtocol};
use crate::security::authenticator::{Authenticator, Step};

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("truncated frame: expected {expected} bytes, got {got} before end of stream")]
    Truncated { expected: usize, got: usize },
    #[error("closing: {0}")]
    Closed(String),
    #[error("idle for longer than connections.max.idle.ms ({0} ms)")]
    Idle(u64),
    #[error("SASL session expired (connections.max.reauth.ms) without re-authentication")]
    SessionExpired,
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
///
/// The body buffer grows as bytes arrive rather than being allocated at the announced size,
/// so a peer that announces a large frame and sends little costs little.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<bytes::Bytes>, ConnectionError> {
    let mut prefix = [0u8; SIZE_PREFIX_BYTES];
    let mut filled = 0;
    while filled < SIZE_PREFIX_BYTES {
        let n = reader.read(&mut prefix[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(ConnectionError::Truncated { expected: SIZE_PREFIX_BYTES, got: filled })
            };
        }
        filled += n;
    }
    let size = check_frame_size(prefix, max_bytes)?;
    let mut body = Vec::with_capacity(size.min(64 * 1024));
    reader.take(size as u64).read_to_end(&mut body).await?;
    if body.len() < size {
        return Err(ConnectionError::Truncated { expected: size, got: body.len() });
    }
    Ok(Some(body.into()))
}

/// Serves one connection, accepted from `peer` on the listener named `listener_name`, until
/// the peer closes it or breaks the protocol. `principal` is the identity TLS established
/// (a verified client certificate), if any; SASL may replace it.
pub async fn serve<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    listener_name: Arc<str>,
    principal: Option<KafkaPrincipal>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = tracing::info_span!("connection", %peer, listener = %listener_name, principal = tracing::field::Empty);
    let protocol =
        broker.config.security.protocols.get(&*listener_name).copied().unwrap_or(SecurityProtocol::Plaintext);
    // A SASL listener authenticates before serving; the configuration resolved one entry
    // per SASL listener, and a missing one is refused rather than served unauthenticated.
    let authenticator = match protocol {
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => {
            match broker.config.security.sasl.get(&*listener_name) {
                Some(sasl) => Some(Authenticator::new(sasl.clone())),
                None => {
                    tracing::error!(listener = %listener_name, "no SASL settings for a SASL listener: closing");
                    return;
                }
            }
        }
        _ => None,
    };
    let mut connection = ConnectionContext::new(peer, listener_name, protocol);
    if let Some(principal) = principal {
        span.record("principal", tracing::field::display(&principal));
        connection.principal = Arc::new(principal);
    }
    async move {
        METRICS.connections.inc();
        let outcome = serve_inner(&broker, stream, connection, authenticator).await;
        METRICS.connections.dec();
        match outcome {
            Ok(()) => tracing::debug!("connection closed by peer"),
            Err(ConnectionError::Io(e)) => tracing::debug!(error = %e, "connection dropped"),
            // Routine for clients that cannot re-authenticate; Kafka logs it at debug too.
            Err(e @ ConnectionError::SessionExpired) => tracing::debug!(error = %e, "closing connection"),
            Err(e) => tracing::warn!(error = %e, "closing connection"),
        }
    }
    .instrument(span)
    .await
}

async fn serve_inner<S>(
    broker: &Arc<Broker>,
    stream: S,
    mut connection: ConnectionContext,
    mut authenticator: Option<Authenticator>,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let max_bytes = broker.config.socket_request_max_bytes;
    let idle_ms = broker.config.connections_max_idle_ms;
    let idle = std::time::Duration::from_millis(idle_ms);
    let mut throttle: i32 = 0;
    loop {
        let Ok(next) = tokio::time::timeout(idle, read_frame(&mut reader, max_bytes)).await else {
            return Err(ConnectionError::Idle(idle_ms));
        };
        let Some(frame) = next? else { break };
        let response = match decode_request(frame)? {
            Request::ApiVersionsFallback { correlation_id, version } => {
                tracing::debug!(version, "ApiVersions of an unknown version: answering with v0 (KIP-511)");
                encode_api_versions_fallback(correlation_id)?
            }
            Request::Known { header, api_key, body } => {
                let ctx = RequestContext::new(&header, api_key, &connection);
                if let Some(auth) = authenticator.as_mut().filter(|a| a.is_complete()) {
                    let now = std::time::Instant::now();
                    let reauthenticates =
                        matches!(&*body, RequestKind::SaslHandshake(_)) && auth.begin_reauthentication(now);
                    if !reauthenticates && auth.session_expired(now) {
                        // KIP-368: the client did not re-authenticate in time (Kafka's
                        // "Disconnecting expired channel"); nothing more is served.
                        METRICS.expired_connections_killed.inc();
                        return Err(ConnectionError::SessionExpired);
                    }
                }
                if let Some(auth) = authenticator.as_mut().filter(|a| !a.is_complete()) {
                    let reauthenticating = auth.is_reauthenticating();
                    let step = match &*body {
                        RequestKind::ApiVersions(_) => auth.on_api_versions(),
                        RequestKind::SaslHandshake(request) => auth.on_handshake(ctx.api_version, request),
                        RequestKind::SaslAuthenticate(request) => {
                            auth.on_authenticate(broker, ctx.api_version, request).await
                        }
                        _ => auth.on_other(&format!("{api_key:?}")),
                    };
                    let mechanism = auth.mechanism().map_or("", |m| m.name());
                    let failure = if reauthenticating { "reauthentication_failure" } else { "failure" };
                    let response = match step {
                        Step::Serve => None,
                        Step::Continue(response) => {
                            Some(encode_response(ctx.correlation_id, ctx.api_version, &response)?)
                        }
                        Step::Authenticated(response, user) => {
                            METRICS
                                .authentications
                                .with_label_values(&[&connection.listener_name, mechanism, "success"])
                                .inc();
                            let principal = KafkaPrincipal::user(&user);
                            tracing::Span::current().record("principal", tracing::field::display(&principal));
                            tracing::debug!(%principal, mechanism, "authenticated");
                            connection.principal = Arc::new(principal);
                            Some(encode_response(ctx.correlation_id, ctx.api_version, &response)?)
                        }
                        Step::Reauthenticated(response) => {
                            METRICS
                                .authentications
                                .with_label_values(&[&connection.listener_name, mechanism, "reauthentication_success"])
                                .inc();
                            tracing::debug!(principal = %connection.principal, mechanism, "re-authenticated");
                            Some(encode_response(ctx.correlation_id, ctx.api_version, &response)?)
                        }
                        Step::Failed(response, reason) => {
                            METRICS
                                .authentications
                                .with_label_values(&[&connection.listener_name, mechanism, failure])
                                .inc();
                            tracing::info!(%reason, mechanism, "authentication failed");
                            // KIP-306: the answer and the close wait, slowing password guessing.
                            let delay = std::time::Duration::from_millis(broker.config.failed_authentication_delay_ms);
                            tokio::time::sleep(delay).await;
                            let response = encode_response(ctx.correlation_id, ctx.api_version, &response)?;
                            writer.write_all(&response).await?;
                            writer.flush().await?;
                            return Err(ConnectionError::Closed(format!("authentication failed: {reason}")));
                        }
                        Step::Close(reason) => {
                            METRICS
                                .authentications
                                .with_label_values(&[&connection.listener_name, mechanism, failure])
                                .inc();
                            return Err(ConnectionError::Closed(reason));
                        }
                    };
                    if let Some(response) = response {
                        writer.write_all(&response).await?;
                        continue;
                    }
                }
                let span = tracing::debug_span!(
                    "request",
                    api = ?ctx.api_key,
                    version = ctx.api_version,
                    correlation_id = ctx.correlation_id,
                    client_id = ctx.client_id.as_str(),
                    principal = %ctx.principal,
                );
                let api_name = format!("{api_key:?}");
                let started = std::time::Instant::now();
                let reply = handlers::handle(broker, &ctx, *body).instrument(span).await;
                let response = match reply {
                    Reply::Response(body) => {
                        throttle = throttle_of(&body);
                        encode_response(ctx.correlation_id, ctx.api_version, &body)?
                    }
                    Reply::NoResponse => continue,
                    Reply::Close(reason) => return Err(ConnectionError::Closed(reason)),
                };
                METRICS.requests.with_label_values(&[api_name.as_str()]).inc();
                METRICS
                    .request_seconds
                    .with_label_values(&[api_name.as_str()])
                    .observe(started.elapsed().as_secs_f64());
                response
            }
        };
        writer.write_all(&response).await?;
        // A client over its quota was told to wait: the connection reads nothing more from
        // it until then (KIP-219's muted channel), so a client that does not wait cannot
        // get ahead.
        if throttle > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(throttle as u64)).await;
            throttle = 0;
        }
    }
    Ok(())
}

/// The throttle a response tells its client to wait for (only quota-checked APIs carry one
/// here).
fn throttle_of(response: &ResponseKind) -> i32 {
    match response {
        ResponseKind::Produce(r) => r.throttle_time_ms,
        ResponseKind::Fetch(r) => r.throttle_time_ms,
        _ => 0,
    }
}
