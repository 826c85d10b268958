"""Partition reassignment (KIP-455) in a three-broker cluster, driven by Kafka's own
`kafka-reassign-partitions` tool (ReassignPartitionsCommand 4.3.1):

- test_a_broker_is_decommissioned_with_the_tools_generated_plan: a 6-partition RF=2 topic on
  brokers {1,2}; `--generate` proposes moving it to {2,3}, `--execute --throttle` starts the
  move while a producer keeps writing, and the throttle holds broker 3's copying to about its
  rate (measured with `kafka-log-dirs` and printed; `--verify`: still in progress). The
  controller is killed mid-move and the next one carries on; `--execute --additional` lifts
  the throttle, `--verify` reports it done and clears the throttles. Broker 1 holds no
  replica and deleted its copies, and broker 3 alone (the other two killed) serves every
  acknowledged record, each once, so the copies it was given are complete.
- test_a_reassignment_waits_for_its_new_replica_and_can_be_cancelled: throttled to a byte
  per second the move stays in progress (`--list` shows the adding replica), `--cancel` puts
  the original replicas back and broker 3 drops its partial copy; run again without a
  throttle it completes, and broker 3 alone serves every record.
"""

import json
import re
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from cluster import Cluster, wait_for
from conftest import java

TOOL = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
# The cluster's brokers default to min.insync.replicas=2, under which a lone replica's high
# watermark stands still (KIP-966); the tests end by reading from one broker alone.
ALONE = {"min.insync.replicas": "1"}


def reassign(cluster: Cluster, *args: str, timeout: float = 120):
    return java(TOOL, "--bootstrap-server", cluster.live_bootstrap, *args, timeout=timeout)


def produce(bootstrap: str, topic: str, values: list[str]):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5})
    failures = []
    for value in values:
        producer.produce(topic, value=value.encode(),
                         on_delivery=lambda err, msg: failures.append(err) if err is not None else None)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []


def read_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 60) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                         "enable.auto.commit": False})
    values = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        wait_for(lambda: values.extend(m.value().decode() for m in consumer.consume(1000, timeout=0.5)
                                       if m.error() is None) or len(values) >= expected,
                 timeout, f"{expected} records of {topic}", interval=0)
        values.extend(m.value().decode() for m in consumer.consume(1000, timeout=1) if m.error() is None)
    finally:
        consumer.close()
    return values


class LoadProducer:
    """An idempotent acks=all producer writing `load-{i}` round-robin over the partitions
    from a thread until stopped; `acked` holds every value whose delivery report succeeded."""

    def __init__(self, bootstrap: str, topic: str, rate: int = 200):
        self.topic, self.rate = topic, rate
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 5})
        self.acked: list[str] = []
        self.failed: list = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def delivered(self, err, msg):
        if err is None:
            self.acked.append(msg.value().decode())
        else:
            self.failed.append(err)

    def run(self):
        i = 0
        while not self.stop.is_set():
            self.producer.produce(self.topic, value=f"load-{i}".encode(), on_delivery=self.delivered)
            self.producer.poll(0)
            i += 1
            time.sleep(1 / self.rate)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.producer.flush(60)


def sizes_on(cluster: Cluster, broker: int, topic: str) -> tuple[float, int]:
    """When (monotonic, after the answer) and how many bytes of `topic` `broker` holds, from
    `kafka-log-dirs --describe` (DescribeLogDirs)."""
    out = java("org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", cluster.live_bootstrap, "--describe",
               "--broker-list", str(broker), "--topic-list", topic)
    at = time.monotonic()
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    return at, sum(p["size"] for b in report["brokers"] for d in b["logDirs"] for p in d["partitions"])


