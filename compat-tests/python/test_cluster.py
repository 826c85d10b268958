"""Cluster mode: three brokers sharing metadata in etcd, replicating partitions.

These are acceptance tests driven only by real clients and process signals:

- test_replicated_topic_spreads_leaders_and_full_isr: `kafka-topics` creates RF=3 topics
  whose replicas and leaders are spread evenly and whose ISR fills; every broker
  advertises the whole cluster; a replication factor above the broker count is refused.
- test_acks_all_survives_leader_kills: an idempotent acks=all Java producer keeps going
  while partition leaders are killed with SIGKILL five times; nothing acknowledged is
  lost, reordered or duplicated.
- test_min_insync_replicas: with one replica left in sync, acks=all produce is refused
  with NOT_ENOUGH_REPLICAS and an acks=1 record stays above the high watermark (KIP-966);
  once a second replica is back in sync the high watermark passes it and acks=all succeeds.
- test_partitioned_follower_leaves_and_rejoins_isr: a frozen (SIGSTOP) follower drops out
  of the ISR after replica.lag.time.max.ms, catches up and rejoins after SIGCONT, and then
  holds exactly the records the leader holds.
- test_controller_failover_and_group_coordinator_failover: killing the controller elects
  another with a higher epoch, which `kafka-metadata-quorum describe` shows; killing a
  consumer group's coordinator loses no record and no committed offset.
- test_etcd_restart_under_load: etcd down for five seconds does not interrupt produce or
  consume, and the cluster is whole again afterwards.
- test_transactions_span_partitions_led_by_other_brokers: a consume-transform-produce copy
  whose transactions touch partitions (and a `__consumer_offsets` partition) led by all
  three brokers: the coordinator's markers reach the other leaders (WriteTxnMarkers) and
  read_committed sees every record exactly once; aborted transactions stay invisible.
- test_preferred_leaders_return_with_kafka_leader_election: after a broker comes back,
  `kafka-leader-election --election-type PREFERRED` moves leadership back to the preferred
  replicas.
- test_a_partition_joins_a_transaction_only_once_the_transaction_log_replicas_have_it and
  test_a_group_is_assigned_only_once_the_offsets_log_replicas_have_it: with the followers
  of the coordinator's log partition paused, AddPartitionsToTxn and SyncGroup are not
  answered until they have the write.
- test_markers_are_written_only_once_the_transaction_log_replicas_have_the_decision: with
  the followers of the transaction's log partition paused, EndTxn writes no marker (the
  read_committed last stable offset stays put) until they have the PrepareCommit state.
- test_a_member_leaves_only_once_the_offsets_log_replicas_have_the_emptied_group: with the
  followers of the group's offsets log partition paused, the last member's LeaveGroup is
  not answered until they have the emptied group.
- test_a_leader_restarted_within_its_session_leads_again_only_under_a_new_epoch: a leader
  killed and restarted while the controller saw nothing does not take up its old
  leadership; the controller, seeing its new registration, moves it under a new epoch.
- test_an_early_metadata_request_does_not_create_the_coordinators_logs: a Metadata request
  for `__consumer_offsets` / `__transaction_state` before the controller created them does
  not auto-create them with the topic defaults.
"""

import collections
import concurrent.futures
import re
import socket
import struct
import subprocess
import threading
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import NewTopic

from cluster import Cluster, read_partitions, wait_for
from conftest import JAVA_LIB, compile_java, java, kafka_topics, run_java_program

DESCRIBE_LINE = re.compile(
    r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+|none)\s+Replicas:\s*([\d,]*)\s+Isr:\s*([\d,]*)")


def ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def topic_command_partitions(broker, topic) -> dict[int, dict]:
    """`kafka-topics --describe` parsed into {partition: {"leader", "replicas", "isr"}}."""
    out = kafka_topics(broker, "--describe", "--topic", topic)
    assert out.returncode == 0, out.stdout + out.stderr
    partitions = {}
    for match in DESCRIBE_LINE.finditer(out.stdout):
        partition, leader, replicas, isr = match.groups()
        partitions[int(partition)] = {"leader": -1 if leader == "none" else int(leader),
                                      "replicas": ids(replicas), "isr": ids(isr)}
    return partitions


def snapshot(message) -> tuple:
    """What a replica stores for a record, as a consumer sees it."""
    return message.offset(), message.key(), message.value(), message.timestamp(), message.headers()


