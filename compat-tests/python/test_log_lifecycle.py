"""Log lifecycle with real clients: retention by size and time, DeleteRecords, and topic
configs changed while the broker runs (kafka-configs, kafka-delete-records, confluent-kafka's
AdminClient), on one broker and across a 3-broker etcd cluster."""

import json
import signal
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

from cluster import Cluster, wait_for
from conftest import JAVA_LIB, KAFKA_LIB, Broker, compile_java, create_topic, java, run_java_program

MIB = 1024 * 1024


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4()}"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


def produce(bootstrap: str, topic: str, count: int, size: int, partition: int = 0):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    value = b"x" * size
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i).encode(), partition=partition)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


def first_consumed_offset(bootstrap: str, topic: str, group: str, reset: str = "earliest"):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": reset,
                         "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        deadline = time.time() + 20
        while time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                return msg.offset()
        return None
    finally:
        consumer.close()


def disk_usage(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def kafka_configs(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return java("kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, *args, lib=KAFKA_LIB)


def test_retention_bytes_bounds_the_log_and_its_disk_use(tmp_path):
    broker = Broker(tmp_path, extra=["log.retention.check.interval.ms=300"]).start()
    try:
        retained = 2 * MIB
        create_topic(broker, "bounded", config={"retention.bytes": str(retained), "retention.ms": "-1"})
        # ~50 times the retained bytes, in rounds so retention runs in between.
        for _ in range(10):
            produce(broker.bootstrap, "bounded", 1000, 10_000)
        high = watermarks(broker.bootstrap, "bounded")[1]
        assert high == 10_000
        # Whole batches go, oldest first, while each fits in what exceeds retention.bytes:
        # at most retention.bytes plus one producer batch (librdkafka's batch.size, 1 MB)
        # of 10 KB records stay.
        def trimmed():
            low = watermarks(broker.bootstrap, "bounded")[0]
            return low if high - low <= (retained + MIB) // 10_000 else None
        low = wait_for(trimmed, timeout=30, what="retention to move the log start")
        # A new group from the beginning starts at the log start, not at offset 0.
        assert first_consumed_offset(broker.bootstrap, "bounded", "from-start") == low

        db = tmp_path / "data" / "rivulet-db"
        size = wait_for(lambda: (lambda s: s if s < 12 * retained + 16 * MIB else None)(disk_usage(db)),
                        timeout=30, what="the database to shrink", show=lambda: disk_usage(db))
        print(f"retention.bytes={retained} written={10_000 * 10_000} rocksdb_dir={size} bytes")
        assert "deleted records due to retention size breach" in broker.log_path.read_text()

        # The log start survives a crash.
        broker.kill()
        broker.start()
        assert watermarks(broker.bootstrap, "bounded")[0] >= low
    finally:
        broker.kill()


def test_retention_ms_changed_at_run_time_with_kafka_configs(tmp_path):
    broker = Broker(tmp_path, extra=["log.retention.check.interval.ms=300"]).start()
    try:
        create_topic(broker, "aging")
        produce(broker.bootstrap, "aging", 200, 100)
        assert watermarks(broker.bootstrap, "aging") == (0, 200)

        out = kafka_configs(broker.bootstrap, "--alter", "--entity-type", "topics", "--entity-name", "aging",
                            "--add-config", "retention.ms=1000,retention.bytes=100000000")
        assert out.returncode == 0, out.stdout + out.stderr
        # Everything is older than a second soon: the whole log goes, the offsets stay.
        wait_for(lambda: watermarks(broker.bootstrap, "aging") == (200, 200), timeout=20,
                 what="retention.ms to delete the records")
        assert "deleted records due to retention time breach" in broker.log_path.read_text()

        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "topics", "--entity-name", "aging")
        assert out.returncode == 0, out.stderr
        assert "retention.ms=1000" in out.stdout and "retention.bytes=100000000" in out.stdout, out.stdout

        # Survives a restart; new records get the new offsets.
        broker.kill()
        broker.start()
        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "topics", "--entity-name", "aging")
        assert "retention.ms=1000" in out.stdout, out.stdout
        assert watermarks(broker.bootstrap, "aging") == (200, 200)

        out = kafka_configs(broker.bootstrap, "--alter", "--entity-type", "topics", "--entity-name", "aging",
                            "--delete-config", "retention.ms")
        assert out.returncode == 0, out.stdout + out.stderr
        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "topics", "--entity-name", "aging")
        assert "retention.ms=" not in out.stdout and "retention.bytes=100000000" in out.stdout, out.stdout

        # Refused as Kafka refuses them: an unknown name and a bad value.
        out = kafka_configs(broker.bootstrap, "--alter", "--entity-type", "topics", "--entity-name", "aging",
                            "--add-config", "retention.ms=soon")
        assert out.returncode != 0 and "Invalid value soon for configuration retention.ms" in out.stdout + out.stderr
    finally:
        broker.kill()


