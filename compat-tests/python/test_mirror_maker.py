"""MirrorMaker 2 (connect-mirror 4.3.1, dedicated mode: `org.apache.kafka.connect.mirror.MirrorMaker`)
into Rivulet.

- test_mirror_maker_copies_topic_configs_and_group_offsets_between_rivulet_clusters: two
  single Rivulet brokers A and B (with authorizers); MM2 (default replication policy) creates
  `A.orders` on B with the source's partition count, topic configs and ACLs, copies every
  record, and translates the `billing` group's committed offsets; a consumer of that group
  switched to B resumes at the translated offsets and reads the source's records from there.
- test_mirror_maker_copies_only_committed_transactions: a transactional source topic with
  aborted transactions, mirrored read_committed; the group resumes past the gaps.
- test_mirror_maker_migrates_from_apache_kafka_to_rivulet: the same from an Apache Kafka
  4.3.1 KRaft node into Rivulet with `IdentityReplicationPolicy` (topic names kept), the
  migration path.
"""

import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourcePatternType,
                                   ResourceType)

from conftest import Broker, free_port
from connect_worker import JvmProcess, wait_for, write_properties

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from brokers import start_kafka, stop, wait_port  # noqa: E402

pytestmark = pytest.mark.slow

TOPIC, GROUP, RECORDS, CONSUMED = "orders", "billing", 3000, 1700
# Non-default topic configs MM2 is to carry over (its default filter copies these).
CONFIGS = {"retention.ms": "7200000", "max.message.bytes": "200000", "cleanup.policy": "delete"}


def create_source(bootstrap: str, partitions: int = 3, config: dict | None = None):
    """Creates the topic and the group, which commits offset 0 on every partition.

    Both exist before MirrorMaker 2 starts, so its checkpoint task starts with the group and
    reads the offset syncs as they are written: syncs read during the task's first read of
    the offset-syncs topic each replace all older ones (`OffsetSyncStore`), which would leave
    nothing to translate a group offset in the middle of the topic with."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=partitions, replication_factor=1, config=config or {})])[
        TOPIC].result(timeout=60)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    deadline = time.time() + 60
    while True:
        try:
            consumer.commit(offsets=[TopicPartition(TOPIC, p, 0) for p in range(partitions)], asynchronous=False)
            break
        except KafkaException as e:
            # A just-started Kafka answers NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE while
            # it creates and loads __consumer_offsets.
            coordinator_moving = e.args[0].code() in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                                      KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
            if not coordinator_moving or time.time() > deadline:
                raise
            time.sleep(0.5)
    consumer.close()


def produce_and_consume(bootstrap: str) -> tuple[list[str], list[str]]:
    """Produces RECORDS records and has the group consume and commit the first CONSUMED;
    returns (all values, values the group consumed)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    values = [f"order {i:05d}" for i in range(RECORDS)]
    for i, v in enumerate(values):
        producer.produce(TOPIC, key=f"customer-{i % 37}", value=v)
    assert producer.flush(60) == 0

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    consumed: list[str] = []
    deadline = time.time() + 60
    while len(consumed) < CONSUMED and time.time() < deadline:
        for m in consumer.consume(CONSUMED - len(consumed), timeout=1):
            assert m.error() is None, m.error()
            consumed.append(m.value().decode())
    assert len(consumed) == CONSUMED
    consumer.commit(asynchronous=False)
    consumer.close()
    return values, consumed


def wait_mirroring(mm2: JvmProcess, target: str, mirrored: str, partitions: int):
    """Until MM2 created the mirrored topic and its checkpoint task read the offset syncs."""
    def ready():
        assert mm2.alive(), mm2.log_tail()
        return "starting checkpoint and offset sync stores took" in mm2.log_text() and \
            partition_count(target, mirrored) == partitions
    wait_for(ready, 180, f"MirrorMaker 2 mirroring into {mirrored}")


def committed_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    try:
        partitions = partition_count(bootstrap, topic)
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        consumer.close()


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return {k: e.value for k, e in admin.describe_configs([resource])[resource].result(timeout=30).items()}


