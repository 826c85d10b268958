//! A connection to another broker, speaking the Kafka protocol as a client does: one
//! request at a time, each answered before the next is sent.

use std::time::Duration;

use bytes::BytesMut;
use rivulet_protocol::client::{decode_response, encode_request};
use rivulet_protocol::kafka_protocol::protocol::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a peer (a fetch answer is bounded by its `max_bytes`).
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

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
}

pub struct PeerConnection {
    stream: TcpStream,
    client_id: String,
    next_correlation_id: i32,
}

impl PeerConnection {
    pub async fn connect(host: &str, port: u16, client_id: String) -> Result<Self, PeerError> {
        let address = format!("{host}:{port}");
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&address))
            .await
            .map_err(|_| PeerError::Connect { address: address.clone(), reason: "timed out".into() })?
            .map_err(|e| PeerError::Connect { address, reason: e.to_string() })?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, client_id, next_correlation_id: 0 })
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