def test_a_broker_is_decommissioned_with_the_tools_generated_plan(tmp_path):
    partitions = 6
    throttle = 100_000
    with Cluster(tmp_path) as cluster:
        admin = cluster.admin()
        assignment = [[1, 2] if p % 2 == 0 else [2, 1] for p in range(partitions)]
        # min.insync.replicas=1: broker 3, left alone at the end, may then move its high watermark.
        admin.create_topics([NewTopic("moving", num_partitions=partitions, replica_assignment=assignment,
                                      config=ALONE)])["moving"].result(timeout=30)
        cluster.wait_for_full_isr("moving", partitions, replication_factor=2)
        # About 3 MB for broker 3 to copy: at 100 kB/s that takes half a minute.
        before = [f"before-{i}-" + "x" * 1000 for i in range(3000)]
        produce(cluster.bootstrap, "moving", before)

        topics_file = tmp_path / "topics.json"
        topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": "moving"}]}))
        generated = reassign(cluster, "--topics-to-move-json-file", str(topics_file), "--broker-list", "2,3",
                             "--generate")
        assert generated.returncode == 0, generated.stdout + generated.stderr
        proposed = generated.stdout.split("Proposed partition reassignment configuration")[1].strip()
        plan = json.loads(proposed)
        targets = {p["partition"]: p["replicas"] for p in plan["partitions"]}
        assert all(sorted(r) == [2, 3] for r in targets.values()), plan
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(proposed)

        # A producer keeps writing through the whole move, the controller's failover included.
        with LoadProducer(cluster.bootstrap, "moving") as load:
            # Broker 3 holds nothing of the topic until the move starts.
            started = time.monotonic()
            executed = reassign(cluster, "--reassignment-json-file", str(plan_file), "--execute",
                                "--throttle", str(throttle))
            assert executed.returncode == 0, executed.stdout + executed.stderr
            assert "Successfully started partition reassignment" in executed.stdout, executed.stdout + executed.stderr

            # The throttle holds broker 3's copying to about its rate. Measured over the whole
            # time since the move started: a token bucket lets one fetch through whole and
            # then holds back for as long as it overdrew, so shorter windows swing widely.
            time.sleep(8)
            at, copied = sizes_on(cluster, 3, "moving")
            rate = copied / (at - started)
            print(f"\nthrottled copy to broker 3: {copied} bytes in {at - started:.1f} s = "
                  f"{rate / 1000:.1f} kB/s (throttle {throttle / 1000:.0f} kB/s)")
            # Unthrottled, the 3 MB would be copied in well under a second.
            assert rate < 5 * throttle, rate
            held = reassign(cluster, "--reassignment-json-file", str(plan_file), "--verify")
            assert "is still in progress" in held.stdout, held.stdout + held.stderr

            # The controller dies mid-move; the next one carries on from the state in etcd.
            epoch, controller = wait_for(cluster.controller, 15, "a controller election")
            cluster.kill(controller)
            wait_for(lambda: (c := cluster.controller()) and c[0] > epoch and c[1] != controller, 30,
                     f"another broker to take over from controller {controller}", show=cluster.log_tails)
            cluster.start(controller)
            listed = reassign(cluster, "--list")
            assert listed.returncode == 0 and "moving-" in listed.stdout, listed.stdout + listed.stderr

            lifted = reassign(cluster, "--reassignment-json-file", str(plan_file), "--execute", "--additional",
                              "--throttle", "1000000000")
            assert lifted.returncode == 0, lifted.stdout + lifted.stderr

            def verified():
                out = reassign(cluster, "--reassignment-json-file", str(plan_file), "--verify")
                assert out.returncode == 0, out.stdout + out.stderr
                done = [f"Reassignment of partition moving-{p} is completed." in out.stdout for p in range(partitions)]
                return all(done) and out.stdout

            done = wait_for(verified, 90, "the reassignment to complete", interval=1)
            time.sleep(1)
        assert load.failed == [], load.failed[:5]
        assert len(load.acked) > 1000, len(load.acked)
        assert "Clearing broker-level throttles" in done, done
        described = wait_for(lambda: (d := cluster.describe("moving"))
                             and all(sorted(p["isr"]) == [2, 3] and p["leader"] in (2, 3) for p in d.values()) and d,
                             30, "ISRs of the new replicas", show=lambda: cluster.describe("moving"))
        assert {p: d["replicas"] for p, d in described.items()} == targets, described
        # Broker 1 deleted its copies once it was no longer a replica.
        wait_for(lambda: "no longer a replica: local copy deleted" in cluster.broker(1).log_tail(400), 15,
                 "broker 1 to delete its copies", show=lambda: cluster.broker(1).log_tail(20))
        wait_for(lambda: sizes_on(cluster, 1, "moving")[1] == 0, 15, "broker 1 to hold nothing of the topic")
        listed = reassign(cluster, "--list")
        assert listed.returncode == 0 and "moving-" not in listed.stdout, listed.stdout + listed.stderr

        # Broker 3 was given its copies by the move: alone, it serves every acknowledged record.
        cluster.kill(1)
        cluster.kill(2)
        wait_for(lambda: all(p["leader"] == 3 for p in cluster.describe("moving", cluster.live_bootstrap).values()),
                 30, "broker 3 to lead every partition", show=lambda: cluster.describe("moving", cluster.live_bootstrap))
        expected = before + load.acked
        values = read_all(cluster.live_bootstrap, "moving", partitions, len(expected))
        assert sorted(set(values)) == sorted(expected)
        assert len(values) == len(set(values))


