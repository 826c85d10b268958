//! A minimal Kafka client for tests, one request at a time, in a blocking and an async
//! flavour over the same framing: requests are encoded by `kafka-protocol` (as a real
//! client's would be, not by the broker's own code paths) and responses must come back in
//! order with the right correlation id.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::protocol::Request;
use rivulet_protocol::client::{decode_response, encode_request};

const CLIENT_ID: &str = "rivulet-test";

/// How long a test waits for one response before failing.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Numbers requests and checks responses against them: what both clients share.
#[derive(Debug, Default)]
struct Correlation {
    last: i32,
}

impl Correlation {
    /// The next request's frame (size prefix included) and its correlation id.
    fn frame<R: Request>(&mut self, request: &R, version: i16) -> (i32, BytesMut) {
        self.last += 1;
        let frame = encode_request(self.last, CLIENT_ID, version, request).expect("the request encodes");
        (self.last, BytesMut::from(&frame[..]))
    }
}

/// Decodes the response to the request numbered `correlation_id`.
fn decode<R: Request>(correlation_id: i32, body: Bytes, version: i16) -> R::Response {
    let (got, response) = decode_response::<R>(body, version).expect("a well-formed response");
    assert_eq!(got, correlation_id, "responses must come back in order");
    response
}

/// A blocking client.
pub struct Client {
    pub stream: TcpStream,
    correlation: Correlation,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).expect("timeout");
        Client { stream, correlation: Correlation::default() }
    }

    /// Sends raw bytes (for malformed-input tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame (without its size prefix); `None` when the broker closed
    /// the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(size)).ok()?];
        self.stream.read_exact(&mut body).ok()?;
        Some(body.into())
    }

    /// Encodes the next request frame, size prefix included, without sending it.
    pub fn frame<R: Request>(&mut self, request: &R, version: i16) -> (i32, BytesMut) {
        self.correlation.frame(request, version)
    }

    /// Sends `request` at `version` and decodes the response; `None` if the connection closed.
    pub fn try_send<R: Request>(&mut self, request: &R, version: i16) -> Option<R::Response> {
        let (correlation_id, frame) = self.frame(request, version);
        self.stream.write_all(&frame).ok()?;
        let body = self.read_frame()?;
        Some(decode::<R>(correlation_id, body, version))
    }

    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.try_send(request, version).expect("broker closed the connection")
    }
}

/// A client for tests that run inside a tokio runtime (e.g. beside an in-process broker).
pub struct AsyncClient {
    stream: tokio::net::TcpStream,
    correlation: Correlation,
}

impl AsyncClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        AsyncClient { stream, correlation: Correlation::default() }
    }

    /// Sends `request` at `version` and decodes the response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (correlation_id, frame) = self.correlation.frame(request, version);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let size = self.stream.read_i32().await?;
            let mut body = vec![0u8; usize::try_from(size).unwrap_or_default()];
            self.stream.read_exact(&mut body).await?;
            std::io::Result::Ok(Bytes::from(body))
        };
        let body = tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
            .await
            .expect("a response within the timeout")
            .expect("broker closed the connection");
        decode::<R>(correlation_id, body, version)
    }
}

/// The correlation id of a response frame (without its size prefix).
pub fn correlation_of(mut frame: Bytes) -> i32 {
    frame.get_i32()
}