def test_incremental_alter_configs_with_confluent_kafka(broker):
    create_topic(broker, "altered")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "altered", incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET),
    ])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "altered")])
    configs = list(described.values())[0].result(timeout=30)
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["retention.ms"].value == "86400000"
    source = configs["retention.ms"].source
    assert getattr(source, "value", source) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    bad = ConfigResource(ConfigResource.Type.TOPIC, "altered", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)])
    with pytest.raises(KafkaException) as refused:
        admin.incremental_alter_configs([bad])[bad].result(timeout=30)
    assert refused.value.args[0].name() == "INVALID_CONFIG"
    missing = ConfigResource(ConfigResource.Type.TOPIC, "no-such-topic", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as unknown:
        admin.incremental_alter_configs([missing])[missing].result(timeout=30)
    assert unknown.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"
    # Deleting a config that is not set succeeds, even one Rivulet does not define (Kafka's
    # tiered-storage configs, which MirrorMaker 2 from Kafka deletes on every sync), as Kafka
    # validates only the resulting configs; setting one is refused.
    reset = ConfigResource(ConfigResource.Type.TOPIC, "altered", incremental_configs=[
        ConfigEntry("remote.storage.enable", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([reset])[reset].result(timeout=30)
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "altered")])
    assert list(described.values())[0].result(timeout=30)["retention.ms"].value == "3600000"
    unknown_set = ConfigResource(ConfigResource.Type.TOPIC, "altered", incremental_configs=[
        ConfigEntry("remote.storage.enable", "false", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        admin.incremental_alter_configs([unknown_set])[unknown_set].result(timeout=30)
    assert refused.value.args[0].name() == "INVALID_CONFIG"


def test_delete_records_with_the_tool_and_confluent_kafka(broker, tmp_path):
    create_topic(broker, "purged", partitions=2)
    create_topic(broker, "compacted-only", config={"cleanup.policy": "compact"})
    produce(broker.bootstrap, "purged", 100, 100, partition=0)

    # A group that committed offset 10, below what is about to be deleted.
    committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "behind", "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition("purged", 0, 10)], asynchronous=False)
    committer.close()

    # kafka-delete-records (the Java AdminClient's deleteRecords).
    spec = tmp_path / "delete.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [{"topic": "purged", "partition": 0, "offset": 30}]}))
    out = java("org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", broker.bootstrap,
               "--offset-json-file", str(spec))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "low_watermark: 30" in out.stdout, out.stdout
    assert watermarks(broker.bootstrap, "purged") == (30, 100)

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    result = admin.delete_records([TopicPartition("purged", 0, 60)])
    assert list(result.values())[0].result(timeout=30).low_watermark == 60
    # -1 = up to the high watermark; an empty partition is fine.
    result = admin.delete_records([TopicPartition("purged", 1, -1)])
    assert list(result.values())[0].result(timeout=30).low_watermark == 0
    # Beyond the high watermark, and a compact-only topic, are refused as Kafka refuses them.
    for tp, error in [(TopicPartition("purged", 0, 101), "OFFSET_OUT_OF_RANGE"),
                      (TopicPartition("compacted-only", 0, 0), "POLICY_VIOLATION")]:
        with pytest.raises(KafkaException) as refused:
            list(admin.delete_records([tp]).values())[0].result(timeout=30)
        assert refused.value.args[0].name() == error

    # kafka-log-dirs shows the partitions and their sizes, which shrank.
    out = java("org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", broker.bootstrap, "--describe",
               "--topic-list", "purged")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    partitions = {p["partition"]: p for d in report["brokers"][0]["logDirs"] for p in d["partitions"]}
    assert set(partitions) == {"purged-0", "purged-1"}, partitions
    assert partitions["purged-0"]["size"] > 0, partitions
    assert partitions["purged-1"]["size"] == 0

    # The group's committed offset is now below the log start: it resets per auto.offset.reset.
    assert first_consumed_offset(broker.bootstrap, "purged", "behind", reset="earliest") == 60
    assert first_consumed_offset(broker.bootstrap, "purged", "fresh", reset="earliest") == 60


def test_cluster_followers_follow_the_log_start_and_configs_reach_every_broker(tmp_path):
    with Cluster(tmp_path, extra=("log.retention.check.interval.ms=300",)) as cluster:
        cluster.create_topic("replicated", partitions=1)
        cluster.wait_for_full_isr("replicated", 1)
        produce(cluster.bootstrap, "replicated", 300, 100)
        leader = cluster.leader_of("replicated", 0)
        admin = cluster.admin()
        result = admin.delete_records([TopicPartition("replicated", 0, 120)])
        # Answered once every in-sync follower has followed.
        assert list(result.values())[0].result(timeout=30).low_watermark == 120

        # A config change made through one broker is what every broker describes.
        other = next(n for n in (1, 2, 3) if n != leader)
        resource = ConfigResource(ConfigResource.Type.TOPIC, "replicated", incremental_configs=[
            ConfigEntry("retention.bytes", "123456789", incremental_operation=AlterConfigOpType.SET)])
        through_other = cluster.admin(cluster.broker(other).bootstrap)
        through_other.incremental_alter_configs([resource])[resource].result(timeout=30)
        for node in (1, 2, 3):
            def seen(node=node):
                # Kept referenced while its future is awaited.
                direct = cluster.admin(cluster.broker(node).bootstrap)
                described = direct.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "replicated")])
                return list(described.values())[0].result(timeout=10)["retention.bytes"].value == "123456789"
            wait_for(seen, timeout=15, what=f"broker {node} to see the new config")

        # A cluster-wide default set through one broker reaches every broker.
        out = kafka_configs(cluster.broker(other).bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
                            "--add-config", "log.retention.bytes=987654321")
        assert out.returncode == 0, out.stdout + out.stderr
        for node in (1, 2, 3):
            def default_seen(node=node):
                direct = cluster.admin(cluster.broker(node).bootstrap)
                described = direct.describe_configs([ConfigResource(ConfigResource.Type.BROKER, str(node))])
                return list(described.values())[0].result(timeout=10)["log.retention.bytes"].value == "987654321"
            wait_for(default_seen, timeout=15, what=f"broker {node} to apply the default")

        # The new leader after a kill has the moved log start: followers applied it.
        cluster.kill(leader)
        new_leader = cluster.leader_of("replicated", 0, bootstrap=cluster.live_bootstrap)
        assert new_leader != leader
        assert wait_for(lambda: watermarks(cluster.live_bootstrap, "replicated")[0] == 120, timeout=30,
                        what="the new leader's log start")


def acknowledged(lines: list[str]) -> dict:
    """The last (offset, value) of each key in CompactedProducer's `<offset> <key> <value>` lines."""
    last = {}
    for line in lines:
        offset, key, value = line.rstrip("\n").split(" ", 2)
        if key not in last or int(offset) > last[key][0]:
            last[key] = (int(offset), None if value == "<null>" else value.encode())
    return last


def test_compaction_keeps_the_last_value_of_each_key_at_its_offset(tmp_path):
    classes = compile_java(tmp_path, "CompactedProducer.java")
    broker = Broker(tmp_path, extra=["log.cleaner.backoff.ms=300"]).start()
    writer = None
    try:
        create_topic(broker, "compacted", config={
            "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.0001", "delete.retention.ms": "2000"})
        # The Java producer (idempotent, acks=all) writes 2,000 keys x 20 values and tombstones
        # for the first 500; then an aborted transaction rewrites keys 1000..1099 (never visible
        # to read_committed); then a sentinel, since the newest batch is never cleaned. It stays
        # up for the records written later, sent as `KEY VALUE` lines on its stdin.
        errors = tmp_path / "producer.err"
        # (C1 only: for a run this short, compiling with C2 costs more time than it saves.)
        cmd = ["java", "-Xmx512m", "-XX:TieredStopAtLevel=1", "-cp", f"{classes}:{JAVA_LIB}/*", "CompactedProducer",
               broker.bootstrap, "compacted", "2000", "20", "500", "1000", "1100"]
        writer = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(errors, "w"),
                                  text=True)
        watchdog = threading.Timer(120, writer.kill)
        watchdog.start()
        keys = [f"key-{i:04d}" for i in range(2000)]
        lines, line = [], ""
        for line in writer.stdout:
            if line.startswith("WRITTEN"):
                break
            lines.append(line)
        assert line.startswith("WRITTEN"), "".join(lines[-5:]) + errors.read_text()[-3000:]
        last = acknowledged(lines)
        assert set(last) == set(keys) | {"sentinel"}, len(last)

        def consume_all():
            consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"c-{uuid.uuid4()}",
                                 "isolation.level": "read_committed", "enable.auto.commit": False})
            consumer.assign([TopicPartition("compacted", 0, OFFSET_BEGINNING)])
            seen = []
            idle_since = time.time()
            while time.time() - idle_since < 3:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    seen.append((msg.key().decode(), msg.offset(), msg.value()))
                    idle_since = time.time()
            consumer.close()
            return seen

        def cleaned_once():
            seen = consume_all()
            return seen if len(seen) <= len(keys) + 1 else None

        seen = wait_for(cleaned_once, timeout=60, what="the cleaner to compact the topic")
        by_key = {}
        for key, offset, value in seen:
            assert key not in by_key, f"{key} seen twice"
            by_key[key] = (offset, value)
            assert value != b"aborted"
        live = {k: v for k, v in last.items() if v[1] is not None}
        for key, (offset, value) in live.items():
            assert by_key.get(key) == (offset, value), (key, by_key.get(key), (offset, value))
        # Tombstones stay for delete.retention.ms after the cleaner first saw them, then go
        # (at the next cleaning, which new writes make due).
        time.sleep(2.5)
        writer.stdin.write("sentinel 2\nsentinel 3\n")
        writer.stdin.close()
        lines = writer.stdout.readlines()
        assert writer.wait(timeout=60) == 0 and lines[-1:] == [f"OK acked={20 * len(keys) + 500 + 3}\n"], \
            "".join(lines[-5:]) + errors.read_text()[-3000:]

        def tombstones_gone():
            seen = consume_all()
            return seen if not any(value is None for _, _, value in seen) else None

        seen = wait_for(tombstones_gone, timeout=60, what="tombstones to be removed")
        keys_seen = {key for key, _, _ in seen}
        assert keys_seen == set(keys[500:]) | {"sentinel"}, len(keys_seen)
        assert "cleaned log" in broker.log_path.read_text()
    finally:
        if writer is not None:
            watchdog.cancel()
            writer.kill()
            writer.wait()
        broker.kill()


