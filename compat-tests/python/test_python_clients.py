"""confluent-kafka (librdkafka) and kafka-python: produce, consume, offsets by timestamp."""

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from conftest import create_topic

COUNT = 1_000
# Timestamps 1000, 2000, ... so lookups can land exactly on or between them.
BASE_TS = 1_700_000_000_000


def confluent_consume_all(broker, topic, count, partition=0):
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "unused",  # required by librdkafka; no group is joined with assign()
        "enable.auto.commit": False,
    })
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    records = []
    try:
        while len(records) < count:
            msgs = consumer.consume(num_messages=500, timeout=10)
            assert msgs, f"timed out after {len(records)} records"
            for m in msgs:
                assert m.error() is None, m.error()
                records.append(m)
    finally:
        consumer.close()
    return records


def test_confluent_kafka_round_trip(broker):
    create_topic(broker, "ck", partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "compression.type": "zstd"})
    delivered = []
    for i in range(COUNT):
        producer.produce("ck", key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("n", str(i).encode())],
                         on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    assert producer.flush(30) == 0
    assert all(err is None for err, _ in delivered)
    assert sorted(o for _, o in delivered) == list(range(COUNT))
    records = confluent_consume_all(broker, "ck", COUNT)
    assert [(m.offset(), m.key(), m.value(), m.headers()) for m in records] == [
        (i, f"k{i}".encode(), f"v{i}".encode(), [("n", str(i).encode())]) for i in range(COUNT)
    ]


def test_kafka_python_round_trip(broker):
    create_topic(broker, "kp", partitions=2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type="gzip")
    futures = [producer.send("kp", key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 2) for i in range(COUNT)]
    producer.flush(30)
    offsets = sorted((f.get(timeout=30).partition, f.get(timeout=30).offset) for f in futures)
    assert offsets == sorted([(0, o) for o in range(COUNT // 2)] + [(1, o) for o in range(COUNT // 2)])
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000)
    partitions = [KTopicPartition("kp", 0), KTopicPartition("kp", 1)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got = {0: [], 1: []}
    for message in consumer:
        got[message.partition].append((message.offset, message.key.decode(), message.value.decode()))
        if sum(len(v) for v in got.values()) == COUNT:
            break
    consumer.close()
    for p in (0, 1):
        assert got[p] == [(o, f"k{i}", f"v{i}") for o, i in enumerate(range(p, COUNT, 2))]


def produce_timestamped(broker, topic):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    # Offsets 0..9 carry timestamps BASE+1000, BASE+2000, ..., BASE+10000.
    for i in range(10):
        producer.produce(topic, value=f"t{i}".encode(), timestamp=BASE_TS + (i + 1) * 1000)
        producer.flush(10)


def test_offsets_for_times_confluent_kafka(broker):
    create_topic(broker, "times-ck", partitions=1)
    produce_timestamped(broker, "times-ck")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        def lookup(ts):
            (tp,) = consumer.offsets_for_times([TopicPartition("times-ck", 0, ts)], timeout=10)
            assert tp.error is None
            return tp.offset
        assert lookup(BASE_TS) == 0
        assert lookup(BASE_TS + 1000) == 0
        assert lookup(BASE_TS + 1001) == 1
        assert lookup(BASE_TS + 5000) == 4
        assert lookup(BASE_TS + 9999) == 9
        assert lookup(BASE_TS + 10_001) == -1  # past the last record: OFFSET_END
    finally:
        consumer.close()


def test_offsets_for_times_kafka_python(broker):
    create_topic(broker, "times-kp", partitions=1)
    produce_timestamped(broker, "times-kp")
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = KTopicPartition("times-kp", 0)
    try:
        result = consumer.offsets_for_times({tp: BASE_TS + 2500})
        assert result[tp].offset == 2
        assert result[tp].timestamp == BASE_TS + 3000
        assert consumer.offsets_for_times({tp: BASE_TS + 20_000})[tp] is None
        assert consumer.beginning_offsets([tp])[tp] == 0
        assert consumer.end_offsets([tp])[tp] == 10
    finally:
        consumer.close()
