"""Consumer groups (classic protocol) and committed offsets with real clients."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import Producer

from conftest import Broker, compile_java, create_topic, java, run_java_program

HERE = Path(__file__).resolve().parent


def produce(broker, topic, count, prefix="r"):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, key=f"k{i}".encode(), value=f"{prefix}{i}".encode())
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def consumer_groups(broker, *args):
    return java("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", broker.bootstrap, *args)


def describe_rows(broker, group):
    """Rows of `kafka-consumer-groups --describe`, as dicts keyed by the header."""
    out = consumer_groups(broker, "--describe", "--group", group)
    assert out.returncode == 0, out.stderr
    lines = [l.split() for l in out.stdout.splitlines() if l.strip()]
    header_index = next(i for i, l in enumerate(lines) if l[:2] == ["GROUP", "TOPIC"])
    header = lines[header_index]
    return [dict(zip(header, l)) for l in lines[header_index + 1:] if len(l) == len(header)]


class Member:
    """A group_member.py process; collects its JSON events."""

    def __init__(self, broker, topic, group, instance_id=None, seconds=90):
        args = [sys.executable, str(HERE / "group_member.py"), "--bootstrap", broker.bootstrap, "--topic", topic,
                "--group", group, "--seconds", str(seconds)]
        if instance_id:
            args += ["--instance-id", instance_id]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def assignment(self):
        with self.lock:
            current = []
            for e in self.events:
                if "assigned" in e:
                    current = e["assigned"]
                elif "revoked" in e:
                    current = [p for p in current if p not in e["revoked"]]
            return current

    def records(self):
        with self.lock:
            return [tuple(e["record"]) for e in self.events if "record" in e]

    def count(self, kind):
        with self.lock:
            return sum(1 for e in self.events if kind in e)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        """SIGTERM is not handled by the script: use kill, then let the group expire it."""
        self.kill()


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_members_share_partitions_and_failover_moves_them(tmp_path):
    broker = Broker(tmp_path, extra=["group.initial.rebalance.delay.ms=0"]).start()
    try:
        create_topic(broker, "shared", partitions=12)
        produce(broker, "shared", 3000, prefix="a")
        members = [Member(broker, "shared", "g-failover") for _ in range(3)]

        def balanced():
            assignments = [m.assignment() for m in members]
            flat = sorted(p for a in assignments for p in a)
            return flat == list(range(12)) and all(assignments)

        wait_until(balanced, 60, "12 partitions spread over 3 members")
        wait_until(lambda: sum(len(m.records()) for m in members) >= 3000, 60, "first 3000 records consumed")

        victim, survivors = members[0], members[1:]
        victim_partitions = victim.assignment()
        victim.kill()  # no LeaveGroup: the coordinator must notice the expired session
        produce(broker, "shared", 3000, prefix="b")
        wait_until(lambda: sorted(p for m in survivors for p in m.assignment()) == list(range(12)), 30,
                   "the victim's partitions to move to the survivors")
        assert victim_partitions, "the victim had partitions"
        expected = {f"a{i}" for i in range(3000)} | {f"b{i}" for i in range(3000)}
        wait_until(lambda: expected <= {v for m in members for _, _, v in m.records()}, 60, "every record consumed")
        # Duplicates only come from records the victim consumed but had not committed.
        seen = [(p, o) for m in members for p, o, _ in m.records()]
        duplicates = len(seen) - len(set(seen))
        assert duplicates <= 200, duplicates
        for m in survivors:
            m.kill()
    finally:
        broker.kill()


def test_consumer_groups_tool_describe_reset_delete_and_restart(tmp_path):
    broker = Broker(tmp_path, extra=["group.initial.rebalance.delay.ms=0"]).start()
    try:
        create_topic(broker, "described", partitions=6)
        produce(broker, "described", 600)
        members = [Member(broker, "described", "g-tool") for _ in range(3)]
        wait_until(lambda: sum(len(m.records()) for m in members) >= 600, 60, "600 records consumed")
        wait_until(lambda: all(m.assignment() for m in members), 30, "every member assigned")
        produce(broker, "described", 60, prefix="late")  # lag appears once consumers stop
        time.sleep(1)

        rows = describe_rows(broker, "g-tool")
        assert sorted(int(r["PARTITION"]) for r in rows) == list(range(6))
        assert len({r["CONSUMER-ID"] for r in rows}) == 3
        for r in rows:
            assert int(r["LAG"]) == int(r["LOG-END-OFFSET"]) - int(r["CURRENT-OFFSET"])
        out = consumer_groups(broker, "--list")
        assert "g-tool" in out.stdout.split()

        for m in members:
            m.kill()
        # Killed members leave by session expiry (6 s); then the group is empty.
        def empty():
            out = consumer_groups(broker, "--describe", "--group", "g-tool")
            return "has no active members" in out.stdout + out.stderr

        wait_until(empty, 30, "the group to become empty")
        committed = {int(r["PARTITION"]): int(r["CURRENT-OFFSET"]) for r in describe_rows(broker, "g-tool")}
        assert sum(committed.values()) >= 600

        # Committed offsets survive kill -9 of the broker.
        broker.kill()
        broker.start()
        after = {int(r["PARTITION"]): int(r["CURRENT-OFFSET"]) for r in describe_rows(broker, "g-tool")}
        assert after == committed

        out = consumer_groups(broker, "--reset-offsets", "--to-earliest", "--execute", "--group", "g-tool", "--topic", "described")
        assert out.returncode == 0, out.stderr
        assert all(int(r["CURRENT-OFFSET"]) == 0 for r in describe_rows(broker, "g-tool"))

        out = consumer_groups(broker, "--delete", "--group", "g-tool")
        assert out.returncode == 0, out.stderr
        assert "g-tool" not in consumer_groups(broker, "--list").stdout.split()
    finally:
        broker.kill()


def test_static_member_restart_keeps_assignment_without_rebalance(tmp_path):
    broker = Broker(tmp_path, extra=["group.initial.rebalance.delay.ms=0"]).start()
    try:
        create_topic(broker, "static", partitions=4)
        a = Member(broker, "static", "g-static", instance_id="instance-a")
        b = Member(broker, "static", "g-static", instance_id="instance-b")
        wait_until(lambda: sorted(a.assignment() + b.assignment()) == [0, 1, 2, 3] and a.assignment() and b.assignment(),
                   60, "both static members assigned")
        time.sleep(2)
        before_a, b_events, b_revokes = a.assignment(), b.count("assigned"), b.count("revoked")
        a.kill()
        a2 = Member(broker, "static", "g-static", instance_id="instance-a")
        wait_until(lambda: a2.assignment(), 30, "the restarted static member to get its partitions")
        assert a2.assignment() == before_a
        time.sleep(3)
        assert b.count("assigned") == b_events, "the other member must not rebalance"
        assert b.count("revoked") == b_revokes
        a2.kill()
        b.kill()
    finally:
        broker.kill()


def test_membership_survives_broker_kill_9(tmp_path):
    broker = Broker(tmp_path, extra=["group.initial.rebalance.delay.ms=0"]).start()
    try:
        create_topic(broker, "steady", partitions=2)
        member = Member(broker, "steady", "g-steady", seconds=60)
        wait_until(lambda: member.assignment() == [0, 1], 30, "assignment")
        produce(broker, "steady", 100)
        wait_until(lambda: len(member.records()) >= 100, 30, "first records")
        assigned_before = member.count("assigned")
        broker.kill()
        broker.start()
        produce(broker, "steady", 100, prefix="after")
        wait_until(lambda: {f"after{i}" for i in range(100)} <= {v for _, _, v in member.records()}, 60,
                   "records produced after the restart")
        # The member kept its membership: no new assignment was needed.
        assert member.count("assigned") == assigned_before
        member.kill()
    finally:
        broker.kill()


def test_kafka_python_group_consumer_and_admin(tmp_path):
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient

    broker = Broker(tmp_path, extra=["group.initial.rebalance.delay.ms=0"]).start()
    try:
        create_topic(broker, "kp-group", partitions=3)
        produce(broker, "kp-group", 300)
        consumer = KafkaConsumer("kp-group", bootstrap_servers=broker.bootstrap, group_id="kp-g",
                                 auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=15000)
        values = set()
        for message in consumer:
            values.add(message.value.decode())
            if len(values) == 300:
                break
        consumer.commit()
        assert values == {f"r{i}" for i in range(300)}

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        listed = admin.list_groups()
        assert {"group_id": "kp-g", "protocol_type": "consumer", "group_state": "Stable", "group_type": "classic"} in listed
        described = admin.describe_groups(["kp-g"])["kp-g"]
        assert described["group_state"] == "Stable"
        assert described["protocol_data"] == "range"
        assert len(described["members"]) == 1
        offsets = admin.list_group_offsets({"kp-g": None})["kp-g"]
        assert sorted(tp.partition for tp in offsets) == [0, 1, 2]
        assert sum(o.offset for o in offsets.values()) == 300
        admin.close()
        consumer.close()
    finally:
        broker.kill()


def test_java_cooperative_sticky_members_join_and_leave(tmp_path):
    broker = Broker(tmp_path, extra=["group.initial.rebalance.delay.ms=0"]).start()
    try:
        create_topic(broker, "churn", partitions=10)
        classes = compile_java(tmp_path, "CooperativeChurn.java")
        out = run_java_program(classes, "CooperativeChurn", broker.bootstrap, "churn", "20000")
        assert out.returncode == 0 and "OK 20000" in out.stdout, out.stdout + out.stderr[-3000:] + broker.log_tail()
    finally:
        broker.kill()