def produce_all(bootstrap, topic, values, partition=0, **config) -> list:
    """Produces `values` (keys k<value>) and returns the delivery errors."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)

    for v in values:
        producer.produce(topic, key=f"k{v}".encode(), value=str(v).encode(), partition=partition,
                         on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    return errors


def test_replicated_topic_spreads_leaders_and_full_isr(tmp_path):
    with Cluster(tmp_path) as cluster:
        # Every broker, asked alone, advertises all three at their own addresses.
        expected = {n: ("127.0.0.1", cluster.broker(n).port) for n in (1, 2, 3)}
        for n in (1, 2, 3):
            bootstrap = cluster.broker(n).bootstrap
            wait_for(lambda: cluster.brokers_in_metadata(bootstrap) == expected, 15, f"broker {n} to list {expected}",
                     show=lambda: cluster.brokers_in_metadata(bootstrap))

        created = kafka_topics(cluster.broker(1), "--create", "--topic", "spread", "--partitions", "12",
                               "--replication-factor", "3")
        assert created.returncode == 0, created.stdout + created.stderr + cluster.log_tails()

        def described_with_full_isr():
            partitions = topic_command_partitions(cluster.broker(2), "spread")
            full = len(partitions) == 12 and all(sorted(p["isr"]) == [1, 2, 3] for p in partitions.values())
            return partitions if full else None

        partitions = wait_for(described_with_full_isr, 20, "kafka-topics to show 12 partitions with ISR 1,2,3",
                              show=lambda: topic_command_partitions(cluster.broker(2), "spread"))
        assert sorted(partitions) == list(range(12))
        for p in partitions.values():
            assert sorted(p["replicas"]) == [1, 2, 3], partitions
            assert p["leader"] in p["replicas"], partitions
        assert collections.Counter(p["leader"] for p in partitions.values()) == {1: 4, 2: 4, 3: 4}, partitions
        # The same picture through librdkafka's Metadata.
        described = cluster.describe("spread")
        assert {n: (d["leader"], sorted(d["isr"])) for n, d in described.items()} == \
            {n: (p["leader"], [1, 2, 3]) for n, p in partitions.items()}

        # Four replicas cannot be placed on three brokers.
        admin = cluster.admin()
        try:
            admin.create_topics([NewTopic("too-many", num_partitions=1, replication_factor=4)])["too-many"].result(30)
            raise AssertionError("a topic with replication factor 4 was created on 3 brokers")
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR, e
            assert e.args[0].name() == "INVALID_REPLICATION_FACTOR", e


def test_acks_all_survives_leader_kills(tmp_path):
    count, partitions, rate = 200_000, 6, 4_000  # sends last ~50 s: the five kills land inside
    with Cluster(tmp_path) as cluster:
        cluster.create_topic("kills", partitions, config={"min.insync.replicas": "2"})
        classes = compile_java(tmp_path, "ClusterProducer.java")
        out_path, err_path = tmp_path / "producer.out", tmp_path / "producer.err"
        started = time.time()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            producer = subprocess.Popen(
                ["java", "-Xmx512m", "-cp", f"{classes}:{JAVA_LIB}/*", "ClusterProducer", cluster.bootstrap,
                 "kills", str(count), str(rate)],
                stdout=out, stderr=err)
        try:
            for _ in range(5):
                victim = cluster.leader_of("kills", 0)
                assert producer.poll() is None, "the producer finished before the kills: " + err_path.read_text()[-2000:]
                cluster.kill(victim)
                time.sleep(2)  # down long enough for its session to expire and leadership to move
                cluster.start(victim)
                time.sleep(3)  # serving again, catching up before the next kill
            try:
                producer.wait(timeout=max(1, 150 - (time.time() - started)))
            except subprocess.TimeoutExpired:
                raise AssertionError("the producer did not finish within 150 s: "
                                     + err_path.read_text()[-2000:] + cluster.log_tails()) from None
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()

        lines = out_path.read_text().splitlines()
        assert producer.returncode == 0 and lines and lines[-1].startswith("DONE"), \
            (producer.returncode, lines[-3:], err_path.read_text()[-3000:])
        acked = {}  # value -> (partition, offset)
        errors = []
        for line in lines:
            kind, *fields = line.split(" ", 3)
            if kind == "ACK":
                partition, offset, value = map(int, fields)
                assert value not in acked, f"{value} acknowledged twice"
                acked[value] = (partition, offset)
            elif kind == "ERR":
                errors.append(line)

        # Wait until the (possibly new) leaders expose everything that was acknowledged.
        acked_end = collections.defaultdict(int)
        for partition, offset in acked.values():
            acked_end[partition] = max(acked_end[partition], offset + 1)
        reader = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "watermarks"})
        try:
            wait_for(lambda: all(reader.get_watermark_offsets(TopicPartition("kills", p), timeout=5)[1] >= end
                                 for p, end in acked_end.items()),
                     30, "high watermarks to reach every acknowledged offset")
        finally:
            reader.close()

        records = read_partitions(cluster.bootstrap, "kills", range(partitions))
        stored = {(p, m.offset()): int(m.value()) for p, ms in records.items() for m in ms}
        lost = [(v, at, stored.get(at)) for v, at in sorted(acked.items()) if stored.get(at) != v]
        assert not lost, f"{len(lost)} acknowledged records lost or moved (value, (partition, offset), found): {lost[:10]}"
        for p, ms in records.items():
            values = [int(m.value()) for m in ms]
            backwards = [(a, b) for a, b in zip(values, values[1:]) if b <= a]
            assert not backwards, f"partition {p} out of order: {backwards[:10]}"
            assert all(v % partitions == p for v in values), f"partition {p} holds another partition's values"
        counts = collections.Counter(stored.values())
        duplicates = [v for v, c in counts.items() if c > 1]
        assert not duplicates, f"{len(duplicates)} values stored twice: {sorted(duplicates)[:10]}"
        # Retriable errors during failovers are retried within delivery.timeout.ms: none surface.
        assert not errors, f"{len(errors)} sends failed: {errors[:10]}"
        assert len(acked) == count


def test_min_insync_replicas(tmp_path):
    with Cluster(tmp_path) as cluster:
        cluster.create_topic("mir", 1, config={"min.insync.replicas": "2"})
        leader = cluster.leader_of("mir", 0)
        followers = [n for n in (1, 2, 3) if n != leader]
        survivor = cluster.broker(leader).bootstrap
        for n in followers:
            cluster.kill(n)

        # The leader stays leader and shrinks the ISR to itself.
        wait_for(lambda: cluster.describe("mir", survivor)[0]["isr"] == [leader], 20,
                 f"the ISR to shrink to [{leader}]", show=lambda: cluster.describe("mir", survivor))
        assert cluster.describe("mir", survivor)[0]["leader"] == leader

        # No retries: the delivery report carries the broker's answer to the first attempt.
        errors = produce_all(survivor, "mir", [0], acks="all", retries=0, **{"message.timeout.ms": 5000})
        assert [e.code() for e in errors] == [KafkaError.NOT_ENOUGH_REPLICAS], errors
        # acks=1 is taken, but under min.insync.replicas the high watermark stands still
        # (KIP-966): no consumer sees a record that only one broker holds.
        assert produce_all(survivor, "mir", [1], acks=1) == []
        reader = Consumer({"bootstrap.servers": survivor, "group.id": "mir-watermarks"})
        try:
            time.sleep(1)
            assert reader.get_watermark_offsets(TopicPartition("mir", 0), timeout=10) == (0, 0)

            cluster.start(followers[0])
            wait_for(lambda: sorted(cluster.describe("mir")[0]["isr"]) == sorted([leader, followers[0]]), 30,
                     "the restarted follower to rejoin the ISR", show=lambda: cluster.describe("mir"))
            wait_for(lambda: reader.get_watermark_offsets(TopicPartition("mir", 0), timeout=5) == (0, 1), 15,
                     "the high watermark to pass the acks=1 record")
        finally:
            reader.close()
        assert produce_all(cluster.live_bootstrap, "mir", [2], acks="all", **{"message.timeout.ms": 30000}) == []


def test_partitioned_follower_leaves_and_rejoins_isr(tmp_path):
    # The follower is frozen longer than replica.lag.time.max.ms but well within its etcd
    # session, so it is the replica lag, not a lost registration, that drops it from the ISR.
    with Cluster(tmp_path, extra=("replica.lag.time.max.ms=3000", "broker.session.timeout.ms=30000")) as cluster:
        # min.insync.replicas=1: the follower, left alone at the end, may move its high
        # watermark (under min.insync.replicas it stands still, KIP-966).
        cluster.create_topic("lagging", 1, config={"min.insync.replicas": "1"})
        leader = cluster.leader_of("lagging", 0)
        # Freeze a follower that is not the controller, so that only replication stalls.
        controller = cluster.controller()
        follower, third = sorted((n for n in (1, 2, 3) if n != leader),
                                 key=lambda n: controller is not None and n == controller[1])
        live = f"{cluster.broker(leader).bootstrap},{cluster.broker(third).bootstrap}"

        assert produce_all(cluster.bootstrap, "lagging", range(0, 500), acks="all") == []
        cluster.pause(follower)
        try:
            producer = Producer({"bootstrap.servers": live, "acks": 1, "linger.ms": 5})
            failed = []

            def delivered(err, msg):
                if err is not None:
                    failed.append(err)

            sent, end = 500, time.time() + 6
            while time.time() < end:
                producer.produce("lagging", key=f"k{sent}".encode(), value=str(sent).encode(), partition=0,
                                 on_delivery=delivered)
                sent += 1
                producer.poll(0.005)  # paces the sends
            assert producer.flush(30) == 0 and not failed, failed
            wait_for(lambda: sorted(cluster.describe("lagging", live)[0]["isr"]) == sorted([leader, third]), 10,
                     f"follower {follower} to leave the ISR", show=lambda: cluster.describe("lagging", live))
        finally:
            cluster.resume(follower)
        wait_for(lambda: sorted(cluster.describe("lagging")[0]["isr"]) == [1, 2, 3], 30,
                 f"follower {follower} to rejoin the ISR", show=lambda: cluster.describe("lagging"))
        # acks=all now includes the rejoined follower: it holds everything up to here.
        assert produce_all(cluster.bootstrap, "lagging", range(sent, sent + 500), acks="all") == []
        total = sent + 500

        from_leader = [snapshot(m) for m in read_partitions(live, "lagging", [0])[0]]
        assert [o for o, *_ in from_leader] == list(range(total))

        # A consumer reads only from leaders, so make the follower the leader: with the
        # other two replicas gone it is the only one left in the ISR (no unclean election).
        # Reading through it then compares what the follower stored with what the leader
        # stored: offsets, keys, values, timestamps and headers.
        cluster.kill(leader)
        cluster.kill(third)
        only = cluster.broker(follower).bootstrap
        wait_for(lambda: cluster.describe("lagging", only)[0]["leader"] == follower, 60,
                 f"the rejoined follower {follower} to become leader", show=lambda: cluster.describe("lagging", only))
        reader = Consumer({"bootstrap.servers": only, "group.id": "watermark"})
        try:
            wait_for(lambda: reader.get_watermark_offsets(TopicPartition("lagging", 0), timeout=5)[1] == total, 15,
                     f"the new leader's high watermark to reach {total}")
        finally:
            reader.close()
        from_follower = [snapshot(m) for m in read_partitions(only, "lagging", [0])[0]]
        assert len(from_follower) == len(from_leader)
        assert from_follower == from_leader


def test_controller_failover_and_group_coordinator_failover(tmp_path):
    with Cluster(tmp_path, extra=("group.initial.rebalance.delay.ms=0",)) as cluster:
        epoch, controller = wait_for(cluster.controller, 15, "a controller election")
        cluster.kill(controller)

        def newer():
            latest = cluster.controller()
            return latest if latest[0] > epoch and latest[1] != controller else None

        new_epoch, new_controller = wait_for(newer, 15, f"another broker to take over from controller {controller}",
                                             show=cluster.elections)
        assert new_controller in cluster.live()

        # kafka-metadata-quorum (DescribeQuorum) shows the new controller and its epoch.
        def quorum_status():
            out = java("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-server",
                       cluster.broker(new_controller).bootstrap, "describe", "--status")
            fields = dict(re.findall(r"^(\w+):\s+(.*)$", out.stdout, re.M))
            wanted = (fields.get("LeaderId"), fields.get("LeaderEpoch")) == (str(new_controller), str(new_epoch))
            return fields if wanted else None

        status = wait_for(quorum_status, 30, "kafka-metadata-quorum to show the new controller")
        assert re.search(rf'"id": {new_controller}\b', status["CurrentVoters"]), status
        observers = {int(i) for i in re.findall(r'"id": (\d+)', status["CurrentObservers"])}
        assert observers == set(cluster.live()) - {new_controller}, status
        cluster.start(controller)

        # Group coordinator failover.
        total, group = 3000, "failover-group"
        cluster.create_topic("orders", 6)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
        end_offsets = collections.defaultdict(int)
        failed = []

        def delivered(err, msg):
            if err is not None:
                failed.append(err)
            else:
                end_offsets[msg.partition()] = max(end_offsets[msg.partition()], msg.offset() + 1)

        for i in range(total):
            producer.produce("orders", key=str(i).encode(), value=str(i).encode(), on_delivery=delivered)
            producer.poll(0)
        assert producer.flush(60) == 0 and not failed, failed
        assert sum(end_offsets.values()) == total, dict(end_offsets)

        seen = set()
        lock = threading.Lock()
        resume = threading.Event()  # consumers hold at half way until the coordinator is killed
        stop = threading.Event()
        failures = []

        def consume():
            consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                                 "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                 "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
            try:
                consumer.subscribe(["orders"])
                uncommitted = False
                while not stop.is_set():
                    with lock:
                        hold = len(seen) >= total // 2 and not resume.is_set()
                    if hold:
                        # Not polling for a few seconds is fine: librdkafka heartbeats in the
                        # background and max.poll.interval.ms is 5 minutes.
                        resume.wait(0.1)
                    else:
                        msgs = [m for m in consumer.consume(num_messages=100, timeout=0.2) if m.error() is None]
                        with lock:
                            seen.update(int(m.value()) for m in msgs)
                        uncommitted = uncommitted or bool(msgs)
                    if uncommitted:
                        try:
                            consumer.commit(asynchronous=False)
                            uncommitted = False
                        except KafkaException as e:
                            # A failing coordinator or a rebalance: try again after the next poll.
                            if e.args[0].code() == KafkaError._NO_OFFSET:
                                uncommitted = False
            except Exception as e:  # noqa: BLE001 - reported by the test thread
                failures.append(e)
            finally:
                consumer.close()

        consumers = [threading.Thread(target=consume, daemon=True) for _ in range(2)]
        for t in consumers:
            t.start()
        admin = cluster.admin(cluster.bootstrap)
        try:
            wait_for(lambda: len(seen) >= total // 2, 60, "half of the records consumed")
            # Its offsets partition must keep two in-sync replicas once the coordinator dies.
            cluster.wait_for_full_isr("__consumer_offsets", len(cluster.describe("__consumer_offsets")))
            coordinator = admin.describe_consumer_groups([group])[group].result(timeout=15).coordinator.id
            cluster.kill(coordinator)
            resume.set()

            wait_for(lambda: len(seen) == total, 60, "every record consumed after the coordinator failover",
                     show=lambda: f"{len(seen)} consumed")
            assert seen == set(range(total))

            def committed():
                request = [ConsumerGroupTopicPartitions(group)]
                result = admin.list_consumer_group_offsets(request)[group].result(timeout=10)
                return {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == "orders"}

            wait_for(lambda: committed() == dict(end_offsets), 30,
                     f"committed offsets to reach the end offsets {dict(end_offsets)}", show=committed)
        finally:
            stop.set()
            for t in consumers:
                t.join(timeout=30)
        assert not failures, failures


def test_etcd_restart_under_load(tmp_path):
    with Cluster(tmp_path) as cluster:
        cluster.create_topic("steady", 3)
        sent, acked, errors, consumed = [0], [], [], []
        stop_consuming = threading.Event()

        def produce():
            producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                                 "linger.ms": 5, "message.timeout.ms": 30000})

            def delivered(err, msg):
                if err is not None:
                    errors.append(err)
                else:
                    acked.append(int(msg.value()))

            end = time.time() + 20
            while time.time() < end:
                producer.produce("steady", value=str(sent[0]).encode(), partition=sent[0] % 3, on_delivery=delivered)
                sent[0] += 1
                producer.poll(0.01)  # paces the sends to ~100 a second
            if producer.flush(40) != 0:
                errors.append("flush timed out")

        def consume():
            consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "etcd-outage-reader",
                                 "enable.auto.commit": False})
            try:
                consumer.assign([TopicPartition("steady", p, OFFSET_BEGINNING) for p in range(3)])
                while not stop_consuming.is_set():
                    consumed.extend(int(m.value()) for m in consumer.consume(num_messages=500, timeout=0.2)
                                    if m.error() is None)
            finally:
                consumer.close()

        producer, consumer = threading.Thread(target=produce, daemon=True), threading.Thread(target=consume, daemon=True)
        producer.start()
        consumer.start()
        try:
            wait_for(lambda: len(acked) >= 100 and len(consumed) >= 100, 15, "traffic before the outage")

            cluster.etcd.stop()
            outage_end = time.time() + 5
            acked_before, consumed_before = len(acked), len(consumed)
            # Every broker still answers Metadata with a leader for each partition.
            for n in (1, 2, 3):
                described = cluster.describe("steady", cluster.broker(n).bootstrap)
                assert sorted(described) == [0, 1, 2] and all(p["leader"] in (1, 2, 3) for p in described.values()), \
                    (n, described)
            time.sleep(max(0.0, outage_end - time.time()))  # the rest of the outage
            acked_during, consumed_during = len(acked) - acked_before, len(consumed) - consumed_before
            cluster.etcd.start()
            acked_at_restart = len(acked)

            producer.join(timeout=70)
            assert not producer.is_alive(), "the producer did not finish"
            wait_for(lambda: set(acked) <= set(consumed), 20, "every acknowledged record to be consumed")
        finally:
            stop_consuming.set()
            consumer.join(timeout=30)

        assert acked_during > 0, "no acks=all produce was acknowledged while etcd was down"
        assert consumed_during > 0, "nothing was consumed while etcd was down"
        assert len(acked) > acked_at_restart, "nothing was acknowledged after etcd came back"
        assert not errors, errors[:10]
        assert sorted(acked) == list(range(sent[0]))
        assert cluster.live() == [1, 2, 3], cluster.log_tails()
        expected = {n: ("127.0.0.1", cluster.broker(n).port) for n in (1, 2, 3)}
        for n in (1, 2, 3):
            bootstrap = cluster.broker(n).bootstrap
            wait_for(lambda: cluster.brokers_in_metadata(bootstrap) == expected, 20,
                     f"broker {n} to list {expected} after the outage", show=lambda: cluster.brokers_in_metadata(bootstrap))


def test_preferred_leaders_return_with_kafka_leader_election(tmp_path):
    # The controller's own periodic rebalance is off, so only the tool can move leaders back.
    with Cluster(tmp_path, extra=("auto.leader.rebalance.enable=false",)) as cluster:
        cluster.create_topic("preferred", 6)
        before = cluster.describe("preferred")
        preferred = {p: d["replicas"][0] for p, d in before.items()}
        assert all(d["leader"] == preferred[p] for p, d in before.items()), before

        victim = preferred[0]
        cluster.kill(victim)
        moved = wait_for(lambda: (d := cluster.describe("preferred", cluster.live_bootstrap))
                         and all(p["leader"] not in (victim, -1) for p in d.values()) and d,
                         20, f"leadership to leave broker {victim}")
        assert all(p["leader"] != victim for p in moved.values())
        cluster.start(victim)
        cluster.wait_for_full_isr("preferred", 6)
        # Back in sync, but still not leading: nothing moves leadership on its own here.
        assert all(d["leader"] != victim for d in cluster.describe("preferred").values() if d["replicas"][0] == victim)

        out = java("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", cluster.bootstrap,
                   "--election-type", "PREFERRED", "--all-topic-partitions")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Successfully completed leader election (PREFERRED)" in out.stdout, out.stdout + out.stderr
        after = wait_for(lambda: (d := cluster.describe("preferred"))
                         and all(p["leader"] == preferred[n] for n, p in d.items()) and d,
                         15, "every partition led by its preferred replica", show=lambda: cluster.describe("preferred"))
        assert {p: d["leader"] for p, d in after.items()} == preferred

        # Asked again, nothing needs electing.
        again = java("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", cluster.bootstrap,
                     "--election-type", "PREFERRED", "--topic", "preferred", "--partition", "0")
        assert "Valid replica already elected for partitions" in again.stdout + again.stderr, again.stdout + again.stderr


def test_transactions_span_partitions_led_by_other_brokers(tmp_path):
    total, partitions = 6_000, 3
    with Cluster(tmp_path) as cluster:
        for topic in ("txn-in", "txn-out", "txn-alt"):
            cluster.create_topic(topic, partitions)
        leaders = {cluster.describe("txn-out")[p]["leader"] for p in range(partitions)}
        assert leaders == {1, 2, 3}, cluster.describe("txn-out")
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(total):
            producer.produce("txn-in", value=f"r{i}".encode(), partition=i % partitions)
            producer.poll(0)
        assert producer.flush(60) == 0

        classes = compile_java(tmp_path, "Transactions.java")
        # Whichever broker coordinates the transactional id, two of the three output
        # partitions have another leader: their markers go through WriteTxnMarkers.
        out = run_java_program(classes, "Transactions", "copy", cluster.bootstrap, "txn-in", "txn-out",
                               "txn-copier", "txn-copier", str(total // partitions), timeout=240)
        assert out.returncode == 0 and "OK copied" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]

        reader = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "txn-reader",
                           "isolation.level": "read_committed", "enable.auto.commit": False})
        values = []
        try:
            reader.assign([TopicPartition("txn-out", p, OFFSET_BEGINNING) for p in range(partitions)])
            deadline = time.time() + 60
            while len(values) < total and time.time() < deadline:
                values += [m.value().decode() for m in reader.consume(1000, timeout=0.5) if m.error() is None]
            # Anything past `total` would be a duplicate.
            values += [m.value().decode() for m in reader.consume(1000, timeout=2) if m.error() is None]
        finally:
            reader.close()
        assert sorted(values, key=lambda v: int(v[1:])) == [f"r{i}" for i in range(total)]
        committed = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "txn-copier",
                              "isolation.level": "read_committed"})
        try:
            offsets = committed.committed([TopicPartition("txn-in", p) for p in range(partitions)], timeout=15)
        finally:
            committed.close()
        assert [tp.offset for tp in offsets] == [total // partitions] * partitions, offsets

        # Alternately committed and aborted transactions on a partition whose leader may be
        # another broker than the coordinator: read_committed sees the committed half only.
        out = run_java_program(classes, "Transactions", "alternate", cluster.bootstrap, "txn-alt", "40", timeout=240)
        assert out.returncode == 0 and "OK committed=200 all=400" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]


def java_partition(key: str, partitions: int) -> int:
    """Kafka's coordinator partition of a key: `Utils.abs(key.hashCode()) % partitions`."""
    h = 0
    for ch in key:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def log_partition_replicas(cluster: Cluster, log_topic: str, key: str) -> tuple[int, list[int]]:
    """The leader (the coordinator of `key`) and the two followers of `key`'s partition of a
    coordinator log (`__consumer_offsets` / `__transaction_state`), once the controller has
    created the log with every replica in sync."""
    log = cluster.wait_for_full_isr(log_topic, 50)[java_partition(key, 50)]
    coordinator = log["leader"]
    followers = [r for r in log["replicas"] if r != coordinator]
    assert len(followers) == 2, log
    return coordinator, followers


