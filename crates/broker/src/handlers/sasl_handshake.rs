//! SaslHandshake (key 17) once a connection no longer authenticates: on a PLAINTEXT
//! listener, or after a SASL exchange completed (re-authentication, KIP-368, is not
//! offered). Kafka's `KafkaApis` answers ILLEGAL_SASL_STATE there; on a SASL listener
//! before authentication the connection's authenticator answers instead.

use std::sync::Arc;

use rivulet_protocol::kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use rivulet_protocol::ResponseError;

use crate::broker::Broker;
use crate::request_context::RequestContext;

pub fn handle(_broker: &Arc<Broker>, _ctx: &RequestContext, _request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}