def startup_ms(broker: Broker) -> int:
    """The `startup_ms` of the broker's latest `rivulet started` line (replay included)."""
    line = [line for line in broker.log_path.read_text().splitlines() if "rivulet started" in line][-1]
    return int(line.split("startup_ms=")[1].split()[0])


@pytest.mark.parametrize("commits", [20_000, pytest.param(1_000_000, marks=pytest.mark.slow)])
def test_consumer_offsets_stays_small_after_many_commits(tmp_path, commits):
    broker = Broker(tmp_path, extra=["log.cleaner.backoff.ms=300", "offsets.topic.num.partitions=1"]).start()
    try:
        create_topic(broker, "committed", partitions=10)
        classes = compile_java(tmp_path, "OffsetCommitter.java")

        def offsets_partition_size():
            out = java("org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", broker.bootstrap, "--describe",
                       "--topic-list", "__consumer_offsets")
            report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
            return {p["partition"]: p["size"] for d in report["brokers"][0]["logDirs"] for p in d["partitions"]}[
                "__consumer_offsets-0"]

        # One group, manual assignment, one OffsetCommit request per commit (offset i of
        # partition i % 10): ~100 bytes each, 10 keys. The same first 20,000 in both sizes, so
        # the restart after them is the baseline the 1,000,000 run's restart compares with.
        done = 0
        for target in sorted({20_000, commits}):
            out = run_java_program(classes, "OffsetCommitter", broker.bootstrap, "busy", "committed", "10", str(done),
                                   str(target), timeout=600)
            assert out.returncode == 0 and out.stdout.startswith("OK"), out.stdout + out.stderr[-3000:]
            print(f"commits {done}..{target}: {out.stdout.strip()}")
            done = target

            # A bound independent of the number of commits: one record per key once cleaned.
            size = wait_for(lambda: (lambda s: s if s < 64 * 1024 else None)(offsets_partition_size()), timeout=120,
                            what="__consumer_offsets to be compacted", show=offsets_partition_size)
            # What the restart replays besides the partition: RocksDB's write-ahead log.
            wal = sum(f.stat().st_size for f in (tmp_path / "data" / "rivulet-db").glob("*.log"))
            broker.kill()
            started = time.time()
            broker.start()
            print(f"__consumer_offsets-0 after {done} commits: {size} bytes; restart with it compacted took "
                  f"{time.time() - started:.2f} s (startup_ms={startup_ms(broker)}, WAL {wal / MIB:.1f} MiB)")
            check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "busy"})
            committed = check.committed([TopicPartition("committed", p) for p in range(10)], timeout=30)
            check.close()
            assert {tp.partition: tp.offset for tp in committed} == {p: done - 10 + p for p in range(10)}
    finally:
        broker.kill()


