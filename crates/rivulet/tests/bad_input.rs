//! Malformed input against a real broker process: each case gets Kafka's outcome (an
//! error response or a closed connection) and the broker keeps serving other clients.

use std::io::Read;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest};
use kafka_protocol::protocol::{Decodable, StrBytes};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use rivulet_test_support::{BrokerProcess, Client};

/// The binary under test, built by `cargo test`.
const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

/// The broker closed `client`'s connection (EOF, or reset).
fn assert_closed(client: &mut Client) {
    client.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1];
    match client.stream.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(_) => panic!("expected the connection to be closed, got data"),
    }
}

/// A fresh connection and a long-lived one both still get answers.
fn assert_serving(broker: &BrokerProcess, long_lived: &mut Client) {
    for client in [&mut broker.client(), long_lived] {
        let response = client.send(&ApiVersionsRequest::default(), 3);
        assert_eq!(response.error_code, 0);
        assert!(!response.api_keys.is_empty());
    }
}

#[test]
fn truncated_frame_closes_only_that_connection() {
    let broker = BrokerProcess::start(RIVULET, &[]);
    let mut other = broker.client();
    let mut client = broker.client();
    let (_, frame) = client.frame(&MetadataRequest::default(), 12);
    client.send_raw(&frame[..frame.len() / 2]).unwrap();
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed(&mut client);
    assert_serving(&broker, &mut other);
    assert!(broker.wait_for_log("truncated frame"), "{}", broker.log());
}

#[test]
fn frame_claiming_2_gib_is_refused_before_allocation() {
    let broker = BrokerProcess::start(RIVULET, &[]);
    let mut other = broker.client();
    let mut client = broker.client();
    let mut frame = BytesMut::new();
    frame.put_i32(i32::MAX);
    frame.put_slice(&[0u8; 64]);
    client.send_raw(&frame).unwrap();
    assert_closed(&mut client);
    assert_serving(&broker, &mut other);
    assert!(broker.wait_for_log("socket.request.max.bytes"), "{}", broker.log());
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let broker = BrokerProcess::start(RIVULET, &[]);
    let mut other = broker.client();
    let mut client = broker.client();
    let mut body = BytesMut::new();
    body.put_i16(31_000);
    body.put_i16(0);
    body.put_i32(1);
    body.put_i16(-1);
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    client.send_raw(&frame).unwrap();
    assert_closed(&mut client);
    assert_serving(&broker, &mut other);
}

#[test]
fn api_versions_v99_gets_a_v0_unsupported_version_answer() {
    let broker = BrokerProcess::start(RIVULET, &[]);
    let mut client = broker.client();
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(99);
    body.put_i32(4242);
    body.put_i16(4);
    body.put_slice(b"java");
    body.put_u8(0); // tagged fields, as a flexible header would carry
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    client.send_raw(&frame).unwrap();
    let mut response = client.read_frame().expect("a response, not a closed connection");
    assert_eq!(rivulet_test_support::correlation_of(response.clone()), 4242);
    let _ = bytes::Buf::get_i32(&mut response);
    let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
    let api_versions = body.api_keys.iter().find(|k| k.api_key == ApiKey::ApiVersions as i16).unwrap();
    assert_eq!((api_versions.min_version, api_versions.max_version), (0, 4));
    // The client retries with a version both know, on the same connection.
    let retry =
        client.send(&ApiVersionsRequest::default().with_client_software_name(StrBytes::from_static_str("t")), 3);
    assert_eq!(retry.error_code, 0);
}

#[test]
fn unsupported_version_of_a_known_api_closes_the_connection() {
    let broker = BrokerProcess::start(RIVULET, &[]);
    let mut other = broker.client();
    let mut client = broker.client();
    // Produce v2 is advertised (KAFKA-18659) but refused, as Kafka 4 does.
    let (_, mut frame) = client.frame(&MetadataRequest::default(), 1);
    frame[4..6].copy_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    frame[6..8].copy_from_slice(&2i16.to_be_bytes());
    client.send_raw(&frame).unwrap();
    assert_closed(&mut client);
    assert_serving(&broker, &mut other);
}

/// Random bytes never crash the broker: each connection gets an answer or is closed, and a
/// bystander connection keeps working throughout.
#[test]
fn random_bytes_never_take_the_broker_down() {
    let broker = BrokerProcess::start(RIVULET, &[]);
    let other = std::cell::RefCell::new(broker.client());
    let mut runner = TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let strategy = (proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 1..8), any::<bool>());
    runner
        .run(&strategy, |(payloads, framed)| {
            for payload in &payloads {
                let mut client = broker.client();
                let mut bytes = BytesMut::new();
                if framed {
                    bytes.put_i32(payload.len() as i32);
                }
                bytes.extend_from_slice(payload);
                let _ = client.send_raw(&bytes);
                let _ = client.stream.shutdown(std::net::Shutdown::Write);
                client.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut sink = Vec::new();
                let _ = client.stream.read_to_end(&mut sink);
            }
            assert_serving(&broker, &mut other.borrow_mut());
            Ok(())
        })
        .unwrap();
}
