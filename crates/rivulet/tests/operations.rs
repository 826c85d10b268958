//! Operating the broker process: configuration errors at start, unknown-key warnings, and
//! the Prometheus `/metrics` endpoint.

use std::io::{Read, Write};
use std::net::TcpStream;

use kafka_protocol::messages::MetadataRequest;
use rivulet_test_support::{broker_command, free_port, BrokerProcess};

/// The binary under test, built by `cargo test`.
const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

fn run_and_fail(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    // The test's own settings come first so that `args` (later wins) can override them.
    let mut child = broker_command(RIVULET, 0, dir.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run rivulet");
    // A broker that wrongly starts would run forever: give it 20 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait for rivulet");
    assert!(!output.status.success(), "expected failure for {args:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn invalid_values_stop_the_broker_with_the_key_named() {
    let stderr = run_and_fail(&["--override", "num.partitions=zero"]);
    assert!(stderr.contains("num.partitions"), "{stderr}");
    let stderr = run_and_fail(&["--override", "message.max.bytes=-1"]);
    assert!(stderr.contains("message.max.bytes"), "{stderr}");
    let stderr = run_and_fail(&["--override", "listeners=localhost"]);
    assert!(stderr.contains("listeners"), "{stderr}");
    let stderr = run_and_fail(&["/no/such/server.properties"]);
    assert!(stderr.contains("/no/such/server.properties"), "{stderr}");
}

/// Fail closed: a server.properties asking for TLS, SASL or an authorizer that is not
/// enforced stops the broker with the key named, rather than serving plaintext on a
/// listener called SSL.
#[test]
fn unenforced_security_settings_stop_the_broker_with_the_key_named() {
    let port = free_port();
    let stderr = run_and_fail(&["--override", &format!("listeners=SSL://127.0.0.1:{port}")]);
    // An SSL listener needs a PEM or PKCS12 key store; without one (Kafka's default type is
    // JKS) nothing starts.
    assert!(stderr.contains("ssl.keystore.type") && stderr.contains("JKS key stores are not read"), "{stderr}");
    assert!(!stderr.contains("listening"), "nothing may be served: {stderr}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} must not be open");
    let stderr = run_and_fail(&["--override", "sasl.enabled.mechanisms=PLAIN"]);
    assert!(stderr.contains("sasl.enabled.mechanisms=PLAIN"), "{stderr}");
    let stderr = run_and_fail(&["--override", "authorizer.class.name=com.example.CustomAuthorizer"]);
    assert!(stderr.contains("authorizer.class.name="), "{stderr}");
    // Without an authorizer, super.users would grant nothing and deny nothing.
    let stderr = run_and_fail(&["--override", "super.users=User:admin"]);
    assert!(stderr.contains("super.users=") && stderr.contains("no authorizer.class.name"), "{stderr}");
}

#[test]
fn properties_file_is_read_and_unknown_keys_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.properties");
    std::fs::write(&file, "# a comment\nnum.partitions=3\nnum.io.threads=8\nsurely.not.a.kafka.key=1\n").unwrap();
    let mut broker = BrokerProcess::start_with_properties(RIVULET, &file, &[]);
    let mut client = broker.client();
    // num.partitions=3 from the file applies to auto-created topics.
    let request = MetadataRequest::default()
        .with_topics(Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
            Some(kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_static_str("auto"))),
        )]))
        .with_allow_auto_topic_creation(true);
    let response = client.send(&request, 12);
    assert_eq!(response.topics[0].partitions.len(), 3);
    broker.kill();
    let log = broker.log();
    assert!(log.contains("surely.not.a.kafka.key"), "{log}");
    assert!(!log.contains("num.io.threads"), "known Kafka keys are accepted quietly: {log}");
}

#[test]
fn metrics_endpoint_counts_produced_records() {
    let metrics_port = free_port();
    let broker = BrokerProcess::start(RIVULET, &[&format!("rivulet.metrics.listener=127.0.0.1:{metrics_port}")]);
    let mut client = broker.client();
    let request = MetadataRequest::default().with_topics(None);
    client.send(&request, 12);
    let mut stream = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("kafka_network_requestmetrics_requests_total{request=\"Metadata\"} 1"), "{body}");
    assert!(body.contains("kafka_server_socketservermetrics_connection_count 1"), "{body}");
    // Every local partition's size and offsets, read at the scrape.
    for gauge in ["kafka_log_log_size", "kafka_log_log_logstartoffset", "kafka_log_log_logendoffset"] {
        assert!(body.contains(&format!("{gauge}{{partition=\"0\",topic=\"__consumer_offsets\"}} 0")), "{body}");
    }
}

#[test]
fn internal_topics_cannot_be_deleted() {
    use kafka_protocol::messages::{DeleteTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let broker = BrokerProcess::start(RIVULET, &[]);
    let mut client = broker.client();
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("__consumer_offsets"))])
        .with_timeout_ms(10_000);
    let response = client.send(&request, 5);
    assert_eq!(response.responses[0].error_code, 73, "TOPIC_DELETION_DISABLED");
    let metadata = client.send(&MetadataRequest::default().with_topics(None), 12);
    let offsets = metadata.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("__consumer_offsets"));
    assert!(offsets.is_some_and(|t| t.is_internal && t.partitions.len() == 50));
}

/// AlterPartitionReassignments / ListPartitionReassignments on a single node answer as
/// Kafka's controller does: a target naming an unregistered broker, a broker twice or no
/// broker is INVALID_REPLICA_ASSIGNMENT, a cancellation with nothing under way
/// NO_REASSIGNMENT_IN_PROGRESS, an unknown partition UNKNOWN_TOPIC_OR_PARTITION, the
/// broker itself changes nothing; nothing is ever listed as moving.
#[test]
fn partition_reassignments_on_a_single_node_answer_as_kafka() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest};
    use rivulet_test_support::requests;

    let broker = BrokerProcess::start(RIVULET, &[]);
    let mut client = broker.client();
    let created = client.send(&requests::create_topic("placed", 2, &[]), 7);
    assert_eq!(created.topics[0].error_code, 0);
    let target = |partition: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(partition)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        ReassignableTopic::default().with_name(requests::topic_name("placed")).with_partitions(vec![
            target(0, Some(vec![1])),
            target(1, Some(vec![1, 2])),
            target(0, Some(vec![1, 1])),
            target(0, Some(vec![])),
            target(1, None),
            target(7, Some(vec![1])),
        ]),
        ReassignableTopic::default()
            .with_name(requests::topic_name("missing"))
            .with_partitions(vec![target(0, Some(vec![1]))]),
    ]);
    let response = client.send(&request, 0);
    assert_eq!(response.error_code, 0);
    let codes: Vec<Vec<i16>> =
        response.responses.iter().map(|t| t.partitions.iter().map(|p| p.error_code).collect()).collect();
    // NONE, INVALID_REPLICA_ASSIGNMENT x3, NO_REASSIGNMENT_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(codes, vec![vec![0, 39, 39, 39, 85, 3], vec![3]]);
    let message = response.responses[0].partitions[1].error_message.as_ref().map(|m| m.to_string());
    assert_eq!(
        message.as_deref(),
        Some("The manual partition assignment includes broker 2, but no such broker is registered.")
    );
    let listed = client.send(&ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000), 0);
    assert_eq!((listed.error_code, listed.topics.len()), (0, 0));
}
