"""The internal topics in Kafka's record formats: Kafka's own formatters read
`__consumer_offsets` and `__transaction_state`, and a data directory written with the JSON
records of earlier Rivulet versions opens with its groups' offsets and transactions intact."""

import json
import tarfile
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import Broker, create_topic, java
from test_transactions import read_values

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "legacy-json-datadir.tar.gz"


def formatted(broker, topic: str, formatter: str) -> list[dict]:
    """Every record of `topic` as Kafka's console consumer prints it with `formatter`,
    parsed from its JSON (it stops after 10 s without a new record)."""
    out = java(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server", broker.bootstrap, "--topic", topic, "--from-beginning",
        "--formatter", formatter, "--timeout-ms", "10000",
        timeout=120,
    )
    # The formatters print one JSON object per record without a separator between them.
    decoder, rows, text, at = json.JSONDecoder(), [], out.stdout, 0
    while (at := text.find("{", at)) >= 0:
        row, at = decoder.raw_decode(text, at)
        rows.append(row)
    assert rows, f"no records printed:\n{out.stdout}\n{out.stderr}"
    return rows


def commit(broker, group: str, offsets: list[TopicPartition]):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def committed(broker, group: str, topic: str) -> TopicPartition:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        return tp
    finally:
        consumer.close()


def test_offsets_formatter_prints_committed_offsets(broker):
    create_topic(broker, "fmt-topic", partitions=2)
    commit(broker, "fmt-group", [TopicPartition("fmt-topic", 0, 42, metadata="fmt-meta"),
                                 TopicPartition("fmt-topic", 1, 7)])
    rows = formatted(broker, "__consumer_offsets", "org.apache.kafka.tools.consumer.OffsetsMessageFormatter")
    mine = {row["key"]["data"]["partition"]: row for row in rows
            if row["key"]["data"].get("group") == "fmt-group"}
    assert set(mine) == {0, 1}, rows
    assert mine[0]["key"]["data"]["topic"] == "fmt-topic"
    value = mine[0]["value"]["data"]
    # confluent-kafka sends the metadata string with its C terminator; the broker keeps
    # the bytes as sent, as Kafka does.
    assert (value["offset"], value["metadata"].rstrip("\x00")) == (42, "fmt-meta"), mine[0]
    assert value["commitTimestamp"] > 0
    assert mine[1]["value"]["data"]["offset"] == 7


def test_transaction_log_formatter_prints_a_committed_transaction(broker):
    create_topic(broker, "fmt-txn-topic")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "fmt-tx"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("fmt-txn-topic", value="v", partition=0)
    producer.commit_transaction(30)
    rows = formatted(broker, "__transaction_state",
                     "org.apache.kafka.tools.consumer.TransactionLogMessageFormatter")
    mine = [row["value"]["data"] for row in rows if row["key"]["data"].get("transactionalId") == "fmt-tx"]
    # Kafka's TransactionState ids: Empty 0, Ongoing 1, PrepareCommit 2, CompleteCommit 4.
    statuses = [v["transactionStatus"] for v in mine]
    assert statuses[0] == 0 and statuses[-1] == 4 and 2 in statuses, mine
    prepare = next(v for v in mine if v["transactionStatus"] == 2)
    assert prepare["transactionPartitions"] == [{"topic": "fmt-txn-topic", "partitionIds": [0]}], prepare
    assert len({v["producerId"] for v in mine}) == 1 and mine[-1]["producerId"] >= 0


def test_data_directory_written_with_json_records_keeps_groups_and_transactions(tmp_path):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    broker = Broker(tmp_path).start()
    try:
        tp = committed(broker, "legacy-group", "legacy-topic")
        assert (tp.offset, tp.metadata) == (3, "legacy-meta")
        assert read_values(broker, "legacy-txn-topic", "read_committed", 2) == ["t0", "t1"]
        described = java("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", broker.bootstrap,
                         "describe", "--transactional-id", "legacy-tx")
        assert described.returncode == 0 and "CompleteAbort" in described.stdout, described.stdout + described.stderr

        # New records, in Kafka's format, beside the old ones: both are replayed after a kill.
        commit(broker, "legacy-group", [TopicPartition("legacy-topic", 0, 4, metadata="new-meta")])
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "legacy-tx"})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce("legacy-txn-topic", value="t2", partition=0)
        producer.commit_transaction(30)
        broker.kill()
        broker.start()
        tp = committed(broker, "legacy-group", "legacy-topic")
        assert (tp.offset, tp.metadata) == (4, "new-meta")
        assert read_values(broker, "legacy-txn-topic", "read_committed", 3) == ["t0", "t1", "t2"]
        described = java("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", broker.bootstrap,
                         "describe", "--transactional-id", "legacy-tx")
        assert "CompleteCommit" in described.stdout, described.stdout + described.stderr
    finally:
        broker.kill()
