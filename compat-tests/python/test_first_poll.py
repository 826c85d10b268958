"""A new subscriber's first poll (kafka-python): records already written come back within
the first 2-second poll, from a broker started with the shipped config/server.properties
(what `make run` uses), 20 runs out of 20. Time to the first record is printed."""

import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from conftest import Broker

RUNS = 20
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config" / "server.properties"


@pytest.fixture
def shipped_broker(tmp_path):
    broker = Broker(tmp_path, config_file=SHIPPED_CONFIG).start()
    yield broker
    broker.kill()


def test_a_new_group_gets_a_gzip_record_in_its_first_poll(shipped_broker):
    times = []
    for i in range(RUNS):
        topic = f"first-poll-{uuid.uuid4().hex[:8]}"
        producer = KafkaProducer(bootstrap_servers=shipped_broker.bootstrap, compression_type="gzip")
        producer.send(topic, b"gz-%d" % i).get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=shipped_broker.bootstrap, group_id=f"g-{topic}",
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        try:
            consumer.subscribe([topic])
            started = time.monotonic()
            got = consumer.poll(timeout_ms=2000)
            times.append(time.monotonic() - started)
        finally:
            consumer.close()
        values = [r.value for records in got.values() for r in records]
        assert values == [b"gz-%d" % i], f"run {i}: the first 2-second poll returned {values}"
    print(f"new group, subscribe to first record: median {sorted(times)[len(times) // 2]:.3f} s, "
          f"max {max(times):.3f} s over {RUNS} runs")


def test_a_groupless_subscriber_reads_a_just_auto_created_topic(shipped_broker):
    times = []
    for i in range(RUNS):
        topic = f"first-poll-{uuid.uuid4().hex[:8]}"
        producer = KafkaProducer(bootstrap_servers=shipped_broker.bootstrap, enable_idempotence=True, acks="all")
        futures = [producer.send(topic, f"v{k}".encode()) for k in range(100)]  # auto-creates the topic
        assert sorted(f.get(timeout=30).offset for f in futures) == list(range(100))
        producer.close()
        # The topic goes to the constructor: kafka-python 3.0.12 loses a subscribe() made
        # while its first Metadata(topics=[]) refresh (~100 ms after construction) is in
        # flight, then waits metadata.max.age.ms (5 minutes) — against Apache Kafka too.
        consumer = KafkaConsumer(topic, bootstrap_servers=shipped_broker.bootstrap, group_id=None,
                                 auto_offset_reset="earliest")
        try:
            started = time.monotonic()
            first = consumer.poll(timeout_ms=2000)
            times.append(time.monotonic() - started)
            values = [r.value for records in first.values() for r in records]
            assert values, f"run {i}: the first 2-second poll returned nothing"
            deadline = time.monotonic() + 10
            while len(values) < 100 and time.monotonic() < deadline:
                values += [r.value for records in consumer.poll(timeout_ms=500).values() for r in records]
        finally:
            consumer.close()
        assert values == [f"v{k}".encode() for k in range(100)], f"run {i}"
    print(f"groupless, subscribe to first record: median {sorted(times)[len(times) // 2]:.3f} s, "
          f"max {max(times):.3f} s over {RUNS} runs")