def topic_on(cluster: Cluster, name: str, node: int):
    """A one-partition topic whose only replica is on `node`: pausing other brokers then
    holds back only the coordinator logs, never the data partition."""
    admin = cluster.admin()  # must outlive its futures
    new = NewTopic(name, num_partitions=1, replica_assignment=[[node]], config={"min.insync.replicas": "1"})
    admin.create_topics([new])[name].result(timeout=30)
    cluster.wait_for_full_isr(name, 1, replication_factor=1)


def test_a_partition_joins_a_transaction_only_once_the_transaction_log_replicas_have_it(tmp_path):
    """AddPartitionsToTxn is answered once `__transaction_state`'s in-sync replicas hold the
    change, so a coordinator failover cannot forget a partition of an open transaction.
    With both followers of the transaction's log partition paused, a transactional produce
    must wait (answered before, it was delivered at once); it completes once they resume."""
    transactional_id = "joins-after-replication"
    with Cluster(tmp_path) as cluster:
        coordinator, followers = log_partition_replicas(cluster, "__transaction_state", transactional_id)
        topic_on(cluster, "joined", coordinator)

        producer = Producer({"bootstrap.servers": cluster.broker(coordinator).bootstrap,
                             "transactional.id": transactional_id, "transaction.timeout.ms": 60000,
                             "message.timeout.ms": 60000})
        producer.init_transactions(30)
        producer.begin_transaction()
        delivered = []
        for node in followers:
            cluster.pause(node)
        try:
            producer.produce("joined", b"in-a-transaction", partition=0,
                             on_delivery=lambda err, msg: delivered.append(err))
            deadline = time.time() + 2
            while time.time() < deadline:
                producer.poll(0.1)
            assert delivered == [], f"delivered before the transaction log was replicated: {delivered}"
        finally:
            for node in followers:
                cluster.resume(node)
        producer.flush(60)
        assert delivered == [None], delivered
        producer.commit_transaction(60)


