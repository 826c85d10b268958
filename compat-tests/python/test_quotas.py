"""Client quotas (KIP-13, KIP-55, KIP-219, KIP-546) with Kafka 4.3.1's `kafka-configs` and
confluent-kafka clients.

- test_produce_quota_holds_a_client_id_to_its_rate: 1 MiB/s on one client id holds it
  within 10 % while an unthrottled client keeps its own rate; throttle_time_ms reported.
- test_fetch_quota_holds_a_consumer_to_its_rate: never above its quota, never starved
- test_quotas_are_described_validated_and_removed (incl. user quotas beside SCRAM)

Kafka measures a rate over `quota.window.num` (11) samples of one second and judges the
first burst over at least ten of them, so a new client may send about ten seconds' worth
at once: the rates are measured after that warm-up.
"""

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from conftest import KAFKA_LIB, Broker, create_topic, java

MIB = 1024 * 1024
RECORD = b"x" * 1024


def kafka_configs(broker, *args):
    out = java("kafka.admin.ConfigCommand", "--bootstrap-server", broker.bootstrap, *args, lib=KAFKA_LIB)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def paced_producer(broker, topic, client_id, offered_bytes_per_s, seconds, delivered, throttles):
    """Offers `offered_bytes_per_s` of 1 KiB records for `seconds`; appends (time, bytes)
    of each delivery to `delivered` and each throttle time to `throttles`."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 5,
                         "queue.buffering.max.kbytes": 8192, "message.timeout.ms": 120000,
                         "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    start = time.time()
    sent = 0
    while time.time() - start < seconds:
        due = (time.time() - start) * offered_bytes_per_s
        while sent < due:
            try:
                producer.produce(topic, RECORD,
                                 on_delivery=lambda err, msg: err is None and delivered.append((time.time(), len(msg))))
                sent += len(RECORD)
            except BufferError:
                break
        producer.poll(0.01)
    producer.flush(60)


def rate(deliveries, start, end):
    return sum(n for t, n in deliveries if start <= t < end) / (end - start)


def test_produce_quota_holds_a_client_id_to_its_rate(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        out = kafka_configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "slow",
                            "--add-config", f"producer_byte_rate={MIB}")
        assert "Completed updating config for client slow." in out, out
        topic = f"quota-{uuid.uuid4().hex[:6]}"
        create_topic(broker, topic)
        slow, fast, slow_throttles, fast_throttles = [], [], [], []
        started = time.time()
        threads = [
            threading.Thread(target=paced_producer, args=(broker, topic, "slow", 4 * MIB, 32, slow, slow_throttles)),
            threading.Thread(target=paced_producer, args=(broker, topic, "fast", 4 * MIB, 32, fast, fast_throttles)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        # 20 s after the warm-up: the quota is an average, so judge it over many samples.
        window = (started + 12, started + 32)
        slow_rate, fast_rate = rate(slow, *window), rate(fast, *window)
        print(f"slow {slow_rate / MIB:.3f} MiB/s, fast {fast_rate / MIB:.3f} MiB/s, "
              f"{len(slow_throttles)} throttles, max {max(slow_throttles, default=0)} ms")
        # Kafka counts whole requests; the record payload is a little less than that.
        assert 0.9 * MIB <= slow_rate <= 1.1 * MIB, slow_rate / MIB
        assert fast_rate >= 0.9 * 4 * MIB, fast_rate / MIB
        assert slow_throttles and max(slow_throttles) > 0
        assert not any(fast_throttles), fast_throttles
    finally:
        broker.kill()


# 30 s of consuming: run by `make compat`; the produce test keeps quotas in `make test`.
@pytest.mark.slow
def test_fetch_quota_holds_a_consumer_to_its_rate(tmp_path):
    # A throttled fetch is answered empty, so a consumer reads in bursts of what the window
    # frees: with Kafka's 11 samples each burst is up to ten seconds' worth, too coarse to
    # measure in a short test. Three samples keep the same rule with one-second bursts.
    broker = Broker(tmp_path, extra=["quota.window.num=3"]).start()
    try:
        topic = f"fetch-quota-{uuid.uuid4().hex[:6]}"
        create_topic(broker, topic)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
        for _ in range(30 * 1024):
            while True:
                try:
                    producer.produce(topic, RECORD)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(60) == 0
        kafka_configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "reader",
                      "--add-config", f"consumer_byte_rate={MIB}")
        throttles = []
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": "reader", "group.id": f"g-{topic}",
                             "auto.offset.reset": "earliest", "max.partition.fetch.bytes": 256 * 1024,
                             "throttle_cb": lambda event: throttles.append(event.throttle_time)})
        consumer.subscribe([topic])
        received = []
        started = time.time()
        try:
            while time.time() - started < 28:
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    received.append((time.time(), len(msg.value())))
        finally:
            consumer.close()
        measured = rate(received, started + 12, started + 28)
        print(f"consumer {measured / MIB:.3f} MiB/s, {len(throttles)} throttles")
        # A quota is a ceiling. Below it the consumer loses time to fetches answered empty
        # (as a Kafka consumer does); it must still make steady progress.
        assert 0.5 * MIB <= measured <= 1.1 * MIB, measured / MIB
        assert throttles and max(throttles) > 0
    finally:
        broker.kill()


def test_quotas_are_described_validated_and_removed(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        kafka_configs(broker, "--alter", "--entity-type", "users", "--entity-name", "alice",
                      "--add-config", "producer_byte_rate=2048,consumer_byte_rate=4096")
        kafka_configs(broker, "--alter", "--entity-type", "clients", "--entity-default",
                      "--add-config", "request_percentage=50")
        described = kafka_configs(broker, "--describe", "--entity-type", "users")
        assert "Quota configs for user-principal 'alice' are" in described, described
        assert "consumer_byte_rate=4096.0" in described and "producer_byte_rate=2048.0" in described, described
        described = kafka_configs(broker, "--describe", "--entity-type", "clients", "--entity-default")
        assert "request_percentage=50.0" in described, described

        refused = java("kafka.admin.ConfigCommand", "--bootstrap-server", broker.bootstrap, "--alter",
                       "--entity-type", "clients", "--entity-name", "c", "--add-config", "producer_byte_rate=-5",
                       lib=KAFKA_LIB)
        assert refused.returncode != 0
        assert "Quota producer_byte_rate must be greater than 0" in refused.stdout + refused.stderr, refused.stderr

        kafka_configs(broker, "--alter", "--entity-type", "users", "--entity-name", "alice",
                      "--delete-config", "producer_byte_rate")
        described = kafka_configs(broker, "--describe", "--entity-type", "users", "--entity-name", "alice")
        assert "consumer_byte_rate=4096.0" in described and "producer_byte_rate" not in described, described

        # Quotas live in the metadata store: a restart keeps them.
        broker.kill()
        broker.start()
        described = kafka_configs(broker, "--describe", "--entity-type", "users", "--entity-name", "alice")
        assert "consumer_byte_rate=4096.0" in described, described
    finally:
        broker.kill()
