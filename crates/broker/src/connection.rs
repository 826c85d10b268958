//! One client connection: read a frame, decode it, handle it, write the response — one
//! request at a time, so responses leave in request order however deep the client
//! pipelines (as Kafka's `Processor` mutes a channel until its response is sent).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rivulet_protocol::frame::{check_frame_size, SIZE_PREFIX_BYTES};
use rivulet_protocol::request::{decode_request, Request};
use rivulet_protocol::response::{
    encode_api_versions_fallback, encode_response, set_throttle_time_ms, throttle_time_ms,
};
use rivulet_protocol::{ProtocolError, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::Instrument;

use crate::broker::Broker;
use crate::handlers::{self, Reply};
use crate::metrics::METRICS;
use crate::quota::{self, QuotaType};
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
        // Requests are timed only while some request_percentage is set.
        let decode_started = broker.quotas.request_quotas_enabled().then(std::time::Instant::now);
        let response = match decode_request(frame)? {
            Request::ApiVersionsFallback { correlation_id, version } => {
                tracing::debug!(version, "ApiVersions of an unknown version: answering with v0 (KIP-511)");
                encode_api_versions_fallback(correlation_id)?
            }
            Request::Known { header, api_key, body } => {
                let decoded = decode_started.map(|started| started.elapsed());
                if let RequestKind::ApiVersions(request) = &*body {
                    // KIP-511: v3+ names the client software; kept for the connection's life.
                    if header.request_api_version >= 3 && !request.client_software_name.is_empty() {
                        connection.client_software_name = Arc::from(request.client_software_name.as_str());
                        connection.client_software_version = Arc::from(request.client_software_version.as_str());
                    }
                }
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
                // KIP-124: the time spent on the request counts against the client's
                // request_percentage, unless Kafka exempts the request.
                let timed = decoded.filter(|_| !quota::exempt_from_request_quota(&body, ctx.api_version));
                let (reply, busy) =
                    polled(handlers::handle(broker, &ctx, *body).instrument(span), timed.is_some()).await;
                let response = match reply {
                    Reply::Response(mut body) => {
                        let request_throttle = match timed {
                            Some(decoded) => millis(broker.quotas.record_request(
                                &ctx.principal.name,
                                ctx.client_id.as_str(),
                                decoded + busy,
                            )),
                            None => 0,
                        };
                        throttle = apply_throttles(broker, &ctx, &mut body, request_throttle);
                        let encode_started = timed.map(|_| std::time::Instant::now());
                        let encoded = encode_response(ctx.correlation_id, ctx.api_version, &body)?;
                        if let Some(encode_started) = encode_started {
                            broker.quotas.record_request_unthrottled(
                                &ctx.principal.name,
                                ctx.client_id.as_str(),
                                encode_started.elapsed(),
                            );
                        }
                        encoded
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

/// Runs `future`, and when `timed` adds up the time it spends being polled: the time the
/// request's handler actually runs, without what it waits for (replication, a long-poll
/// fetch, a rebalance), as Kafka counts a request handler thread's time and not purgatory's.
async fn polled<F: Future>(future: F, timed: bool) -> (F::Output, Duration) {
    if !timed {
        return (future.await, Duration::ZERO);
    }
    let mut future = std::pin::pin!(future);
    let mut busy = Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let started = std::time::Instant::now();
        let poll = future.as_mut().poll(cx);
        busy += started.elapsed();
        poll
    })
    .await;
    (output, busy)
}

fn millis(throttle: Duration) -> i32 {
    i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX)
}

/// Sets the response's `throttle_time_ms` to the longer of the byte-rate throttle its
/// handler set (Produce, Fetch) and `request_throttle`, as Kafka's `KafkaApis` does, and
/// returns it: the connection then reads nothing for that long. A fetch throttled for its
/// request time is answered without records, as one throttled for its byte rate is.
fn apply_throttles(broker: &Broker, ctx: &RequestContext, body: &mut ResponseKind, request_throttle: i32) -> i32 {
    let byte_throttle = throttle_time_ms(body).unwrap_or(0);
    if request_throttle > 0 {
        if let ResponseKind::Fetch(fetch) = body {
            handlers::throttle_fetch_for_request_time(broker, ctx, fetch);
        }
    }
    let throttle = byte_throttle.max(request_throttle);
    if throttle > 0 {
        set_throttle_time_ms(body, throttle);
        let quota = match body {
            _ if request_throttle >= byte_throttle => QuotaType::Request,
            ResponseKind::Fetch(_) => QuotaType::Fetch,
            _ => QuotaType::Produce,
        };
        METRICS.quota_throttled_responses.with_label_values(&[quota.name()]).inc();
        METRICS.quota_throttle_seconds.with_label_values(&[quota.name()]).inc_by(f64::from(throttle) / 1000.0);
    }
    throttle
}