def test_markers_are_written_only_once_the_transaction_log_replicas_have_the_decision(tmp_path):
    """EndTxn writes the PrepareCommit state to `__transaction_state` and the commit markers
    only once the log's in-sync replicas hold that decision: a marker written first could,
    after a coordinator failover that lost the decision, be followed by the next
    coordinator's abort markers on the transaction's other partitions. With both followers
    of the transaction's log partition paused, the data partition's last stable offset must
    stay before the transaction (written before, the marker moved it at once); once they
    resume the commit completes."""
    transactional_id = "decided-after-replication"
    with Cluster(tmp_path) as cluster:
        coordinator, followers = log_partition_replicas(cluster, "__transaction_state", transactional_id)
        topic_on(cluster, "decided", coordinator)
        bootstrap = cluster.broker(coordinator).bootstrap

        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                             "transaction.timeout.ms": 60000, "message.timeout.ms": 60000})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce("decided", b"decided", partition=0)
        assert producer.flush(30) == 0
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "decided-reader",
                           "isolation.level": "read_committed"})
        partition = TopicPartition("decided", 0)
        try:
            # read_committed: the high offset is the last stable offset, before the open transaction.
            assert reader.get_watermark_offsets(partition, timeout=10) == (0, 0)
            outcome = []
            committer = threading.Thread(target=lambda: outcome.append(producer.commit_transaction(60)), daemon=True)
            for node in followers:
                cluster.pause(node)
            try:
                committer.start()
                time.sleep(2)
                assert reader.get_watermark_offsets(partition, timeout=5) == (0, 0), \
                    "a commit marker was written before the decision was replicated"
            finally:
                for node in followers:
                    cluster.resume(node)
            committer.join(60)
            assert outcome == [None], outcome
            # The record and its commit marker.
            wait_for(lambda: reader.get_watermark_offsets(partition, timeout=5) == (0, 2), 15,
                     "the commit marker", show=lambda: reader.get_watermark_offsets(partition, timeout=5))
        finally:
            reader.close()