def test_dynamic_broker_configs_with_kafka_configs(tmp_path):
    broker = Broker(tmp_path, extra=["log.retention.check.interval.ms=300"]).start()
    try:
        create_topic(broker, "follows-default")
        produce(broker.bootstrap, "follows-default", 50, 100)
        # The cluster-wide default (`--entity-default`) reaches a topic without an override.
        out = kafka_configs(broker.bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
                            "--add-config", "log.retention.ms=1000")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: watermarks(broker.bootstrap, "follows-default") == (50, 50), timeout=20,
                 what="the default retention to apply")
        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "topics", "--entity-name",
                            "follows-default", "--all")
        assert "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=1000" in out.stdout, out.stdout
        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "brokers", "--entity-default")
        assert "log.retention.ms=1000" in out.stdout, out.stdout

        # Per broker: message.max.bytes takes effect at once.
        out = kafka_configs(broker.bootstrap, "--alter", "--entity-type", "brokers", "--entity-name", "1",
                            "--add-config", "message.max.bytes=2000")
        assert out.returncode == 0, out.stdout + out.stderr
        producer = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 100_000})
        errors = []
        producer.produce("follows-default", value=b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
        producer.flush(30)
        assert errors and errors[0] is not None and errors[0].name() == "MSG_SIZE_TOO_LARGE", errors
        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "brokers", "--entity-name", "1", "--all")
        assert "DYNAMIC_BROKER_CONFIG:message.max.bytes=2000" in out.stdout, out.stdout

        # A setting that cannot change at run time is refused.
        out = kafka_configs(broker.bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
                            "--add-config", "log.dirs=/elsewhere")
        assert out.returncode != 0 and "Cannot update these configs dynamically" in out.stdout + out.stderr

        # Both survive a restart.
        broker.kill()
        broker.start()
        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "brokers", "--entity-name", "1", "--all")
        assert "message.max.bytes=2000" in out.stdout, out.stdout
        out = kafka_configs(broker.bootstrap, "--describe", "--entity-type", "brokers", "--entity-default")
        assert "log.retention.ms=1000" in out.stdout, out.stdout
    finally:
        broker.kill()