def alter_topic_config(bootstrap: str, topic: str, name: str, value: str):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def partition_count(bootstrap: str, topic: str) -> int:
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    return len(topics[topic].partitions) if topic in topics else 0


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-probe"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(partition_count(bootstrap, topic))}
    finally:
        consumer.close()


def start_mirror_maker(work: Path, source: str, target: str, identity: bool, extra: dict | None = None) -> JvmProcess:
    props = {
        "clusters": "A, B",
        "A.bootstrap.servers": source,
        "B.bootstrap.servers": target,
        "A->B.enabled": "true",
        "A->B.topics": TOPIC,
        "A->B.groups": GROUP,
        "B->A.enabled": "false",
        # Single brokers: every topic MM2 and its Connect runtime create has one replica.
        "replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "config.storage.replication.factor": "1",
        "sync.group.offsets.enabled": "true",
        "sync.group.offsets.interval.seconds": "1",
        "emit.checkpoints.interval.seconds": "1",
        "emit.heartbeats.interval.seconds": "1",
        "refresh.topics.interval.seconds": "2",
        "refresh.groups.interval.seconds": "2",
        "sync.topic.configs.interval.seconds": "2",
        "sync.topic.acls.interval.seconds": "2",
        # An offset sync for every record, so that translated offsets are exact.
        "offset.lag.max": "0",
        "scheduled.rebalance.max.delay.ms": "5000",
        "plugin.discovery": "service_load",
    }
    if identity:
        props["replication.policy.class"] = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
    props.update(extra or {})
    config = write_properties(work / "mm2.properties", props)
    return JvmProcess("org.apache.kafka.connect.mirror.MirrorMaker", [str(config)], work / "mm2.log", heap="512m")