def test_a_reassignment_waits_for_its_new_replica_and_can_be_cancelled(tmp_path):
    with Cluster(tmp_path) as cluster:
        admin = cluster.admin()
        admin.create_topics([NewTopic("stuck", num_partitions=1, replica_assignment=[[1, 2]], config=ALONE)])["stuck"].result(
            timeout=30)
        cluster.wait_for_full_isr("stuck", 1, replication_factor=2)
        # Several fetches' worth, so a throttle of one byte per second holds the copy back.
        values = [f"v{i}-" + "x" * 1000 for i in range(3000)]
        produce(cluster.bootstrap, "stuck", values)
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": "stuck", "partition": 0, "replicas": [1, 2, 3], "log_dirs": ["any", "any", "any"]}]}))

        executed = reassign(cluster, "--reassignment-json-file", str(plan_file), "--execute", "--throttle", "1")
        assert executed.returncode == 0, executed.stdout + executed.stderr
        listed = reassign(cluster, "--list")
        assert re.search(r"^stuck-0: replicas: 1,2,3\. adding: 3\.$", listed.stdout, re.M), \
            listed.stdout + listed.stderr
        assert cluster.describe("stuck")[0]["replicas"] == [1, 2, 3]
        cancelled = reassign(cluster, "--reassignment-json-file", str(plan_file), "--cancel")
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert "Successfully cancelled partition reassignment for: stuck-0" in cancelled.stdout, \
            cancelled.stdout + cancelled.stderr
        after = cluster.describe("stuck")[0]
        assert (after["replicas"], sorted(after["isr"])) == ([1, 2], [1, 2]), after
        listed = reassign(cluster, "--list")
        assert "stuck-0" not in listed.stdout, listed.stdout
        # Broker 3 drops the part it had copied.
        wait_for(lambda: "no longer a replica: local copy deleted" in cluster.broker(3).log_tail(400), 15,
                 "broker 3 to delete its partial copy", show=lambda: cluster.broker(3).log_tail(20))

        # Asked again without a throttle, it completes.
        executed = reassign(cluster, "--reassignment-json-file", str(plan_file), "--execute")
        assert executed.returncode == 0, executed.stdout + executed.stderr
        wait_for(lambda: (d := cluster.describe("stuck")[0]) and sorted(d["isr"]) == [1, 2, 3]
                 and "stuck-0" not in reassign(cluster, "--list").stdout,
                 60, "the reassignment to complete", show=lambda: cluster.describe("stuck"), interval=1)
        assert cluster.describe("stuck")[0]["replicas"] == [1, 2, 3]
        cluster.kill(1)
        cluster.kill(2)
        wait_for(lambda: cluster.describe("stuck", cluster.live_bootstrap)[0]["leader"] == 3, 30,
                 "broker 3 to lead", show=lambda: cluster.describe("stuck", cluster.live_bootstrap))
        assert sorted(read_all(cluster.live_bootstrap, "stuck", 1, len(values))) == sorted(values)
