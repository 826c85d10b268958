"""KIP-848 consumer groups (`group.protocol=consumer`): ConsumerGroupHeartbeat (68) and
ConsumerGroupDescribe (69) with server-side assignment, driven by the Java 4.3.1 client,
librdkafka (confluent-kafka) and the `kafka-consumer-groups` tool."""

import subprocess
import time
import uuid

import pytest

from conftest import JAVA_LIB, Broker, compile_java, create_topic, java, run_java_program

# Kafka's minimum heartbeat interval (5 s) and session timeout (45 s) make rebalances slow
# to watch; the bounds are lowered as an operator may.
FAST_GROUPS = [
    "group.consumer.min.heartbeat.interval.ms=500",
    "group.consumer.heartbeat.interval.ms=500",
    "group.consumer.min.session.timeout.ms=6000",
    "group.consumer.session.timeout.ms=6000",
]


def consumer_groups(broker: Broker, *args: str) -> subprocess.CompletedProcess:
    return java("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap,
                *args)


def test_java_consumer_protocol_members_join_and_leave(tmp_path):
    """4 Java members share 12 partitions exactly once, joining and leaving one by one under a
    producer's load: nothing lost, no partition owned twice, committed offsets never back."""
    broker = Broker(tmp_path, extra=FAST_GROUPS).start()
    try:
        create_topic(broker, "churn848", partitions=12)
        classes = compile_java(tmp_path, "ConsumerProtocolChurn.java")
        out = run_java_program(classes, "ConsumerProtocolChurn", broker.bootstrap, "churn848", "6000", "4", "12",
                               "churn848-group", timeout=240)
        assert out.returncode == 0 and "OK 6000" in out.stdout, out.stdout + out.stderr[-3000:] + broker.log_tail()
        assert "BALANCED 4" in out.stdout
    finally:
        broker.kill()