def read_all(bootstrap: str, topic: str, idle: float = 2.0):
    """Every (key, value) of partition 0 from the start, read_committed, until `idle` s pass."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"all-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen = []
    last = time.time()
    try:
        while time.time() - last < idle:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                seen.append((msg.key(), msg.value()))
                last = time.time()
    finally:
        consumer.close()
    return seen


def test_kafka_streams_word_count_survives_a_kill_with_its_changelog_compacted_and_repartition_purged(tmp_path):
    words, per_word = 50, 120
    total = words * per_word
    broker = Broker(tmp_path, extra=["log.cleaner.backoff.ms=300", "log.cleaner.min.cleanable.ratio=0.01",
                                     "group.initial.rebalance.delay.ms=0"]).start()
    try:
        create_topic(broker, "wc-in")
        create_topic(broker, "wc-out")
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
        for i in range(total):
            producer.produce("wc-in", value=f"w{i % words}".encode())
        assert producer.flush(60) == 0

        classes = compile_java(tmp_path, "StreamsWordCount.java")
        cmd = ["java", "-Xmx512m", "-cp", f"{classes}:{JAVA_LIB}/*", "StreamsWordCount", broker.bootstrap,
               "wc-in", "wc-out", "wc", str(tmp_path / "streams-state")]
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(tmp_path / "wc-0.err", "w"), text=True)
        watchdog = threading.Timer(120, first.kill)
        watchdog.start()
        try:
            for line in first.stdout:
                if line.startswith("processed") and int(line.split()[1]) >= 2_000:
                    break
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            watchdog.cancel()
        assert first.returncode == -signal.SIGKILL, (tmp_path / "wc-0.err").read_text()[-3000:]

        second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "wc-1.err", "w"))
        try:
            def counts():
                latest = {}
                for key, value in read_all(broker.bootstrap, "wc-out"):
                    latest[key.decode()] = struct.unpack(">q", value)[0]
                return latest if len(latest) == words and all(c >= per_word for c in latest.values()) else None

            latest = wait_for(counts, timeout=120, what="every word counted",
                              show=lambda: (tmp_path / "wc-1.err").read_text()[-2000:])
            # Exactly once across the kill: no count went past the number of occurrences.
            assert latest == {f"w{i}": per_word for i in range(words)}, latest

            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            topics = admin.list_topics(timeout=10).topics
            repartition = next(t for t in topics if t.startswith("wc-") and t.endswith("-repartition"))
            changelog = next(t for t in topics if t.startswith("wc-") and t.endswith("-changelog"))
            # Streams purges what it consumed from its repartition topic with DeleteRecords.
            wait_for(lambda: watermarks(broker.bootstrap, repartition)[0] > 0, timeout=60,
                     what="the repartition topic to be purged")
            # The changelog is compacted: far fewer records than updates, the latest per word kept.
            def compacted():
                records = read_all(broker.bootstrap, changelog)
                return records if len(records) < total // 4 else None

            records = wait_for(compacted, timeout=60, what="the changelog to be compacted")
            latest_in_changelog = {k.decode(): struct.unpack(">q", v[-8:])[0] for k, v in records}
            assert latest_in_changelog == {f"w{i}": per_word for i in range(words)}, latest_in_changelog
            print(f"changelog: {len(records)} records left for {words} words after {total} updates")
        finally:
            second.kill()
            second.wait()
    finally:
        broker.kill()


def scrape(port: int, name: str) -> float:
    """The value of the unlabelled metric `name` at the broker's /metrics endpoint."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def test_idle_producers_expire_after_producer_id_expiration_ms_set_at_run_time(tmp_path):
    from conftest import free_port

    metrics_port = free_port()
    broker = Broker(tmp_path, extra=["producer.id.expiration.check.interval.ms=300",
                                     f"rivulet.metrics.listener=127.0.0.1:{metrics_port}"]).start()
    gauge = "kafka_server_replicamanager_produceridcount"
    try:
        create_topic(broker, "idempotent", partitions=2)
        # Three idempotent producers, each with its own producer id, on both partitions.
        for _ in range(3):
            producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
            for i in range(10):
                producer.produce("idempotent", value=b"v", partition=i % 2)
            assert producer.flush(30) == 0
        assert scrape(metrics_port, gauge) == 6
        # The default (a day) keeps them; the cluster-wide dynamic default of one second
        # makes the next check forget them, in memory and on disk.
        time.sleep(1)
        assert scrape(metrics_port, gauge) == 6
        out = kafka_configs(broker.bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
                            "--add-config", "producer.id.expiration.ms=1000")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: scrape(metrics_port, gauge) == 0, timeout=20, what="idle producers to expire",
                 show=lambda: scrape(metrics_port, gauge))
        assert "producers idle longer than producer.id.expiration.ms forgotten" in broker.log_path.read_text()
        broker.kill()
        broker.start()
        assert scrape(metrics_port, gauge) == 0
        # A new idempotent producer still writes, and is counted again.
        producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
        producer.produce("idempotent", value=b"after", partition=0)
        assert producer.flush(30) == 0
        assert scrape(metrics_port, gauge) == 1
        assert watermarks(broker.bootstrap, "idempotent", 0)[1] == 16
    finally:
        broker.kill()


def test_describe_log_dirs_reports_the_volume_size_to_the_java_admin_client(broker, tmp_path):
    create_topic(broker, "sized")
    produce(broker.bootstrap, "sized", 10, 100)
    classes = compile_java(tmp_path, "LogDirSpace.java")
    out = run_java_program(classes, "LogDirSpace", broker.bootstrap, "1")
    assert out.returncode == 0, out.stdout + out.stderr
    [line] = out.stdout.splitlines()
    directory, total, usable, partitions = line.split()
    total, usable = int(total), int(usable)
    # The same numbers statvfs gives for the data directory, give or take what was
    # written between the two looks.
    import os

    stat = os.statvfs(directory)
    assert total == stat.f_blocks * stat.f_frsize
    assert 0 < usable <= total
    assert abs(usable - stat.f_bavail * stat.f_frsize) < 256 * MIB
    assert int(partitions) >= 1
