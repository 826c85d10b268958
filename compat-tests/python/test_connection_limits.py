"""Connection limits per client address, as Kafka's `ConnectionQuotas` applies them:
`max.connections.per.ip` for every address, `max.connections.per.ip.overrides` for named
ones. A connection over the limit is closed at once, unanswered; closing one frees its
place. Real sockets from two loopback addresses (127.0.0.1 and 127.0.0.2).

- test_each_address_holds_at_most_its_limit: three connections from 127.0.0.1 are served,
  a fourth is closed; one closed, a new one is served; 127.0.0.2 (override 1) gets one;
  a confluent-kafka producer still works once a place is free; refusals are counted.
- test_zero_without_overrides_refuses_to_start: Kafka's rule for `max.connections.per.ip=0`.
"""

import socket
import struct
import subprocess
import urllib.request

from confluent_kafka import Producer

from cluster import wait_for
from conftest import RIVULET_BIN, Broker, free_port


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
