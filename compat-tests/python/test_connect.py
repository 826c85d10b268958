"""Kafka Connect 4.3.1 in distributed mode against Rivulet, unchanged.

- test_file_connectors_survive_a_worker_kill: two workers (`ConnectDistributed`) in one
  group create their compacted internal topics themselves; a FileStreamSource and a
  FileStreamSink connector made through the REST API (the source's topic created by the
  worker with its `topic.creation.default.*` settings, KIP-158) carry a 10,000-line file into the sink
  file exactly, in order, while the worker running the tasks is killed with SIGKILL half way
  and its tasks move to the other worker (once both connectors committed their progress:
  without exactly-once support, Connect copies again what a killed task wrote but had not
  committed; the exactly-once test below kills mid-copy). Then the sink's offsets are read, moved back, deleted
  and reset through the REST API (KIP-875), and the sink copies again from where they point.
- test_exactly_once_source_survives_worker_kills: the same two workers with
  `exactly.once.source.support=enabled` (KIP-618: the config topic written by a
  transactional leader, per-task transactional producers fenced with FenceProducers, source
  offsets committed in the records' transaction); the worker running the source task is
  killed twice while it copies 10,000 lines, and a read_committed consumer finds each line
  in the topic exactly once, in order. The cleaner compacts the internal topics as they go
  (transactional records, aborted ones included); then both workers are killed and two new
  ones read them back: the connector runs again and copies only the lines added since.
- test_exactly_once_source_on_a_three_broker_cluster_with_connect_defaults: Connect's own
  defaults (replication factor 3) on a 3-broker cluster, the partition leader killed mid-copy.
"""

import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import Broker, java
from connect_worker import ConnectWorker, stop_all, wait_for

pytestmark = pytest.mark.slow

LINES = 10_000


def lines(first: int, count: int) -> list[str]:
    return [f"line {i:05d} of the source file" for i in range(first, first + count)]


def read_lines(path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    # A line being written may lack its newline yet.
    return text.split("\n")[:-1]


def append(path, items: list[str]):
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in items))


def topic_config(broker: Broker, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in configs.items()}


def partitions(broker: Broker, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    return len(admin.list_topics(topic, timeout=30).topics[topic].partitions)


def assert_internal_topics(broker: Broker, group: str):
    """The workers created their topics compacted, the config topic with one partition."""
    for suffix, count in (("configs", 1), ("offsets", 5), ("status", 2)):
        topic = f"{group}-{suffix}"
        assert topic_config(broker, topic)["cleanup.policy"] == "compact", topic
        assert partitions(broker, topic) == count, topic


def task_workers(status: dict) -> dict[int, str]:
    return {t["id"]: t["worker_id"] for t in status["tasks"]}


def worker_of(workers, worker_id: str) -> ConnectWorker:
    return next(w for w in workers if worker_id.endswith(f":{w.port}"))


def sink_committed(broker: Broker) -> int:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "connect-file-sink"})
    try:
        return consumer.committed([TopicPartition("file-lines", 0)], timeout=30)[0].offset
    finally:
        consumer.close()


def stop_connector(worker: ConnectWorker, name: str):
    status, body = worker.request("PUT", f"/connectors/{name}/stop")
    assert status in (202, 204), body
    wait_for(lambda: (s := worker.status(name)) and s["connector"]["state"] == "STOPPED" and not s["tasks"], 60,
             f"{name} stopped")


def resume_connector(worker: ConnectWorker, name: str):
    status, body = worker.request("PUT", f"/connectors/{name}/resume")
    assert status == 202, body
    worker.wait_running(name)


def sink_offsets(worker: ConnectWorker) -> list:
    status, body = worker.request("GET", "/connectors/file-sink/offsets")
    assert status == 200, body
    return body["offsets"]


