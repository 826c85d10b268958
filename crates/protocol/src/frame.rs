//! Length-prefixed framing: every Kafka request and response is an `i32` big-endian size
//! followed by that many bytes.

use crate::ProtocolError;

/// Bytes in the size prefix.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// The smallest possible request: api key, api version, correlation id, client id length.
pub const MIN_REQUEST_BYTES: usize = 2 + 2 + 4 + 2;

/// Validates a frame's size prefix before the body is allocated.
///
/// Mirrors Kafka's `NetworkReceive`: a negative size or one above `max_bytes` is refused
/// (the connection is then closed), so a peer claiming 2 GiB costs us nothing.
pub fn check_frame_size(prefix: [u8; SIZE_PREFIX_BYTES], max_bytes: usize) -> Result<usize, ProtocolError> {
    let size = i32::from_be_bytes(prefix);
    let too_large = ProtocolError::FrameTooLarge { size: i64::from(size), max: max_bytes };
    let size = usize::try_from(size).map_err(|_| too_large)?;
    if size > max_bytes {
        return Err(ProtocolError::FrameTooLarge { size: size as i64, max: max_bytes });
    }
    if size < MIN_REQUEST_BYTES {
        return Err(ProtocolError::FrameTooShort(size));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_negative_and_oversized_frames() {
        assert!(check_frame_size((-1i32).to_be_bytes(), 1024).is_err());
        assert!(check_frame_size(i32::MAX.to_be_bytes(), DEFAULT_MAX_REQUEST_BYTES).is_err());
        assert!(check_frame_size(1025i32.to_be_bytes(), 1024).is_err());
        assert!(check_frame_size(3i32.to_be_bytes(), 1024).is_err());
        assert_eq!(check_frame_size(1024i32.to_be_bytes(), 1024).unwrap(), 1024);
    }
}