def mirror_and_switch(work: Path, source: str, target: str, identity: bool, while_running=None):
    """Mirrors TOPIC and GROUP from `source` to `target`; `while_running(mm2)` checks more while
    MirrorMaker 2 still runs."""
    create_source(source, config=CONFIGS)
    mirrored = TOPIC if identity else f"A.{TOPIC}"
    mm2 = start_mirror_maker(work, source, target, identity)
    try:
        wait_mirroring(mm2, target, mirrored, 3)
        values, consumed = produce_and_consume(source)
        source_committed = committed_offsets(source, TOPIC)
        assert sum(source_committed.values()) == CONSUMED
        consumed_partitions = {p for p, offset in source_committed.items() if offset > 0}

        def check_alive():
            assert mm2.alive(), mm2.log_tail()

        def copied():
            check_alive()
            return partition_count(target, mirrored) == 3 and end_offsets(target, mirrored) == end_offsets(source, TOPIC)
        wait_for(copied, 180, f"{mirrored} on the target with every record")

        def configs_synced():
            check_alive()
            configs = topic_configs(target, mirrored)
            return all(configs.get(k) == v for k, v in CONFIGS.items())
        wait_for(configs_synced, 120, f"the source's configs on {mirrored}")
        # A config changed on the source later follows (MM2 resets every config at its default on
        # the source with an IncrementalAlterConfigs DELETE, names the target may not define included).
        alter_topic_config(source, TOPIC, "retention.ms", "5400000")
        wait_for(lambda: check_alive() or topic_configs(target, mirrored).get("retention.ms") == "5400000", 60,
                 f"the changed retention.ms on {mirrored}")

        def offsets_synced():
            check_alive()
            return committed_offsets(target, mirrored) or None
        translated = wait_for(offsets_synced, 180, "the group's offsets translated onto the target")
        # Checkpoints follow the offset syncs: wait until they stop moving.
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(3)
            again = committed_offsets(target, mirrored)
            if again == translated and consumed_partitions <= set(again):
                break
            translated = again
        if while_running:
            while_running(check_alive)
        errors = [line for line in mm2.log_text().splitlines() if " ERROR " in line or "Could not alter" in line]
        assert not errors, "\n".join(errors[:20])
    finally:
        mm2.kill()

    # MM2 translates conservatively (its OffsetSyncStore keeps syncs in power-of-two buckets, and a
    # group past a sync resumes one record after it): never past what the group consumed on the
    # source, so nothing is skipped; records in between are read again.
    # Every partition the group consumed from has a translated offset (one still at 0 may not).
    assert consumed_partitions <= set(translated) <= set(source_committed), (translated, source_committed)
    for p, offset in translated.items():
        assert offset <= source_committed[p] and (offset > 0) == (source_committed[p] > 0), (translated, source_committed)

    # The group switched to the target resumes there, at the translated offsets: per partition
    # it reads the source's records from those offsets on, in order, and nothing else.
    source_records = read_partitions(source, TOPIC)
    expected = {p: records[translated.get(p, 0):] for p, records in source_records.items()}
    assert sum(len(r) for r in expected.values()) >= RECORDS - CONSUMED
    consumer = Consumer({"bootstrap.servers": target, "group.id": GROUP, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([mirrored])
    resumed: dict[int, list[tuple[int, str]]] = {p: [] for p in source_records}
    deadline = time.time() + 60
    while sum(len(r) for r in resumed.values()) < sum(len(r) for r in expected.values()) and time.time() < deadline:
        for m in consumer.consume(500, timeout=1):
            assert m.error() is None, m.error()
            resumed[m.partition()].append((m.offset(), m.value().decode()))
    for m in consumer.consume(100, timeout=2):  # anything more would be a defect
        resumed[m.partition()].append((m.offset(), m.value().decode()))
    consumer.close()
    for p, records in resumed.items():
        assert [o for o, _ in records[:1]] == ([translated.get(p, 0)] if expected[p] else []), (p, records[:1], translated)
        assert [v for _, v in records] == expected[p], p
    # Every record the group had not consumed on the source is among them.
    assert set(values) - set(consumed) <= {v for r in resumed.values() for _, v in r}


def read_partitions(bootstrap: str, topic: str) -> dict[int, list[str]]:
    """Every partition's values in offset order."""
    ends = end_offsets(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    records: dict[int, list[str]] = {p: [] for p in ends}
    deadline = time.time() + 60
    while any(len(records[p]) < ends[p] for p in ends) and time.time() < deadline:
        for m in consumer.consume(500, timeout=1):
            assert m.error() is None, m.error()
            assert m.offset() == len(records[m.partition()])
            records[m.partition()].append(m.value().decode())
    consumer.close()
    assert all(len(records[p]) == ends[p] for p in ends)
    return records


def acl(principal: str, topic: str, operation: AclOperation) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*", operation,
                      AclPermissionType.ALLOW)


def test_mirror_maker_copies_topic_configs_and_group_offsets_between_rivulet_clusters(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # Both clusters authorize (MM2 itself connects as the super user ANONYMOUS), so MM2 also
    # syncs the topic's ACLs: DescribeAcls on A, CreateAcls on B.
    authorizer = ["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                  "super.users=User:ANONYMOUS"]
    a, b = Broker(tmp_path / "a", extra=authorizer).start(), Broker(tmp_path / "b", extra=authorizer).start()
    try:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        for f in admin.create_acls([acl("User:alice", TOPIC, AclOperation.READ), acl("User:bob", TOPIC, AclOperation.WRITE),
                                    acl("User:carol", TOPIC, AclOperation.ALL)]).values():
            f.result(timeout=30)

        def acls_synced(check_alive):
            # As Kafka's MirrorSourceConnector: ALLOW WRITE is not synced, ALL becomes READ.
            expected = {str(acl(p, f"A.{TOPIC}", AclOperation.READ)) for p in ("User:alice", "User:carol")}
            target = AdminClient({"bootstrap.servers": b.bootstrap})
            everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                          AclPermissionType.ANY)
            wait_for(lambda: check_alive() or {str(x) for x in target.describe_acls(everything).result(timeout=30)} == expected,
                     60, f"the ACLs of {TOPIC} on A.{TOPIC}")
        mirror_and_switch(tmp_path, a.bootstrap, b.bootstrap, identity=False, while_running=acls_synced)
    finally:
        a.kill()
        b.kill()


def test_mirror_maker_migrates_from_apache_kafka_to_rivulet(tmp_path):
    port = free_port()
    kafka = start_kafka(tmp_path, port, {"group.initial.rebalance.delay.ms": "0"})
    (tmp_path / "rivulet").mkdir()
    target = Broker(tmp_path / "rivulet").start()
    try:
        wait_port(port, kafka, "Apache Kafka", timeout=120)
        mirror_and_switch(tmp_path, f"127.0.0.1:{port}", target.bootstrap, identity=True)
    finally:
        stop(kafka)
        target.kill()


def test_mirror_maker_copies_only_committed_transactions(tmp_path):
    """A transactional topic on Rivulet A (transactions committed and aborted) mirrored with a
    read_committed MM2 consumer: B holds exactly the committed records, in order, at new offsets
    (A's have gaps for markers and aborted records); the group, committed past an aborted
    transaction on A, resumes on B at its translated offset and reads the committed records
    from there."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Broker(tmp_path / "a").start(), Broker(tmp_path / "b").start()
    mm2 = None
    try:
        create_source(a.bootstrap, partitions=1)
        mm2 = start_mirror_maker(tmp_path, a.bootstrap, b.bootstrap, identity=False,
                                 extra={"A.consumer.isolation.level": "read_committed"})
        mirrored = f"A.{TOPIC}"
        wait_mirroring(mm2, b.bootstrap, mirrored, 1)
        producer = Producer({"bootstrap.servers": a.bootstrap, "transactional.id": "orders-writer"})
        producer.init_transactions(30)
        committed: list[str] = []
        for n, commit in enumerate([True, False, True, True, False, True]):
            producer.begin_transaction()
            batch = [f"txn {n} order {i:03d}" for i in range(100)]
            for value in batch:
                producer.produce(TOPIC, value=value)
            if commit:
                producer.commit_transaction(30)
                committed += batch
            else:
                producer.abort_transaction(30)

        # The group reads 250 committed records: past the first aborted transaction.
        consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": GROUP, "isolation.level": "read_committed",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        read: list[str] = []
        deadline = time.time() + 60
        while len(read) < 250 and time.time() < deadline:
            read += [m.value().decode() for m in consumer.consume(250 - len(read), timeout=1)]
        assert read == committed[:250]
        consumer.commit(asynchronous=False)
        consumer.close()
        # 100 committed, a marker, 100 aborted, a marker, 50 committed.
        assert committed_offsets(a.bootstrap, TOPIC) == {0: 252}

        def copied():
            assert mm2.alive(), mm2.log_tail()
            return partition_count(b.bootstrap, mirrored) == 1 and \
                end_offsets(b.bootstrap, mirrored).get(0) == len(committed)
        wait_for(copied, 180, "the committed records on B")
        translated = wait_for(lambda: committed_offsets(b.bootstrap, mirrored).get(0), 180, "the translated offset")
        time.sleep(3)
        translated = committed_offsets(b.bootstrap, mirrored)[0]
        errors = [line for line in mm2.log_text().splitlines() if " ERROR " in line]
        assert not errors, "\n".join(errors[:20])
        mm2.kill()
        mm2 = None

        assert read_partitions(b.bootstrap, mirrored) == {0: committed}
        # Never past the 250 records the group read on A.
        assert 0 < translated <= 250
        consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP, "auto.offset.reset": "latest",
                             "enable.auto.commit": False})
        consumer.subscribe([mirrored])
        rest: list[tuple[int, str]] = []
        deadline = time.time() + 60
        while len(rest) < len(committed) - translated and time.time() < deadline:
            rest += [(m.offset(), m.value().decode()) for m in consumer.consume(500, timeout=1)]
        rest += [(m.offset(), m.value().decode()) for m in consumer.consume(100, timeout=2)]
        consumer.close()
        assert rest[:1] and rest[0][0] == translated
        assert [v for _, v in rest] == committed[translated:]
    finally:
        if mm2 is not None:
            mm2.kill()
        a.kill()
        b.kill()