def test_file_connectors_survive_a_worker_kill(tmp_path):
    broker = Broker(tmp_path).start()
    workers = []
    try:
        workers = [ConnectWorker(tmp_path, f"worker-{i}", broker.bootstrap) for i in (1, 2)]
        for w in workers:
            w.wait_ready()
        assert_internal_topics(broker, "connect-cluster")

        source_file, sink_file = tmp_path / "source.txt", tmp_path / "sink.txt"
        source_file.touch()
        workers[0].create_connector("file-source", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": str(source_file), "topic": "file-lines", "batch.size": "500",
            # KIP-158: the worker creates the connector's topic with these settings.
            "topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "-1",
            "topic.creation.default.retention.ms": "86400000", "topic.creation.default.compression.type": "lz4",
        })
        workers[0].wait_running("file-source")

        expected = lines(0, LINES)
        append(source_file, expected[:LINES // 2])
        wait_for(lambda: "file-lines" in AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=30).topics,
                 60, "the source topic")
        configs = topic_config(broker, "file-lines")
        assert (configs["retention.ms"], configs["compression.type"]) == ("86400000", "lz4")
        # Made only now: a consumer subscribing to a missing topic would have it auto-created
        # (`allow.auto.create.topics`), as Kafka does, without the source's settings.
        workers[1].create_connector("file-sink", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": str(sink_file), "topics": "file-lines",
        })
        workers[0].wait_running("file-sink")
        wait_for(lambda: len(read_lines(sink_file)) >= LINES // 2, 120, "the first half in the sink file")
        # Both connectors commit their progress every second (the source's file position in
        # the offsets topic, the sink group's offsets); once both are committed, the kill
        # loses nothing that would be copied twice.
        position = source_file.stat().st_size

        def source_committed():
            status, body = workers[0].request("GET", "/connectors/file-source/offsets")
            return status == 200 and [o["offset"] for o in body["offsets"]] == [{"position": position}]
        wait_for(source_committed, 60, "the source's file position committed")
        wait_for(lambda: sink_committed(broker) == LINES // 2, 60, "the sink group's offset committed")

        # Kill the worker running the source task; its tasks must move to the other one.
        source_status = workers[0].wait_running("file-source")
        victim = worker_of(workers, task_workers(source_status)[0])
        survivor = next(w for w in workers if w is not victim)
        victim.kill()
        append(source_file, expected[LINES // 2:])

        def moved():
            s1, s2 = survivor.status("file-source"), survivor.status("file-sink")
            return all(s and s["tasks"] and all(t["state"] == "RUNNING" and t["worker_id"].endswith(f":{survivor.port}")
                                                 for t in s["tasks"]) for s in (s1, s2))
        wait_for(moved, 120, "the tasks on the surviving worker")
        wait_for(lambda: len(read_lines(sink_file)) >= LINES, 180, "every line in the sink file")
        time.sleep(3)  # anything copied twice would arrive now
        assert read_lines(sink_file) == expected
        # The sink connector's consumer group committed the whole topic.
        wait_for(lambda: sink_committed(broker) == LINES, 60, "the sink group's offset at the end")

        # KIP-875: the sink connector's offsets read and changed through the REST API while it is
        # stopped (the worker uses OffsetFetch, OffsetCommit on the empty group, OffsetDelete and
        # DeleteGroups).
        sink_partition = {"kafka_topic": "file-lines", "kafka_partition": 0}
        stop_connector(survivor, "file-sink")
        assert sink_offsets(survivor) == [{"partition": sink_partition, "offset": {"kafka_offset": LINES}}]
        status, body = survivor.request("PATCH", "/connectors/file-sink/offsets",
                                        {"offsets": [{"partition": sink_partition, "offset": {"kafka_offset": 9000}}]})
        assert status == 200, body
        assert sink_offsets(survivor) == [{"partition": sink_partition, "offset": {"kafka_offset": 9000}}]
        resume_connector(survivor, "file-sink")
        wait_for(lambda: len(read_lines(sink_file)) >= LINES + 1000, 120, "the last 1,000 lines again")
        time.sleep(2)
        assert read_lines(sink_file) == expected + expected[9000:]

        # A null offset removes the partition's committed offset (OffsetDelete); resetting drops
        # the group (DeleteGroups): the sink starts again from the beginning of the topic.
        stop_connector(survivor, "file-sink")
        status, body = survivor.request("PATCH", "/connectors/file-sink/offsets",
                                        {"offsets": [{"partition": sink_partition, "offset": None}]})
        assert status == 200, body
        assert sink_offsets(survivor) == []
        status, body = survivor.request("DELETE", "/connectors/file-sink/offsets")
        assert status == 200, body
        assert sink_offsets(survivor) == []
        resume_connector(survivor, "file-sink")
        wait_for(lambda: len(read_lines(sink_file)) >= 2 * LINES + 1000, 120, "the whole topic again")
        time.sleep(2)
        assert read_lines(sink_file) == expected + expected[9000:] + expected
    finally:
        stop_all(workers)
        broker.kill()


def test_exactly_once_source_survives_worker_kills(tmp_path):
    # The cleaner looks every half second and cleans any dirty part, so the internal topics are
    # compacted while the test runs.
    broker = Broker(tmp_path, extra=["log.cleaner.backoff.ms=500", "log.cleaner.min.cleanable.ratio=0.01"]).start()
    workers = []
    eos = {"exactly.once.source.support": "enabled"}
    try:
        workers = [ConnectWorker(tmp_path, f"worker-{i}", broker.bootstrap, extra=eos) for i in (1, 2)]
        for w in workers:
            w.wait_ready()
        assert_internal_topics(broker, "connect-cluster")

        source_file = tmp_path / "source.txt"
        source_file.touch()
        expected = lines(0, LINES)
        workers[0].create_connector("eos-source", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": str(source_file), "topic": "eos-lines",
            # Small batches and a transaction per batch: the kills land between transactions
            # and inside them.
            "batch.size": "50", "exactly.once.support": "required", "transaction.boundary": "poll",
        })
        status = workers[0].wait_running("eos-source")
        # The file grows while the task copies it (200 lines every 100 ms), so the kills
        # land while it works.
        writer = threading.Thread(target=lambda: [(append(source_file, expected[i:i + 200]), time.sleep(0.1))
                                                  for i in range(0, LINES, 200)], daemon=True)
        writer.start()

        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "eos-check",
                             "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("eos-lines", 0, 0)])
        seen: list[str] = []

        def poll_until(count: int, timeout: float):
            deadline = time.time() + timeout
            while len(seen) < count and time.time() < deadline:
                for m in consumer.consume(500, timeout=1):
                    assert m.error() is None, m.error()
                    seen.append(m.value().decode())

        kills = 0
        for threshold in (LINES // 4, LINES // 2):
            poll_until(threshold, 120)
            assert len(seen) >= threshold, f"{len(seen)} lines after 120 s"
            victim = worker_of(workers, task_workers(status)[0])
            victim.kill()
            kills += 1
            survivor = next(w for w in workers if w is not victim)
            # The killed worker comes back so that the next kill leaves one running.
            workers[workers.index(victim)] = ConnectWorker(tmp_path, f"worker-{2 + kills}", broker.bootstrap,
                                                           extra=eos)
            workers[workers.index(survivor)].wait_ready()
            status = wait_for(lambda: _running_elsewhere(survivor, "eos-source", victim.port), 120,
                              "the source task on the surviving worker")
        writer.join(timeout=60)
        poll_until(LINES, 180)
        time.sleep(3)
        poll_until(LINES + 1, 3)  # a duplicate would show up here
        consumer.close()
        assert seen == expected
        for w in workers:
            assert w.alive(), w.log_tail()
        # The leader wrote the config topic and the task its records through transactional
        # producers on Rivulet's transaction coordinator.
        out = java("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", broker.bootstrap, "list")
        assert out.returncode == 0, out.stderr
        ids = {line.split()[0] for line in out.stdout.splitlines()[1:] if line.strip()}
        assert {"connect-cluster-connect-cluster", "connect-cluster-eos-source-0"} <= ids, out.stdout

        # Both workers killed; the cleaner compacts the internal topics (transactional records,
        # aborted ones among them, and their markers); new workers read them back: the
        # connector runs again and resumes where its committed offsets say, copying only new lines.
        stop_all(workers)

        def cleaned(topic: str) -> bool:
            return any(b"cleaned log" in line and f'topic="{topic}"'.encode() in line
                       for line in broker.log_path.read_bytes().splitlines())
        wait_for(lambda: cleaned("connect-cluster-offsets"), 60, "the cleaner to compact the offsets topic")
        workers = [ConnectWorker(tmp_path, f"worker-{5 + i}", broker.bootstrap, extra=eos) for i in (1, 2)]
        for w in workers:
            w.wait_ready()
        workers[0].wait_running("eos-source")
        more = lines(LINES, 1000)
        append(source_file, more)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "eos-check",
                             "isolation.level": "read_committed", "enable.auto.commit": False})
        consumer.assign([TopicPartition("eos-lines", 0, 0)])
        seen.clear()
        poll_until(LINES + 1000, 120)
        time.sleep(3)
        poll_until(LINES + 1001, 3)
        consumer.close()
        assert seen == expected + more
    finally:
        stop_all(workers)
        broker.kill()


def _running_elsewhere(worker: ConnectWorker, connector: str, dead_port: int):
    s = worker.status(connector)
    if s and s["tasks"] and all(t["state"] == "RUNNING" and not t["worker_id"].endswith(f":{dead_port}") for t in s["tasks"]):
        return s
    return None


def test_exactly_once_source_on_a_three_broker_cluster_with_connect_defaults(tmp_path):
    """Connect's own defaults (internal topics with replication factor 3, 25 offsets partitions)
    on a 3-broker cluster: the exactly-once source task copies a growing file while the broker
    leading its topic's partition is killed with SIGKILL, and every line is in the topic once."""
    from cluster import Cluster

    defaults = {"exactly.once.source.support": "enabled", "config.storage.replication.factor": None,
                "offset.storage.replication.factor": None, "status.storage.replication.factor": None,
                "offset.storage.partitions": None, "status.storage.partitions": None}
    with Cluster(tmp_path) as cluster:
        workers = []
        try:
            workers = [ConnectWorker(tmp_path, f"worker-{i}", cluster.bootstrap, extra=defaults) for i in (1, 2)]
            for w in workers:
                w.wait_ready(timeout=180)
            admin = cluster.admin()
            topics = admin.list_topics(timeout=30).topics
            for suffix, count in (("configs", 1), ("offsets", 25), ("status", 5)):
                partitions = topics[f"connect-cluster-{suffix}"].partitions
                assert len(partitions) == count and all(len(p.replicas) == 3 for p in partitions.values()), suffix

            source_file = tmp_path / "source.txt"
            source_file.touch()
            expected = lines(0, LINES)
            workers[0].create_connector("eos-source", {
                "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "tasks.max": "1", "file": str(source_file), "topic": "eos-lines", "batch.size": "50",
                "exactly.once.support": "required", "transaction.boundary": "poll",
                "topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "3",
            })
            workers[0].wait_running("eos-source")
            writer = threading.Thread(target=lambda: [(append(source_file, expected[i:i + 200]), time.sleep(0.1))
                                                      for i in range(0, LINES, 200)], daemon=True)
            writer.start()

            consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "eos-check",
                                 "isolation.level": "read_committed", "enable.auto.commit": False})
            consumer.assign([TopicPartition("eos-lines", 0, 0)])
            seen: list[str] = []

            def poll_until(count: int, timeout: float):
                deadline = time.time() + timeout
                while len(seen) < count and time.time() < deadline:
                    for m in consumer.consume(500, timeout=1):
                        assert m.error() is None, m.error()
                        seen.append(m.value().decode())

            poll_until(LINES // 4, 120)
            assert len(seen) >= LINES // 4, f"{len(seen)} lines"
            cluster.kill(cluster.leader_of("eos-lines", 0))
            writer.join(timeout=60)
            poll_until(LINES, 240)
            time.sleep(3)
            poll_until(LINES + 1, 3)
            consumer.close()
            assert seen == expected
            for w in workers:
                assert w.alive(), w.log_tail()
        finally:
            stop_all(workers)
