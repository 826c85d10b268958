"""The Apache Kafka 4.3.1 Java client and console tools (kafka-clients, kafka-tools)."""

import subprocess
import time

import pytest

from conftest import KAFKA_LIB, compile_java, java, kafka_topics, run_java_program


def test_console_producer_and_consumer_round_trip(broker):
    assert kafka_topics(broker, "--create", "--topic", "console", "--partitions", "1").returncode == 0
    lines = [f"line {i} with some text" for i in range(200)]
    out = java(
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", broker.bootstrap, "--topic", "console",
        input="\n".join(lines) + "\n",
    )
    assert out.returncode == 0, out.stderr
    out = java(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server", broker.bootstrap, "--topic", "console",
        "--partition", "0", "--from-beginning", "--max-messages", str(len(lines)), "--timeout-ms", "60000",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == lines


def test_kafka_topics_create_list_describe_delete(broker):
    out = kafka_topics(broker, "--create", "--topic", "orders", "--partitions", "4", "--replication-factor", "1",
                       "--config", "retention.ms=3600000")
    assert out.returncode == 0, out.stderr
    assert "Created topic orders" in out.stdout

    out = kafka_topics(broker, "--create", "--topic", "orders", "--partitions", "1")
    assert out.returncode != 0 and "already exists" in (out.stdout + out.stderr)

    out = kafka_topics(broker, "--list")
    assert out.returncode == 0, out.stderr
    assert "orders" in out.stdout.split()

    out = kafka_topics(broker, "--describe", "--topic", "orders")
    assert out.returncode == 0, out.stderr
    assert "PartitionCount: 4" in out.stdout
    assert "ReplicationFactor: 1" in out.stdout
    assert "retention.ms=3600000" in out.stdout
    partition_lines = [l for l in out.stdout.splitlines() if "\tPartition: " in l or l.strip().startswith("Topic: orders\tPartition")]
    assert len(partition_lines) == 4, out.stdout
    assert all("Leader: 1" in l and "Isr: 1" in l for l in partition_lines)

    out = kafka_topics(broker, "--delete", "--topic", "orders")
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 30
    while time.time() < deadline:
        out = kafka_topics(broker, "--list")
        if "orders" not in out.stdout.split():
            break
        time.sleep(0.5)
    assert "orders" not in out.stdout.split()


def test_java_producer_with_default_settings(broker, tmp_path):
    assert kafka_topics(broker, "--create", "--topic", "java-default", "--partitions", "1").returncode == 0
    classes = compile_java(tmp_path, "DefaultClients.java")
    out = run_java_program(classes, "DefaultClients", broker.bootstrap, "java-default", "1000")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK 1000" in out.stdout


def test_broker_api_versions_lists_every_advertised_api(broker):
    out = java("org.apache.kafka.tools.BrokerApiVersionsCommand", "--bootstrap-server", broker.bootstrap)
    assert out.returncode == 0, out.stderr
    assert f"{broker.bootstrap} (id: 1" in out.stdout
    for line in ["Produce(0): 0 to 13 [usable: 13]", "Fetch(1): 4 to 18 [usable: 18]", "JoinGroup(11): 0 to 9 [usable: 9]",
                 "EndTxn(26): 0 to 5 [usable: 5]", "WriteTxnMarkers(27): 1 [usable: 1]",
                 "ElectLeaders(43): 0 to 2 [usable: 2]", "DescribeAcls(29): 1 to 3 [usable: 3]",
                 "AlterClientQuotas(49): 0 to 1 [usable: 1]", "ConsumerGroupHeartbeat(68): 0 to 1 [usable: 1]",
                 "ConsumerGroupDescribe(69): 0 to 1 [usable: 1]"]:
        assert line in out.stdout, out.stdout
    # APIs Rivulet does not implement are reported as such, not advertised.
    assert "ShareGroupHeartbeat(76): UNSUPPORTED" in out.stdout


def test_verifiable_producer_and_consumer_agree(broker):
    import json

    assert kafka_topics(broker, "--create", "--topic", "verifiable", "--partitions", "3").returncode == 0
    out = java("org.apache.kafka.tools.VerifiableProducer", "--bootstrap-server", broker.bootstrap,
               "--topic", "verifiable", "--max-messages", "2000", "--acks", "-1")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    acked = {(e["partition"], e["offset"]) for e in events if e["name"] == "producer_send_success"}
    assert len(acked) == 2000
    assert not [e for e in events if e["name"] == "producer_send_error"]

    out = java("org.apache.kafka.tools.VerifiableConsumer", "--bootstrap-server", broker.bootstrap,
               "--topic", "verifiable", "--group-id", "verifiable-group", "--max-messages", "2000", "--verbose")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    consumed = {(e["partition"], e["offset"]) for e in events if e["name"] == "record_data"}
    assert consumed == acked
    commits = [e for e in events if e["name"] == "offsets_committed"]
    assert commits and all(c["success"] for c in commits)


def test_client_compatibility_test_passes(broker):
    out = java(
        "org.apache.kafka.tools.ClientCompatibilityTest", "--bootstrap-server", broker.bootstrap, "--topic", "compat",
        "--offsets-for-times-supported", "true", "--cluster-id-supported", "true",
        # Since KIP-74 (Kafka 0.10.1) an oversized record is returned, not refused.
        "--expect-record-too-large-exception", "false", "--num-cluster-nodes", "1",
        "--create-topics-supported", "true",
        # Served without an authorizer as Kafka does: SECURITY_DISABLED, which the test accepts.
        "--describe-acls-supported", "true",
        "--describe-configs-supported", "true", "--idempotent-producer-supported", "true",
    )
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]


