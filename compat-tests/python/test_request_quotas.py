"""Request quotas (KIP-124, `request_percentage`) set with Kafka 4.3.1's `kafka-configs`,
seen by raw Metadata requests and by a confluent-kafka producer.

- test_request_percentage_throttles_only_its_client_id: a client id allowed 0.01 % of a
  thread gets responses with throttle_time_ms > 0 (raw Metadata v4, and librdkafka's
  throttle_cb for its produce requests) while a client id without a quota never does;
  the throttled responses are counted per quota type.

No timing is asserted: Kafka caps a request-quota throttle at one sample
(`quota.window.size.seconds`, 1 s), so a throttled client only waits about that long.
"""

import socket
import struct
import time
import urllib.request
import uuid

from confluent_kafka import Producer

from conftest import Broker, create_topic, free_port
from test_quotas import kafka_configs


def metadata_v4(client_id: str) -> bytes:
    """A Metadata v4 request for no topics: about the cheapest request there is."""
    name = client_id.encode()
    body = struct.pack(">hhih", 3, 4, 0, len(name)) + name + struct.pack(">ib", 0, 0)
    return struct.pack(">i", len(body)) + body


def read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def hammer(port: int, client_id: str, seconds: float, until_throttled: bool) -> list[int]:
    """Sends Metadata requests one after another for up to `seconds`; returns each
    response's throttle_time_ms (stopping at the first positive one if asked)."""
    throttles = []
    request = metadata_v4(client_id)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        deadline = time.time() + seconds
        while time.time() < deadline:
            sock.sendall(request)
            size, = struct.unpack(">i", read_exact(sock, 4))
            body = read_exact(sock, size)
            _correlation, throttle = struct.unpack(">ii", body[:8])
            throttles.append(throttle)
            if until_throttled and throttle > 0:
                break
    return throttles


def throttled_responses(metrics_port: int, quota_type: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    prefix = f'kafka_server_quota_throttled_responses_total{{quota_type="{quota_type}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_request_percentage_throttles_only_its_client_id(tmp_path):
    metrics_port = free_port()
    broker = Broker(tmp_path, extra=[f"rivulet.metrics.listener=127.0.0.1:{metrics_port}"]).start()
    try:
        topic = f"rq-{uuid.uuid4().hex[:6]}"
        create_topic(broker, topic)
        out = kafka_configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "busy",
                            "--add-config", "request_percentage=0.01")
        assert "Completed updating config for client busy." in out, out
        described = kafka_configs(broker, "--describe", "--entity-type", "clients", "--entity-name", "busy")
        assert "request_percentage=0.01" in described, described

        # 0.01 % of a thread is 1 ms of handling in the ten-second window: a few hundred
        # Metadata requests at most before the broker says to wait.
        busy = hammer(broker.port, "busy", 20, until_throttled=True)
        assert busy and busy[-1] > 0, f"no throttle in {len(busy)} Metadata responses"
        assert busy[-1] <= 1000, busy[-1]  # capped at quota.window.size.seconds

        # The same load from a client id without a quota is never throttled.
        free = hammer(broker.port, "free", 2, until_throttled=False)
        assert len(free) > 0 and not any(free), [t for t in free if t][:5]

        # A real client sees it too: librdkafka reports throttled produce responses.
        def produce(client_id: str, seconds: float) -> list[int]:
            throttles = []
            producer = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 0,
                                 "acks": 1, "throttle_cb": lambda event: throttles.append(event.throttle_time)})
            deadline = time.time() + seconds
            while time.time() < deadline and not any(throttles):
                producer.produce(topic, b"x")
                producer.flush(10)
            producer.flush(30)
            producer.poll(0)
            return throttles

        assert any(produce("busy", 20)), "librdkafka saw no throttle for client id busy"
        assert not any(produce("free", 2)), "client id free was throttled"
        assert throttled_responses(metrics_port, "Request") > 0
        assert throttled_responses(metrics_port, "Produce") == 0
    finally:
        broker.kill()
