"""Topic metadata kept in a real etcd (`metadata.store=etcd://...`): brokers register under
a lease, topics outlive a broker's `kill -9`, and roots keep clusters apart."""

import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import Broker, Etcd, create_topic


def consume(broker, topic, partition, want, timeout=30):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "etcd-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, 0)])
    values = []
    deadline = time.time() + timeout
    while len(values) < want and time.time() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            values.append(msg.value().decode())
    consumer.close()
    return values


def test_topics_live_in_etcd_and_a_killed_broker_comes_back(tmp_path):
    etcd = Etcd(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    settings = (f"metadata.store={etcd.url('cluster-1')}", "broker.session.timeout.ms=3000")
    a = Broker(tmp_path / "a", extra=settings).start()
    try:
        assert "broker registered in etcd" in a.log_tail(100)
        create_topic(a, "in-etcd", partitions=3)
        producer = Producer({"bootstrap.servers": a.bootstrap})
        for i in range(100):
            producer.produce("in-etcd", value=f"v{i}", partition=1)
        assert producer.flush(30) == 0

        # A second broker with the same node id as a live one is refused, as Kafka refuses it.
        b = Broker(tmp_path / "b", extra=settings)
        with pytest.raises(RuntimeError, match="already registered"):
            b.start()

        # kill -9: the registration outlives the process until its lease expires; the
        # restarted broker waits for that, then serves the topic it reads back from etcd.
        a.kill()
        a.start()
        assert "waiting for its lease to expire" in a.log_tail(100)
        assert consume(a, "in-etcd", 1, 100) == [f"v{i}" for i in range(100)]

        # Another root is another cluster: it does not see the topic.
        c = Broker(tmp_path / "c", extra=(f"metadata.store={etcd.url('cluster-2')}",)).start()
        try:
            from confluent_kafka.admin import AdminClient
            topics = AdminClient({"bootstrap.servers": c.bootstrap}).list_topics(timeout=10).topics
            assert "in-etcd" not in topics
        finally:
            c.kill()
    finally:
        a.kill()
        etcd.stop()


def test_unreachable_etcd_stops_the_broker_with_a_clear_error(tmp_path):
    broker = Broker(tmp_path, extra=("metadata.store=etcd://127.0.0.1:1/nowhere",
                                     "metadata.store.connection.timeout.ms=2000"))
    with pytest.raises(RuntimeError, match=r"etcd at http://127.0.0.1:1 did not answer within 2000 ms"):
        broker.start()
    assert broker.proc.returncode != 0


def test_a_broker_started_before_etcd_waits_for_it_and_joins(tmp_path):
    etcd = Etcd(tmp_path, start=False)
    broker = Broker(tmp_path, extra=(f"metadata.store={etcd.url('late')}",))
    starter = threading.Timer(3, etcd.start)
    starter.start()
    try:
        broker.start()  # returns once the broker serves, after etcd came up
        starter.join()
        log = broker.log_tail(200)
        assert "etcd not reachable; retrying" in log
        assert "broker registered in etcd" in log
        create_topic(broker, "after-etcd", partitions=2)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(10):
            producer.produce("after-etcd", value=f"v{i}", partition=0)
        assert producer.flush(30) == 0
        assert consume(broker, "after-etcd", 0, 10) == [f"v{i}" for i in range(10)]
    finally:
        starter.cancel()
        broker.kill()
        etcd.stop()


def test_topics_created_right_after_start_are_answered(tmp_path):
    """A cluster-mode broker asked to create a topic the moment it has started answers
    every time (it once named no controller, and librdkafka's admin client then waited
    for one until its timeout). Fresh root and data each round."""
    etcd = Etcd(tmp_path)
    try:
        for round in range(20):
            data = tmp_path / f"round-{round}"
            data.mkdir()
            broker = Broker(data, extra=(f"metadata.store={etcd.url(f'round-{round}')}",)).start()
            try:
                create_topic(broker, "first", partitions=3, timeout=15)
            except Exception as e:
                raise AssertionError(f"round {round}: {e!r}\n{broker.log_tail(60)}") from e
            finally:
                broker.kill()
    finally:
        etcd.stop()