def test_kafka_configs_describe(broker):
    out = kafka_topics(broker, "--create", "--topic", "configured", "--partitions", "1",
                       "--config", "retention.ms=1234", "--config", "cleanup.policy=compact")
    assert out.returncode == 0, out.stderr
    out = java("kafka.admin.ConfigCommand", "--bootstrap-server", broker.bootstrap, "--describe",
               "--entity-type", "topics", "--entity-name", "configured", lib=KAFKA_LIB)
    assert out.returncode == 0, out.stderr
    assert "Dynamic configs for topic configured are:" in out.stdout
    assert "retention.ms=1234" in out.stdout and "cleanup.policy=compact" in out.stdout
    assert "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1234, DEFAULT_CONFIG:log.retention.ms=604800000}" in out.stdout
    out = java("kafka.admin.ConfigCommand", "--bootstrap-server", broker.bootstrap, "--describe",
               "--entity-type", "brokers", "--entity-name", "1", "--all", lib=KAFKA_LIB)
    assert out.returncode == 0, out.stderr
    assert "All configs for broker 1 are:" in out.stdout
    assert f"advertised.listeners=PLAINTEXT://{broker.bootstrap}" in out.stdout
    assert "message.max.bytes=1048588" in out.stdout


def test_kafka_topics_alter_adds_partitions(broker):
    assert kafka_topics(broker, "--create", "--topic", "growing", "--partitions", "2").returncode == 0
    out = kafka_topics(broker, "--alter", "--topic", "growing", "--partitions", "5")
    assert out.returncode == 0, out.stderr
    out = kafka_topics(broker, "--describe", "--topic", "growing")
    assert "PartitionCount: 5" in out.stdout, out.stdout
    # Shrinking is refused with INVALID_PARTITIONS, as Kafka does.
    out = kafka_topics(broker, "--alter", "--topic", "growing", "--partitions", "3")
    assert out.returncode != 0 and "which is higher than the requested 3" in out.stdout + out.stderr
    # A new partition takes records and serves them back.
    produced = subprocess.run(["kcat", "-b", broker.bootstrap, "-t", "growing", "-p", "4", "-P"], input=b"in-new-partition\n",
                              capture_output=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(["kcat", "-b", broker.bootstrap, "-t", "growing", "-p", "4", "-C", "-e", "-o", "beginning", "-q"],
                              capture_output=True, timeout=60)
    assert consumed.stdout.decode().splitlines() == ["in-new-partition"]


def test_kafka_topics_describe_pages_through_describe_topic_partitions(tmp_path):
    """`kafka-topics --describe` (Kafka 4 AdminClient) uses DescribeTopicPartitions and
    follows its cursor: with 7 partitions a page, three topics of 30, 12 and 1 partitions
    take 7 requests (43 partitions, a page boundary inside every big topic), and every
    partition is listed once."""
    import urllib.request

    from conftest import Broker, free_port

    metrics_port = free_port()
    broker = Broker(tmp_path, extra=[f"rivulet.metrics.listener=127.0.0.1:{metrics_port}"]).start()
    try:
        sizes = {"paged-a": 30, "paged-b": 12, "paged-c": 1}
        for topic, partitions in sizes.items():
            assert kafka_topics(broker, "--create", "--topic", topic, "--partitions", str(partitions)).returncode == 0

        def requests() -> float:
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
            return sum(float(l.split()[-1]) for l in text.splitlines()
                       if l.startswith("kafka_network_requestmetrics_requests_total")
                       and 'request="DescribeTopicPartitions"' in l)

        before = requests()
        out = kafka_topics(broker, "--describe", "--topic", "paged-.*", "--partition-size-limit-per-response", "7")
        assert out.returncode == 0, out.stderr
        listed = [(l.split("Topic: ")[1].split("\t")[0], int(l.split("Partition: ")[1].split("\t")[0]))
                  for l in out.stdout.splitlines() if "\tPartition: " in l]
        # The tool prints topics in its own order; each topic's partitions in order, once.
        assert sorted(listed) == [(t, p) for t, n in sizes.items() for p in range(n)], out.stdout
        assert all(listed[i] < listed[i + 1] for i in range(len(listed) - 1) if listed[i][0] == listed[i + 1][0])
        assert requests() - before == 7, (requests() - before, out.stdout)
    finally:
        broker.kill()
