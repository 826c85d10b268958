//! The web console (`rivulet.console.listener`): a read-only page served by the broker
//! itself, showing brokers and controller, topics with their partitions, consumer groups
//! with their lag, transactions, and live plots of this broker's produce / fetch
//! throughput and request latency.
//!
//! The page is plain HTML, CSS and one script compiled into the binary (`include_str!`),
//! so there is no build toolchain and nothing to deploy beside the broker. The script
//! polls a small JSON API on the same listener ([`api`]); the plots come from a ring of
//! samples the broker takes of its own metrics once a second ([`samples`]).
//!
//! The HTTP side is deliberately minimal, like `/metrics`: one `GET`/`HEAD` request per
//! connection, the request head read with a size limit and a timeout, a bounded number of
//! connections, `Connection: close`. Anything it does not understand gets a 4xx status and
//! the connection closed; it never panics on what a client sends. It answers only on the
//! address configured, and only when one is: the console is off by default.
//!
//! The console has no login. With an authorizer configured it would show what the ACLs
//! hide, so the configuration refuses to start it then unless
//! `rivulet.console.allow.unauthenticated=true` (see [`crate::config`]).

pub mod api;
pub mod samples;

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::broker::Broker;
use samples::Samples;

/// The longest request head read; a browser's GET with its headers is well below it.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// Connections served at once; more are closed unanswered. The page polls with a handful.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing the answer may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, and how much, unread input is drained after answering (see [`linger`]).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 256 * 1024;

const INDEX_HTML: &str = include_str!("static/index.html");
const CONSOLE_JS: &str = include_str!("static/console.js");
const CONSOLE_CSS: &str = include_str!("static/console.css");

/// Why a request could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request head is larger than {MAX_REQUEST_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("malformed request line")]
    Malformed,
    #[error("the connection closed before a whole request head arrived")]
    Incomplete,
}

/// The parts of a request the console looks at.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// The path, without any query string.
    pub path: &'a str,
}

/// Parses `METHOD SP request-target SP HTTP/1.x` (RFC 9112 §3), the first line of `head`.
pub fn parse_request_line(head: &[u8]) -> Result<RequestLine<'_>, RequestError> {
    let end = head.iter().position(|&b| b == b'\n').ok_or(RequestError::Malformed)?;
    let line = std::str::from_utf8(&head[..end]).map_err(|_| RequestError::Malformed)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed);
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    if !token(method) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(RequestError::Malformed);
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Ok(RequestLine { method, path })
}

/// A response: status line, content type and body.
#[derive(Debug)]
pub struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: format!("{body}\n") }
    }

    fn json<T: serde::Serialize>(value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(body) => Self { status: "200 OK", content_type: "application/json", body },
            Err(e) => {
                tracing::warn!(error = %e, "encoding a console document failed");
                Self::text("500 Internal Server Error", "encoding failed")
            }
        }
    }

    /// The bytes on the wire; `HEAD` gets the headers alone.
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        // The page shows names clients chose (group and transactional ids): the script
        // inserts them as text only, and the policy forbids any script but the console's.
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
             X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
             Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if self.status.starts_with("405") {
            // RFC 9110 §15.5.6: a 405 names the methods the resource has.
            out.splice(out.len() - 2..out.len() - 2, b"Allow: GET, HEAD\r\n".iter().copied());
        }
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The answer to `GET path`.
pub fn route(broker: &Broker, samples: &Samples, path: &str) -> Response {
    match path {
        "/" | "/index.html" => {
            Response { status: "200 OK", content_type: "text/html; charset=utf-8", body: INDEX_HTML.to_string() }
        }
        "/console.js" => {
            Response { status: "200 OK", content_type: "text/javascript; charset=utf-8", body: CONSOLE_JS.to_string() }
        }
        "/console.css" => {
            Response { status: "200 OK", content_type: "text/css; charset=utf-8", body: CONSOLE_CSS.to_string() }
        }
        "/api/cluster" => Response::json(&api::cluster(broker)),
        "/api/topics" => Response::json(&api::topics(broker)),
        "/api/groups" => Response::json(&api::groups(broker)),
        "/api/transactions" => Response::json(&api::transactions(broker)),
        "/api/metrics" => Response::json(&api::metrics(broker, samples)),
        _ => Response::text("404 Not Found", "not found"),
    }
}

/// Reads a request head: up to the blank line ending it, at most
/// [`MAX_REQUEST_HEAD_BYTES`]. A body is never read; the console takes none.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, RequestError> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| RequestError::Incomplete)?;
        if n == 0 {
            return Err(RequestError::Incomplete);
        }
        head.extend_from_slice(&chunk[..n]);
        // The limit first: a head that ends past it is refused even when it is complete.
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            return Err(RequestError::TooLarge);
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
    }
}

/// Serves one connection: one request, one answer, closed.
async fn serve_connection(mut stream: TcpStream, broker: Weak<Broker>, samples: Arc<Samples>) {
    let (response, head_only) = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Err(_) | Ok(Err(RequestError::Incomplete)) => return,
        Ok(Err(RequestError::TooLarge)) => {
            (Response::text("431 Request Header Fields Too Large", "request too large"), false)
        }
        Ok(Err(RequestError::Malformed)) => (Response::text("400 Bad Request", "bad request"), false),
        Ok(Ok(head)) => match parse_request_line(&head) {
            Err(_) => (Response::text("400 Bad Request", "bad request"), false),
            Ok(line) if line.method != "GET" && line.method != "HEAD" => {
                (Response::text("405 Method Not Allowed", "the console is read-only: GET only"), false)
            }
            Ok(line) => {
                let Some(broker) = broker.upgrade() else { return };
                // Building a document locks coordinator state briefly and reads log
                // offsets: off the async workers, as the handlers do for log reads.
                let path = line.path.to_string();
                let head_only = line.method == "HEAD";
                let samples = samples.clone();
                match tokio::task::spawn_blocking(move || route(&broker, &samples, &path)).await {
                    Ok(response) => (response, head_only),
                    Err(e) => {
                        tracing::warn!(error = %e, "a console request failed");
                        (Response::text("500 Internal Server Error", "internal error"), false)
                    }
                }
            }
        },
    };
    let bytes = response.encode(head_only);
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(written, Ok(Ok(()))) {
        linger(&mut stream).await;
    }
}

/// Reads and discards what the client still sends, until it closes or [`LINGER`] passes.
/// Closing a socket with unread input makes the kernel send a reset, which can destroy
/// the answer before the client reads it — the 400 or 431 of a request not read whole.
async fn linger(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let mut left = LINGER_MAX_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Samples the broker's metrics for the plots and serves the console on `listener` until
/// the task is dropped.
pub async fn serve(listener: TcpListener, broker: Weak<Broker>) {
    let samples = Arc::new(Samples::default());
    let sampler = tokio::spawn(samples.clone().run());
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::debug!(error = %e, "console accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if broker.strong_count() == 0 {
            break;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "refusing console connection: {MAX_CONNECTIONS} already open");
            continue;
        };
        let (broker, samples) = (broker.clone(), samples.clone());
        tokio::spawn(async move {
            serve_connection(stream, broker, samples).await;
            drop(permit);
        });
    }
    sampler.abort();
}

#[cfg(test)]
mod tests;
