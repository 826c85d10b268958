"""Connection limits, as Kafka's `ConnectionQuotas` applies them: `max.connections.per.ip`
for every address, `max.connections.per.ip.overrides` for named ones (a connection over
the limit is closed at once, unanswered; closing one frees its place), and the connection
creation rates of KIP-612. Real sockets from two loopback addresses (127.0.0.1 and
127.0.0.2).

- test_each_address_holds_at_most_its_limit: three connections from 127.0.0.1 are served,
  a fourth is closed; one closed, a new one is served; 127.0.0.2 (override 1) gets one;
  a confluent-kafka producer still works once a place is free; refusals are counted.
- test_zero_without_overrides_refuses_to_start: Kafka's rule for `max.connections.per.ip=0`.
- test_ip_connection_creation_rate_quotas: `kafka-configs --entity-type ips` alter and
  describe of a named and the default IP entity, refusals as Kafka words them; with
  `connection_creation_rate=2` on 127.0.0.1 most of a burst of its connections is closed
  unanswered while 127.0.0.2's are all served.
- test_max_connection_creation_rate_slows_accepting: the broker accepts a burst of
  connections at about its `max.connection.creation.rate`, serving every one in the end.

Rates are measured as Kafka's quotas are, over `quota.window.num` samples, and judged over
at least all but one of them: the rate tests use two one-second samples so that a burst is
judged over one second rather than ten.
"""

import socket
import struct
import subprocess
import time
import urllib.request

from confluent_kafka import Producer

from cluster import wait_for
from conftest import KAFKA_LIB, RIVULET_BIN, Broker, free_port, java
from test_quotas import kafka_configs


def api_versions_answered(sock: socket.socket) -> bool:
    """Sends ApiVersions v0 and says whether an answer came (False: closed unanswered)."""
    client_id = b"limits"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        sock.sendall(struct.pack(">i", len(body)) + body)
        head = sock.recv(4)
    except (ConnectionResetError, BrokenPipeError):
        return False
    return len(head) == 4


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def rejected(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("kafka_server_socketservermetrics_connections_rejected_per_ip_total"):
            return float(line.split()[-1])
    return 0.0


def test_each_address_holds_at_most_its_limit(tmp_path):
    metrics_port = free_port()
    broker = Broker(tmp_path, extra=["max.connections.per.ip=3", "max.connections.per.ip.overrides=127.0.0.2:1",
                                     f"rivulet.metrics.listener=127.0.0.1:{metrics_port}"]).start()
    held = []
    try:
        # Broker.start()'s own probe connection may still be closing: wait until three fit.
        def three_served():
            for sock in held:
                sock.close()
            held.clear()
            held.extend(connect(broker.port) for _ in range(3))
            return all(api_versions_answered(s) for s in held)

        wait_for(three_served, timeout=10, what="three connections from 127.0.0.1 to be served")
        before = rejected(metrics_port)
        fourth = connect(broker.port)
        assert not api_versions_answered(fourth), "a fourth connection from 127.0.0.1 was served"
        fourth.close()
        assert rejected(metrics_port) == before + 1

        # A closed connection frees its place (once the broker saw the close).
        held.pop().close()

        def replacement_served():
            sock = connect(broker.port)
            if api_versions_answered(sock):
                held.append(sock)
                return True
            sock.close()
            return False

        wait_for(replacement_served, timeout=10, what="a new connection once one closed")

        # The override: one connection from 127.0.0.2, whatever 127.0.0.1 holds.
        other = connect(broker.port, source="127.0.0.2")
        assert api_versions_answered(other)
        second = connect(broker.port, source="127.0.0.2")
        assert not api_versions_answered(second), "a second connection from 127.0.0.2 was served"
        second.close()
        other.close()

        # Real clients see the limit as an unreachable broker and work once a place is free.
        for sock in held:
            sock.close()
        held.clear()
        producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 15000})
        delivered = []
        producer.produce("limits", b"v", on_delivery=lambda err, msg: delivered.append(err))
        producer.flush(20)
        assert delivered == [None], delivered
    finally:
        for sock in held:
            sock.close()
        broker.kill()


