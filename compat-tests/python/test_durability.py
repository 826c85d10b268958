"""Acknowledged records survive `kill -9` of the broker."""

from confluent_kafka import Producer

from test_python_clients import confluent_consume_all
from conftest import create_topic

COUNT = 100_000


def test_acknowledged_records_survive_kill_9(broker):
    create_topic(broker, "durable", partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5})
    failures = []
    acked = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)
        else:
            acked.append(msg.offset())

    for i in range(COUNT):
        while True:
            try:
                producer.produce("durable", value=f"record-{i}".encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0
    assert not failures
    assert len(acked) == COUNT

    broker.kill()
    broker.start()

    records = confluent_consume_all(broker, "durable", COUNT)
    assert [m.offset() for m in records] == list(range(COUNT))
    assert [m.value() for m in records] == [f"record-{i}".encode() for i in range(COUNT)]

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    offsets = []
    producer.produce("durable", value=b"after-restart", on_delivery=lambda err, msg: offsets.append((err, msg.offset())))
    assert producer.flush(30) == 0
    assert offsets == [(None, COUNT)]