def test_a_group_is_assigned_only_once_the_offsets_log_replicas_have_it(tmp_path):
    """SyncGroup hands out assignments once the group's `__consumer_offsets` in-sync
    replicas hold the stored group, so a coordinator failover keeps the generation its
    members consume in. With both followers of the group's offsets partition paused, a new
    consumer gets no assignment (answered before, it was assigned at once); it is assigned
    and reads once they resume."""
    group = "assigned-after-replication"
    with Cluster(tmp_path, extra=("group.initial.rebalance.delay.ms=0",)) as cluster:
        coordinator, followers = log_partition_replicas(cluster, "__consumer_offsets", group)
        topic_on(cluster, "assigned", coordinator)
        bootstrap = cluster.broker(coordinator).bootstrap
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce("assigned", b"waiting", partition=0)
        assert producer.flush(30) == 0

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        try:
            consumer.subscribe(["assigned"])
            for node in followers:
                cluster.pause(node)
            try:
                # Shorter than replica.lag.time.max.ms and the broker session: the paused
                # followers are still in the ISR and still registered.
                deadline = time.time() + 1.5
                while time.time() < deadline:
                    message = consumer.poll(0.1)
                    assert message is None or message.error(), "consumed before the group was replicated"
                assert consumer.assignment() == [], "assigned before the group was replicated"
            finally:
                for node in followers:
                    cluster.resume(node)
            values = []
            deadline = time.time() + 60
            while not values and time.time() < deadline:
                message = consumer.poll(0.5)
                if message is not None and not message.error():
                    values.append(message.value())
            assert values == [b"waiting"]
        finally:
            consumer.close()


