//! SaslAuthenticate (key 36) once a connection no longer authenticates (see
//! `sasl_handshake`): ILLEGAL_SASL_STATE, as Kafka's `KafkaApis` answers.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use rivulet_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(
    _broker: &Arc<Broker>,
    _ctx: &RequestContext,
    _request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(str_bytes("SaslAuthenticate request received after successful authentication")))
}