def test_kafka_consumer_groups_shows_a_consumer_group(tmp_path):
    """A live console consumer using the consumer protocol: `kafka-consumer-groups` lists the
    group with type Consumer and describes its member and assignment (ConsumerGroupDescribe)."""
    broker = Broker(tmp_path, extra=FAST_GROUPS).start()
    consumer = None
    try:
        create_topic(broker, "shown", partitions=3)
        consumer = subprocess.Popen(
            ["java", "-Xmx256m", "-cp", f"{JAVA_LIB}/*", "org.apache.kafka.tools.consumer.ConsoleConsumer",
             "--bootstrap-server", broker.bootstrap, "--topic", "shown", "--group", "shown-group",
             "--consumer-property", "group.protocol=consumer", "--consumer-property", "client.id=shown-client"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        members = ""
        while time.time() < deadline:
            out = consumer_groups(broker, "--describe", "--group", "shown-group", "--members")
            members = out.stdout + out.stderr
            if "shown-client" in members and " 3 " in members:
                break
            time.sleep(1)
        assert "shown-client" in members, members + broker.log_tail()
        listed = consumer_groups(broker, "--list", "--type")
        row = [line for line in listed.stdout.splitlines() if line.startswith("shown-group")]
        assert row and "Consumer" in row[0], listed.stdout + listed.stderr
        state = consumer_groups(broker, "--describe", "--group", "shown-group", "--state")
        assert "Stable" in state.stdout and "uniform" in state.stdout, state.stdout + state.stderr
        offsets = consumer_groups(broker, "--describe", "--group", "shown-group")
        assert offsets.returncode == 0 and "shown" in offsets.stdout, offsets.stdout + offsets.stderr
    finally:
        if consumer is not None:
            consumer.kill()
            consumer.wait(timeout=30)
        broker.kill()


def _consume(consumer, expected: int, timeout: float) -> list:
    """Polls until `expected` records arrived (or `timeout`), committing each synchronously."""
    got = []
    deadline = time.time() + timeout
    while len(got) < expected and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        got.append(msg.value().decode())
        consumer.commit(message=msg, asynchronous=False)
    return got


def _produce(bootstrap: str, topic: str, values):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for v in values:
        producer.produce(topic, v.encode())
    producer.flush(30)


def test_librdkafka_consumer_protocol_survives_a_broker_restart(tmp_path):
    """librdkafka with `group.protocol=consumer` consumes and commits through a KIP-848 group;
    across a broker `kill -9` and restart (the group rebuilt from its ConsumerGroup* records)
    the same consumer goes on from its committed offsets: it reads exactly what was produced
    since, nothing again, nothing lost."""
    from confluent_kafka import Consumer

    broker = Broker(tmp_path, extra=FAST_GROUPS).start()
    consumer = None
    try:
        create_topic(broker, "rdk848", partitions=4)
        _produce(broker.bootstrap, "rdk848", [f"a{i}" for i in range(200)])
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "rdk-group",
                             "group.protocol": "consumer", "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.subscribe(["rdk848"])
        before = _consume(consumer, 200, timeout=60)
        assert sorted(before) == sorted(f"a{i}" for i in range(200)), f"{len(before)} of 200\n{broker.log_tail()}"

        broker.kill()
        restart_at = broker.log_path.stat().st_size
        broker.start()
        _produce(broker.bootstrap, "rdk848", [f"b{i}" for i in range(50)])
        after = _consume(consumer, 50, timeout=60)
        extra = _consume(consumer, 1, timeout=3)
        assert sorted(after + extra) == sorted(f"b{i}" for i in range(50)), f"{after + extra}\n{broker.log_tail()}"
        # The member carried on in its epoch: the rebuilt group knew it, so it never rejoined.
        with open(broker.log_path, "rb") as f:
            f.seek(restart_at)
            since = f.read().decode(errors="replace")
        assert "member joins the consumer group" not in since, since[-3000:]
        assert "fencing consumer group member" not in since, since[-3000:]
    finally:
        if consumer is not None:
            consumer.close()
        broker.kill()


def test_classic_join_to_a_consumer_group_is_refused(tmp_path):
    """With online migration not offered, a classic member cannot join a live consumer-protocol
    group (INCONSISTENT_GROUP_PROTOCOL, as Kafka with the migration disabled) and the group
    goes on undisturbed; ListGroups shows each group's type."""
    from confluent_kafka import Consumer, KafkaException
    from confluent_kafka.admin import AdminClient

    broker = Broker(tmp_path, extra=FAST_GROUPS).start()
    try:
        create_topic(broker, "mixed", partitions=2)
        _produce(broker.bootstrap, "mixed", [f"m{i}" for i in range(10)])
        modern = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "mixed-group",
                           "group.protocol": "consumer", "auto.offset.reset": "earliest"})
        modern.subscribe(["mixed"])
        got = 0
        deadline = time.time() + 30
        while got < 10 and time.time() < deadline:
            msg = modern.poll(0.5)
            if msg is not None and not msg.error():
                got += 1
        assert got == 10, broker.log_tail()

        errors = []
        classic = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "mixed-group",
                            "group.protocol": "classic", "error_cb": errors.append})
        classic.subscribe(["mixed"])
        deadline = time.time() + 20
        while time.time() < deadline and not errors:
            try:
                msg = classic.poll(0.5)
                # librdkafka hands a failed JoinGroup to the application as an error event.
                if msg is not None and msg.error():
                    errors.append(msg.error())
                elif msg is not None:
                    errors.append(f"classic member consumed {msg.value()!r}")
            except KafkaException as e:
                errors.append(e.args[0])
        classic.close()
        assert errors and all("INCONSISTENT_GROUP_PROTOCOL" in str(e) or "nconsistent group protocol" in str(e)
                              for e in errors), errors

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        listed = admin.list_consumer_groups().result(timeout=30)
        types = {g.group_id: str(g.type) for g in listed.valid}
        assert "CONSUMER" in types.get("mixed-group", ""), types
        modern.close()
    finally:
        broker.kill()


@pytest.mark.parametrize("by", ["name", "regex"])
def test_subscription_to_a_topic_created_later(tmp_path, by):
    """A member subscribed by name, or by a regular expression (`subscribed_topic_regex`),
    to a topic that does not exist yet gets its partitions once it is created (the group
    rebalances on the metadata change)."""
    broker = Broker(tmp_path, extra=FAST_GROUPS + ["auto.create.topics.enable=false"]).start()
    try:
        from confluent_kafka import Consumer

        topic = f"later-{uuid.uuid4().hex[:6]}"
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "later-group",
                             "group.protocol": "consumer", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic] if by == "name" else ["^later-.*"])
        for _ in range(6):
            consumer.poll(0.5)
        create_topic(broker, topic, partitions=2)
        _produce(broker.bootstrap, topic, [f"x{i}" for i in range(20)])
        got = set()
        deadline = time.time() + 40
        while len(got) < 20 and time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.add(msg.value().decode())
        consumer.close()
        assert len(got) == 20, f"{len(got)} of 20\n{broker.log_tail()}"
    finally:
        broker.kill()
