//! Errors raised while framing or decoding requests.

/// Why a frame could not be turned into a request.
///
/// Every variant except [`ProtocolError::UnsupportedVersion`] means the connection can no
/// longer be trusted and is closed, as Kafka's `SocketServer` does.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame size {size} is negative or exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: usize },
    #[error("frame of {0} bytes is too short to hold a request header")]
    FrameTooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of API {api_key:?}")]
    UnsupportedVersion { api_key: kafka_protocol::messages::ApiKey, version: i16, correlation_id: i32 },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("cannot encode response: {0}")]
    Encode(String),
}