def test_zero_without_overrides_refuses_to_start(tmp_path):
    out = subprocess.run([str(RIVULET_BIN), "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
                          "--override", f"log.dirs={tmp_path / 'data'}", "--override", "max.connections.per.ip=0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "max.connections.per.ip" in out.stderr and "only if max.connections.per.ip.overrides" in out.stderr, \
        out.stderr
    out = subprocess.run([str(RIVULET_BIN), "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
                          "--override", f"log.dirs={tmp_path / 'data2'}",
                          "--override", "max.connections.per.ip.overrides=127.0.0.1:nine"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "max.connections.per.ip.overrides" in out.stderr, out.stderr


def throttled_connections(metrics_port: int, quota: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    name = "kafka_server_socketservermetrics_connection_accept_throttled_total{"
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name) and f'quota="{quota}"' in line)


def test_ip_connection_creation_rate_quotas(tmp_path):
    metrics_port = free_port()
    broker = Broker(tmp_path, extra=["quota.window.num=2",
                                     f"rivulet.metrics.listener=127.0.0.1:{metrics_port}"]).start()
    held = []
    try:
        out = kafka_configs(broker, "--alter", "--entity-type", "ips", "--entity-name", "127.0.0.3",
                            "--add-config", "connection_creation_rate=5")
        assert "Completed updating config for ip 127.0.0.3." in out, out
        out = kafka_configs(broker, "--alter", "--entity-type", "ips", "--entity-default",
                            "--add-config", "connection_creation_rate=1000")
        assert "Completed updating default config for ips in the cluster." in out, out
        described = kafka_configs(broker, "--describe", "--entity-type", "ips")
        assert "Quota configs for ip '127.0.0.3' are connection_creation_rate=5.0" in described, described
        assert "Quota configs for the default ip are connection_creation_rate=1000.0" in described, described
        described = kafka_configs(broker, "--describe", "--entity-type", "ips", "--entity-name", "127.0.0.3")
        assert "connection_creation_rate=5.0" in described and "default" not in described, described
        described = kafka_configs(broker, "--describe", "--entity-type", "ips", "--entity-default")
        assert "the default ip are connection_creation_rate=1000.0" in described and "127.0.0.3" not in described
        # IP entities have no user or client-id entries, and those none of theirs.
        assert "127.0.0.3" not in kafka_configs(broker, "--describe", "--entity-type", "clients")

        for args, message in [
            (["--entity-name", "127.0.0.3", "--add-config", "connection_creation_rate=1.5"],
             "connection_creation_rate cannot be a fractional value."),
            (["--entity-name", "127.0.0.3", "--add-config", "connection_creation_rate=0"],
             "Quota connection_creation_rate must be greater than 0"),
        ]:
            refused = java("kafka.admin.ConfigCommand", "--bootstrap-server", broker.bootstrap, "--alter",
                           "--entity-type", "ips", *args, lib=KAFKA_LIB)
            assert refused.returncode != 0 and message in refused.stdout + refused.stderr, refused.stderr[-2000:]

        kafka_configs(broker, "--alter", "--entity-type", "ips", "--entity-default",
                      "--delete-config", "connection_creation_rate")
        described = kafka_configs(broker, "--describe", "--entity-type", "ips")
        assert "default" not in described and "127.0.0.3" in described, described

        # Two new connections a second from 127.0.0.1; none from 127.0.0.2.
        kafka_configs(broker, "--alter", "--entity-type", "ips", "--entity-name", "127.0.0.1",
                      "--add-config", "connection_creation_rate=2")
        local, other = [], []
        for i in range(20):
            local.append(connect(broker.port))
            if i % 4 == 0:
                other.append(connect(broker.port, source="127.0.0.2"))
        held.extend(local + other)
        served_local = sum(api_versions_answered(sock) for sock in local)
        served_other = sum(api_versions_answered(sock) for sock in other)
        print(f"127.0.0.1: {served_local} of {len(local)} served; 127.0.0.2: {served_other} of {len(other)}")
        # About two a second get through, however slowly the burst is made.
        assert served_local <= 10, served_local
        assert served_other == len(other)
        assert throttled_connections(metrics_port, "ip") >= len(local) - served_local
    finally:
        for sock in held:
            sock.close()
        broker.kill()


def test_max_connection_creation_rate_slows_accepting(tmp_path):
    metrics_port = free_port()
    broker = Broker(tmp_path, extra=["max.connection.creation.rate=5", "quota.window.num=2",
                                     f"rivulet.metrics.listener=127.0.0.1:{metrics_port}"]).start()
    held = []
    try:
        started = time.time()
        held.extend(connect(broker.port) for _ in range(20))
        answered_at = []
        for sock in held:
            assert api_versions_answered(sock), "a delayed connection was not served"
            answered_at.append(time.time() - started)
        within_a_second = sum(t <= 1.0 for t in answered_at)
        print(f"served within 1 s: {within_a_second} of {len(held)}; all within {answered_at[-1]:.1f} s")
        # Unlimited, all twenty are served at once; at five a second, about eight.
        assert within_a_second <= 14, answered_at
        assert throttled_connections(metrics_port, "broker") > 0
    finally:
        for sock in held:
            sock.close()
        broker.kill()