def leave_group_v0(sock: socket.socket, group: str, member_id: str):
    """Sends LeaveGroup v0 (key 13) for `member_id` on `sock`; the answer is read separately."""
    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack(">h", len(raw)) + raw

    body = struct.pack(">hhi", 13, 0, 7) + string("raw-leave") + string(group) + string(member_id)
    sock.sendall(struct.pack(">i", len(body)) + body)


def read_error_code(sock: socket.socket) -> int:
    """Reads one response frame and returns the error code after the correlation id."""
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    size, = struct.unpack(">i", exact(4))
    correlation, error = struct.unpack(">ih", exact(size)[:6])
    assert correlation == 7
    return error


def test_a_member_leaves_only_once_the_offsets_log_replicas_have_the_emptied_group(tmp_path):
    """LeaveGroup of a group's last member empties the group, which the coordinator stores;
    as in Kafka the member is answered once the group's `__consumer_offsets` in-sync
    replicas hold that write. With both followers of that partition paused (for less than
    replica.lag.time.max.ms, so they stay in the ISR) the LeaveGroup is not answered
    (answered before, it returned at once); once they resume it succeeds."""
    group = "left-after-replication"
    with Cluster(tmp_path, extra=("group.initial.rebalance.delay.ms=0",)) as cluster:
        coordinator, followers = log_partition_replicas(cluster, "__consumer_offsets", group)
        cluster.create_topic("leaving", 1)
        bootstrap = cluster.broker(coordinator).bootstrap
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                             "session.timeout.ms": 30000})
        try:
            consumer.subscribe(["leaving"])
            wait_for(lambda: consumer.poll(0.2) is None and consumer.assignment(), 30, "the consumer's assignment")
            admin = cluster.admin(bootstrap)
            described = admin.describe_consumer_groups([group])[group].result(timeout=30)
            assert len(described.members) == 1, described.members
            member_id = described.members[0].member_id

            with socket.create_connection(("127.0.0.1", cluster.broker(coordinator).port), timeout=30) as sock:
                for node in followers:
                    cluster.pause(node)
                try:
                    leave_group_v0(sock, group, member_id)
                    sock.settimeout(1.5)
                    try:
                        early = read_error_code(sock)
                    except socket.timeout:
                        early = None
                    assert early is None, f"LeaveGroup answered ({early}) before the emptied group was replicated"
                finally:
                    for node in followers:
                        cluster.resume(node)
                sock.settimeout(30)
                assert read_error_code(sock) == 0
        finally:
            consumer.close()


