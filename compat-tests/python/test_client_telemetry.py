"""Client telemetry (KIP-714) with the stock Java client and tools: a subscription made with
`kafka-client-metrics`, a Java producer pushing its metrics, and those metrics on the
broker's Prometheus endpoint labelled by the producer's client instance id."""

import base64
import re
import subprocess
import time
import urllib.request
import uuid

from conftest import JAVA_LIB, Broker, compile_java, create_topic, free_port, java


def client_metrics(broker: Broker, *args: str) -> subprocess.CompletedProcess:
    return java("org.apache.kafka.tools.ClientMetricsCommand", "--bootstrap-server", broker.bootstrap, *args)


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def test_pushed_metrics_appear_on_metrics_by_client_instance(tmp_path):
    metrics_port = free_port()
    broker = Broker(tmp_path, extra=[f"rivulet.metrics.listener=127.0.0.1:{metrics_port}"]).start()
    try:
        create_topic(broker, "telemetry-events")
        out = client_metrics(broker, "--alter", "--name", "producers", "--metrics", "org.apache.kafka.producer.",
                             "--interval", "1000", "--match", "client_software_name=apache-kafka-java")
        assert out.returncode == 0, out.stdout + out.stderr
        # Kafka's checks: the interval must lie within 100 ms and an hour, patterns must name a
        # client attribute.
        out = client_metrics(broker, "--alter", "--name", "bad", "--interval", "50")
        assert out.returncode != 0 and "interval must be between 100 and 3600000" in out.stdout + out.stderr
        out = client_metrics(broker, "--alter", "--name", "bad", "--match", "user=alice")
        assert out.returncode != 0 and "Illegal client matching pattern" in out.stdout + out.stderr

        listed = client_metrics(broker, "--list")
        assert listed.returncode == 0 and listed.stdout.split() == ["producers"], listed.stdout + listed.stderr
        described = client_metrics(broker, "--describe", "--name", "producers")
        assert described.returncode == 0, described.stderr
        for expected in ("metrics=org.apache.kafka.producer.", "interval.ms=1000",
                         "match=client_software_name=apache-kafka-java"):
            assert expected in described.stdout, described.stdout

        classes = compile_java(tmp_path, "TelemetryProducer.java")
        producer = subprocess.Popen(
            ["java", "-Xmx256m", "-cp", f"{classes}:{JAVA_LIB}/*", "TelemetryProducer", broker.bootstrap,
             "telemetry-events", "telemetry-app", "8"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = producer.stdout.readline()
            match = re.match(r"INSTANCE (\S+)", first)
            assert match, first + producer.stderr.read()
            # The id the broker assigned; a Java Uuid prints as URL-safe base64.
            instance = str(uuid.UUID(bytes=base64.urlsafe_b64decode(match.group(1) + "==")))
            # The producer's first push comes within about a push interval.
            deadline = time.time() + 20
            lines: list[str] = []
            while time.time() < deadline and not lines:
                lines = [l for l in scrape(metrics_port).splitlines()
                         if "client_id=\"telemetry-app\"" in l and l.startswith("org_apache_kafka_producer_")]
                time.sleep(0.5)
            assert lines, scrape(metrics_port)[-3000:]
            instances = {re.search(r'client_instance_id="([^"]+)"', l).group(1) for l in lines}
            assert instances == {instance}, (instances, instance)
            assert all('client_software_name="apache-kafka-java"' in l for l in lines), lines[:3]
            # Only the subscribed prefix is pushed.
            assert not [l for l in scrape(metrics_port).splitlines() if l.startswith("org_apache_kafka_consumer_")]
            names = {l.split("{")[0] for l in lines}
            assert "org_apache_kafka_producer_record_send_total" in names or len(names) > 5, names
            assert producer.wait(timeout=60) == 0, producer.stderr.read()
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()

        # A subscription deleted: `--list` is empty again.
        out = client_metrics(broker, "--delete", "--name", "producers")
        assert out.returncode == 0, out.stdout + out.stderr
        assert client_metrics(broker, "--list").stdout.split() == []
    finally:
        broker.kill()


def test_telemetry_apis_are_offered_only_with_a_metrics_endpoint(tmp_path):
    """Without a Prometheus endpoint there is nowhere to show pushed metrics: the broker does
    not offer the telemetry APIs, so clients do not push (Kafka offers them only with a
    receiver plugin)."""
    def versions(broker: Broker) -> str:
        out = java("org.apache.kafka.tools.BrokerApiVersionsCommand", "--bootstrap-server", broker.bootstrap)
        assert out.returncode == 0, out.stderr
        return out.stdout

    for name in ("plain", "observed"):
        (tmp_path / name).mkdir()
    plain = Broker(tmp_path / "plain").start()
    try:
        text = versions(plain)
        assert "GetTelemetrySubscriptions(71): UNSUPPORTED" in text, text
        assert "PushTelemetry(72): UNSUPPORTED" in text, text
    finally:
        plain.kill()
    observed = Broker(tmp_path / "observed", extra=[f"rivulet.metrics.listener=127.0.0.1:{free_port()}"]).start()
    try:
        text = versions(observed)
        assert "GetTelemetrySubscriptions(71): 0 [usable: 0]" in text, text
        assert "PushTelemetry(72): 0 [usable: 0]" in text, text
    finally:
        observed.kill()