def test_an_early_metadata_request_does_not_create_the_coordinators_logs(tmp_path):
    """Before the controller creates `__consumer_offsets` and `__transaction_state` (it waits
    for enough brokers for their replication factor), a client's Metadata request for them
    must not auto-create them from the topic defaults: with one partition they would stand
    in for the coordinators' 50 for good."""
    cluster = Cluster(tmp_path, extra=("default.replication.factor=1",))
    try:
        cluster.start(1)
        admin = cluster.admin(cluster.broker(1).bootstrap)
        for topic in ("__consumer_offsets", "__transaction_state"):
            described = admin.list_topics(topic, timeout=10).topics[topic]
            assert described.error is not None and not described.partitions, (topic, described.partitions)
        cluster.start(2)
        cluster.start(3)
        for topic in ("__consumer_offsets", "__transaction_state"):
            assert len(cluster.wait_for_full_isr(topic, 50)) == 50
    finally:
        cluster.stop_all()


STATE_CHANGED = re.compile(r"partition state changed.*\btopic=(\S+) partition=(\d+) leader=(-?\d+) leader_epoch=(\d+)")


def state_changes(broker, topic: str, partition: int, since: int = 0) -> list[tuple[int, int]]:
    """(leader, leader_epoch) of every `partition state changed` line the broker (as
    controller) logged for the partition, after byte `since` of its log."""
    with open(broker.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return [(int(leader), int(epoch)) for t, p, leader, epoch in STATE_CHANGED.findall(text)
            if t == topic and int(p) == partition]


def test_a_leader_restarted_within_its_session_leads_again_only_under_a_new_epoch(tmp_path):
    """KRaft fences a restarted broker by its broker epoch: a `kill -9`ed leader that comes
    back before anyone re-elected does not take up its old leadership (its page cache, and
    what it acknowledged, may be gone); the controller, seeing the new incarnation, moves
    the leadership under a new epoch and the restarted broker rejoins as a follower.

    The controller is frozen from the kill until the restarted broker is back, so it only
    ever sees the broker alive: nothing but the incarnation tells it the broker restarted.
    Broker 1 runs with a session longer than that freeze, so it is the controller
    throughout."""
    cluster = Cluster(tmp_path, extra=("broker.session.timeout.ms=30000",))
    for node_id in (2, 3):
        cluster.brokers[node_id].extra.append("broker.session.timeout.ms=3000")
    try:
        cluster.start(1)
        wait_for(lambda: cluster.controller() == (1, 1) or None, 30, "broker 1 to be elected controller")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(cluster.start, n) for n in (2, 3)]:
                f.result()
        described = cluster.create_topic("restarted", 3)
        partition, restarted = next((p, d["leader"]) for p, d in sorted(described.items()) if d["leader"] != 1)
        assert produce_all(cluster.bootstrap, "restarted", range(100), partition=partition, acks="all") == []
        controller = cluster.broker(1)
        since = controller.log_path.stat().st_size

        cluster.kill(restarted)
        cluster.pause(1)
        try:
            cluster.start(restarted)  # returns once registered again (after the old lease) and serving
            time.sleep(1)  # its own metadata sync has run
            # Nobody has re-elected yet, and the restarted broker does not lead.
            errors = produce_all(cluster.broker(restarted).bootstrap, "restarted", [1000], partition=partition,
                                 acks="1", **{"message.timeout.ms": 3000})
            assert [e.code() for e in errors] == [KafkaError._MSG_TIMED_OUT], errors
        finally:
            cluster.resume(1)

        changes = wait_for(lambda: state_changes(controller, "restarted", partition, since) or None, 20,
                           "the controller to re-elect", show=cluster.log_tails)
        leader, epoch = changes[0]
        assert leader != restarted and epoch >= 1, changes
        cluster.wait_for_full_isr("restarted", 3)
        assert [int(m.value()) for m in read_partitions(cluster.bootstrap, "restarted", [partition])[partition]] \
            == list(range(100))
    finally:
        cluster.stop_all()
