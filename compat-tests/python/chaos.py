"""A bounded fault campaign against a three-broker cluster, and a checker for its history.

What a clean run shows: while brokers are killed with SIGKILL, frozen with SIGSTOP for
longer than their etcd session, cut off from etcd (and from everyone else) by TCP proxies
on loopback for longer than their session, and etcd itself is stopped, an RF=3 topic with
min.insync.replicas=2 written by idempotent acks=all producers and read by a consumer
group that commits its offsets

  (a) loses no acknowledged record,
  (b) stores no record twice,
  (c) keeps each producer's records of a partition in the order they were sent,
  (d) holds every acknowledged record at the offset its delivery report named,
  (e) never commits a group offset beyond a partition's log end and never moves a
      committed offset backwards,

and in addition that (f) every record the group consumed is in the final log at the
offset it was consumed from (no read of data that was later truncated), (g) the group
skipped no offset, and the cluster heals: every broker is up with full ISRs afterwards.

Everything runs on 127.0.0.1 and is bounded in time: the nemesis stops after `--faults`
faults or `--duration-s` seconds, whichever comes first, and every wait afterwards has a
deadline. The fault *schedule* (kinds, roles, durations, pauses) comes from a seeded RNG;
which node a role resolves to ("the leader of partition 3") depends on the cluster's state
at that moment, so two runs of one seed inject the same faults in the same order but not
necessarily on the same nodes.

Beside them a transactional consume-transform-produce copier reads the topic and writes
each record to a copy topic, committing its input offsets in the same transactions; the
checker requires that the copy (read_committed) holds exactly the source records below the
copier's committed offsets, each once and unchanged (exactly-once).

    python chaos.py --seed 7 --faults 20 --duration-s 240
    python chaos.py --seeds 1,2,3
    python chaos.py --soak-minutes 30

A soak (`--soak-minutes M`) runs the same workloads and checks for M minutes with one
fault a minute, and in addition samples every broker's resident memory and open file
descriptors every 30 s (printed, and summarised as the growth from the fifth minute to the
end) and requires that no broker logs an ERROR once the cluster has healed. Its faults
keep the broker processes (SIGSTOP, network partitions, etcd stopped; no kill -9), so each
broker's memory and descriptors are one process's over the whole soak.

Prints one JSON summary per campaign on stdout and exits 1 if any invariant was violated
(then the tail of every broker's log is printed to stderr and the data is kept).
"""

import argparse
import collections
import faulthandler
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import (OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             Producer, TopicPartition)

from cluster import NODE_IDS, Cluster, wait_for
from conftest import free_port

TOPIC = "chaos"
PARTITIONS = 6
GROUP = "chaos-group"
COPY_TOPIC = "chaos-copy"  # the transactional copy of TOPIC
COPY_GROUP = "chaos-copier"
PRODUCERS = 3
GROUP_MEMBERS = 2
RATE_PER_PRODUCER = 150  # records a second: enough to span every fault, light on two cores
SESSION_TIMEOUT_S = 3.0  # broker.session.timeout.ms of cluster.CLUSTER_SETTINGS
GAP_S = 1.0  # no acknowledgement for longer than this counts as an unavailability window
# librdkafka logs every refused connection while a broker is down; the brokers' own logs
# are the evidence that matters, so the clients only log critical errors.
CLIENT_LOG_LEVEL = 2

# Fault kinds and their relative weights. Kills come in roles so that the leader, a
# follower, the controller and the group coordinator each die now and then.
FAULT_WEIGHTS = {"kill": 5, "pause": 3, "etcd": 2, "partition": 3}
SOAK_FAULT_WEIGHTS = {"pause": 3, "etcd": 2, "partition": 3}
SOAK_FAULT_INTERVAL_S = 60.0
RESOURCE_SAMPLE_S = 30.0
SETTLED_QUIET_S = 30.0  # after healing, how long the logs must stay free of ERROR lines
KILL_ROLES = ("leader", "follower", "controller", "coordinator", "any")


def log(message: str):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Workloads


class ProducerWorker(threading.Thread):
    """An idempotent acks=all producer writing "p{index}-{seq}" with seq = 0, 1, 2, ... to
    partition seq % PARTITIONS. Only a delivery report without an error counts as
    acknowledged. A fatal idempotence error ends the librdkafka instance; a new one (a new
    producer id) continues with the next seq, and `instances` records where each began,
    since send order is only promised within one instance."""

    def __init__(self, index: int, bootstrap: str, stop: threading.Event, t0: float):
        super().__init__(daemon=True, name=f"producer-{index}")
        self.index, self.bootstrap, self.stop, self.t0 = index, bootstrap, stop, t0
        self.acked = {}  # seq -> (partition, offset)
        self.ack_times = []  # monotonic seconds since t0, one per acknowledgement
        self.failed = collections.Counter()  # error name -> count of failed delivery reports
        self.instances = [0]  # first seq of each producer instance
        self.fatal = []  # (t, error string)
        self.sent = 0
        self.unflushed = 0
        self.error = None
        self._fatal_seen = False

    def _new_producer(self) -> Producer:
        def on_error(err):
            if err.fatal():
                self._fatal_seen = True
                self.fatal.append((round(time.monotonic() - self.t0, 1), str(err)))

        return Producer({
            "bootstrap.servers": self.bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "message.timeout.ms": 45000, "error_cb": on_error,
            # Failovers last seconds: keep retrying quickly rather than backing off to 1 s.
            "retry.backoff.max.ms": 200, "log_level": CLIENT_LOG_LEVEL,
        })

    def _delivered(self, err, msg):
        seq = int(msg.value().decode().split("-", 1)[1])
        if err is None:
            self.acked[seq] = (msg.partition(), msg.offset())
            self.ack_times.append(time.monotonic() - self.t0)
        else:
            self.failed[err.name()] += 1

    def run(self):
        try:
            producer = self._new_producer()
            period = 1.0 / RATE_PER_PRODUCER
            next_send = time.monotonic()
            while not self.stop.is_set():
                if self._fatal_seen:
                    # Outstanding records fail with _FATAL (not acknowledged); start afresh.
                    producer.flush(10)
                    self._fatal_seen = False
                    producer = self._new_producer()
                    self.instances.append(self.sent)
                seq = self.sent
                try:
                    producer.produce(TOPIC, value=f"p{self.index}-{seq}".encode(), partition=seq % PARTITIONS,
                                     on_delivery=self._delivered)
                except BufferError:
                    producer.poll(0.1)
                    continue
                except KafkaException as e:
                    if e.args[0].fatal() or e.args[0].code() == KafkaError._FATAL:
                        self._fatal_seen = True
                        continue
                    raise
                self.sent += 1
                next_send += period
                producer.poll(max(0.0, next_send - time.monotonic()))
            self.unflushed = producer.flush(60)
        except Exception as e:  # noqa: BLE001 - reported as a harness error
            self.error = repr(e)


class GroupMember(threading.Thread):
    """One member of the consumer group: reads read_committed, commits synchronously after
    every batch, and records (partition, offset, value) of everything it read."""

    def __init__(self, index: int, bootstrap: str, stop: threading.Event, consumed: list, lock: threading.Lock):
        super().__init__(daemon=True, name=f"member-{index}")
        self.bootstrap, self.stop, self.consumed, self.lock = bootstrap, stop, consumed, lock
        self.commit_failures = collections.Counter()
        self.error = None

    def run(self):
        consumer = None
        try:
            consumer = Consumer({
                "bootstrap.servers": self.bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "isolation.level": "read_committed",
                "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "log_level": CLIENT_LOG_LEVEL,
            })
            consumer.subscribe([TOPIC])
            while not self.stop.is_set():
                messages = consumer.consume(num_messages=500, timeout=0.5)
                read = [(m.partition(), m.offset(), m.value().decode()) for m in messages if m.error() is None]
                if not read:
                    continue
                with self.lock:
                    self.consumed.extend(read)
                try:
                    consumer.commit(asynchronous=False)
                except KafkaException as e:
                    # A rebalance or a coordinator failover; the next batch commits again.
                    self.commit_failures[e.args[0].name()] += 1
        except Exception as e:  # noqa: BLE001 - reported as a harness error
            self.error = repr(e)
        finally:
            if consumer is not None:
                consumer.close()


class OffsetSampler(threading.Thread):
    """Samples the group's committed offsets once a second with OffsetFetch from a consumer
    that has the group's id but never joins it. (The AdminClient's ListConsumerGroupOffsets
    would do the same, but librdkafka crashes the process when that request is answered
    NOT_COORDINATOR, which a coordinator failover legitimately does: librdkafka#5040.)
    Samples that fail during a fault are simply missing."""

    def __init__(self, bootstrap: str, stop: threading.Event, t0: float):
        super().__init__(daemon=True, name="offset-sampler")
        self.stop, self.t0 = stop, t0
        self.samples = []  # (t, {partition: offset})
        self.lock = threading.Lock()  # one client, used by this thread and by the final sample
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                                  "log_level": CLIENT_LOG_LEVEL})

    def sample(self) -> dict[int, int] | None:
        try:
            with self.lock:
                committed = self.consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=5)
        except Exception:  # noqa: BLE001 - the group coordinator may be down right now
            return None
        offsets = {tp.partition: tp.offset for tp in committed if tp.error is None and tp.offset >= 0}
        self.samples.append((round(time.monotonic() - self.t0, 2), offsets))
        return offsets

    def run(self):
        while not self.stop.wait(1.0):
            self.sample()

    def close(self):
        with self.lock:
            self.consumer.close()


class TxnCopier(threading.Thread):
    """Consume-transform-produce with transactions: reads TOPIC (read_committed) as group
    COPY_GROUP and, per batch, writes "{partition}:{offset}:{value}" to the same partition
    of COPY_TOPIC and commits the batch's offsets in the same transaction. When anything
    goes wrong it aborts (or, if that fails too, starts a new producer with the same
    transactional id, which fences the old one) and starts a new consumer, which resumes
    from the committed offsets: exactly the records of committed transactions count."""

    def __init__(self, bootstrap: str, stop: threading.Event, debug_log: Path):
        super().__init__(daemon=True, name="txn-copier")
        self.bootstrap, self.stop = bootstrap, stop
        # librdkafka's transaction-manager debug log, the evidence if a transactional call
        # blocks past its timeout (see docs/reliability.md).
        self.logger = logging.getLogger(f"txn-copier-{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        handler = logging.FileHandler(debug_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        self.logger.addHandler(handler)
        self.commits = self.aborts = self.restarts = 0
        self.errors = collections.Counter()
        self.error = None
        self.phase = ("starting", time.monotonic())  # the client call in progress, to name a hang

    def _enter(self, phase: str):
        self.phase = (phase, time.monotonic())

    def _open(self):
        producer = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": "chaos-copier",
                             "transaction.timeout.ms": 30000, "message.timeout.ms": 25000,
                             "retry.backoff.max.ms": 200, "debug": "eos", "logger": self.logger})
        self._enter("init_transactions")
        producer.init_transactions(60)
        return producer, self._consumer()

    def _consumer(self) -> Consumer:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": COPY_GROUP,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "isolation.level": "read_committed", "session.timeout.ms": 10000,
                             "heartbeat.interval.ms": 500, "log_level": CLIENT_LOG_LEVEL})
        consumer.subscribe([TOPIC])
        return consumer

    def _copy(self, producer, consumer) -> bool:
        """One transaction; False if nothing was read."""
        self._enter("consume")
        messages = [m for m in consumer.consume(num_messages=300, timeout=0.5) if m.error() is None]
        if not messages:
            return False
        self._enter("produce")
        producer.begin_transaction()
        for m in messages:
            value = f"{m.partition()}:{m.offset()}:{m.value().decode()}".encode()
            while True:
                try:
                    producer.produce(COPY_TOPIC, value=value, partition=m.partition())
                    break
                except BufferError:
                    producer.poll(0.1)
        # The offsets are the batch's own (the next offset after each partition's last
        # record). A partition the member no longer owns means a rebalance ran inside this
        # batch's consume(): its offsets are not ours to commit, so the batch is aborted.
        next_offsets = {}
        for m in messages:
            next_offsets[m.partition()] = m.offset() + 1
        owned = {tp.partition for tp in consumer.assignment() if tp.topic == TOPIC}
        if not set(next_offsets) <= owned:
            raise KafkaException(KafkaError(KafkaError._STATE, "partitions revoked during the batch"))
        self._enter("send_offsets_to_transaction")
        producer.send_offsets_to_transaction([TopicPartition(TOPIC, p, o) for p, o in next_offsets.items()],
                                             consumer.consumer_group_metadata(), 30)
        for attempt in range(3):
            try:
                self._enter("commit_transaction")
                producer.commit_transaction(15)
                self.commits += 1
                return True
            except KafkaException as e:
                # Retriable (e.g. a timeout while the coordinator moves): committing again is
                # how librdkafka resolves the outcome; anything else goes to the caller.
                if not e.args[0].retriable() or attempt == 2:
                    raise
                self.errors[e.args[0].name()] += 1
        return True

    def run(self):
        producer = consumer = None
        try:
            while not self.stop.is_set():
                if producer is None:
                    try:
                        producer, consumer = self._open()
                    except KafkaException as e:
                        self.errors[f"init:{e.args[0].name()}"] += 1
                        time.sleep(1)
                        producer = consumer = None
                        continue
                try:
                    self._copy(producer, consumer)
                except KafkaException as e:
                    err = e.args[0]
                    self.errors[err.name()] += 1
                    aborted = False
                    if not err.fatal():
                        try:
                            self._enter("abort_transaction")
                            producer.abort_transaction(30)
                            self.aborts += 1
                            aborted = True
                        except KafkaException as abort_error:
                            self.errors[f"abort:{abort_error.args[0].name()}"] += 1
                    # The consumer's position is past the aborted batch: a new one resumes from
                    # the committed offsets. Without a clean abort the producer goes too.
                    self._enter("consumer.close")
                    consumer.close()
                    consumer = None
                    self.restarts += 1
                    if aborted:
                        consumer = self._consumer()
                    else:
                        # A fenced producer (e.g. its transaction outlived transaction.timeout.ms
                        # and the coordinator aborted it) reports its fatal error here too.
                        try:
                            producer.flush(5)
                        except KafkaException as flush_error:
                            self.errors[f"flush:{flush_error.args[0].name()}"] += 1
                        producer = None
        except Exception as e:  # noqa: BLE001 - reported as a harness error
            self.error = repr(e)
        finally:
            if consumer is not None:
                self._enter("consumer.close")
                consumer.close()
            if producer is not None:
                self._enter("producer.flush")
                producer.flush(10)
            self._enter("stopped")


# Nemesis


class Nemesis:
    """Injects one fault at a time: kill -9 then restart, SIGSTOP then SIGCONT, a broker cut
    off from etcd (or from etcd and everyone) then healed, or etcd stop then start. Every fault heals before the next begins; the pause between faults is
    random and often shorter than a restarted broker needs to rejoin the ISR, so a later
    fault can hit a partition that has only two replicas in sync."""

    def __init__(self, cluster: Cluster, rng: random.Random, t0: float, weights: dict | None = None,
                 interval_s: float | None = None):
        """`weights` overrides FAULT_WEIGHTS; with `interval_s` a fault starts every
        `interval_s` seconds instead of after a random pause."""
        self.cluster, self.rng, self.t0 = cluster, rng, t0
        self.weights = weights or FAULT_WEIGHTS
        self.interval_s = interval_s
        self.history = []
        self.crashes = []  # brokers found dead without the nemesis having killed them
        self.restart_failures = []

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def _resolve(self, role: str, partition: int, pick: float) -> tuple[int, str]:
        """The node a role names now (`pick` in [0, 1) chooses among several candidates);
        a running broker picked the same way if the cluster cannot say."""
        live = self.cluster.live()

        def choose(candidates):
            return sorted(candidates)[int(pick * len(candidates))]

        try:
            if role in ("leader", "follower"):
                described = self.cluster.describe(TOPIC, self.cluster.bootstrap)[partition]
                leader = described["leader"]
                if role == "leader" and leader in live:
                    return leader, f"leader of {TOPIC}-{partition}"
                followers = [n for n in described["replicas"] if n != leader and n in live]
                if role == "follower" and followers:
                    return choose(followers), f"follower of {TOPIC}-{partition} (leader {leader})"
            elif role == "controller":
                latest = self.cluster.controller()
                if latest is not None and latest[1] in live:
                    return latest[1], f"controller (epoch {latest[0]})"
            elif role == "coordinator":
                admin = self.cluster.admin(self.cluster.bootstrap)
                coordinator = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=5).coordinator.id
                if coordinator in live:
                    return coordinator, f"coordinator of {GROUP}"
        except Exception:  # noqa: BLE001 - mid-failover metadata; fall back to a broker picked as below
            pass
        return choose(live), "any broker" if role == "any" else f"any broker (wanted {role})"

    def _restart(self, node: int):
        for attempt in range(3):
            try:
                self.cluster.start(node)
                return
            except Exception as e:  # noqa: BLE001 - e.g. etcd not answering yet; retried
                log(f"restart of broker {node} failed (attempt {attempt + 1}): {e}")
                self.cluster.brokers[node].kill()
                time.sleep(2)
        self.restart_failures.append((self.now(), node))

    def check_processes(self):
        """Restarts any broker that died on its own, and records that it did."""
        for node in NODE_IDS:
            proc = self.cluster.brokers[node].proc
            if proc is not None and proc.poll() is not None:
                self.crashes.append({"t": self.now(), "node": node, "exit": proc.returncode})
                log(f"broker {node} exited by itself with {proc.returncode}; restarting")
                self._restart(node)
        if self.cluster.etcd.proc.poll() is not None:
            self.crashes.append({"t": self.now(), "node": "etcd", "exit": self.cluster.etcd.proc.returncode})
            self.cluster.etcd.start()

    def inject(self):
        # Every random draw happens here, unconditionally and in one order, so that a seed
        # fixes the whole schedule whatever the cluster answers while roles are resolved.
        kinds = list(self.weights)
        kind = self.rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
        role = self.rng.choice(KILL_ROLES)
        u, partition, pick = self.rng.random(), self.rng.randrange(PARTITIONS), self.rng.random()
        v = self.rng.random()
        fault = {"n": len(self.history) + 1, "kind": kind, "start": self.now()}
        if kind == "kill":
            down = 1.0 + 4.0 * u
            node, described = self._resolve(role, partition, pick)
            fault.update(node=node, role=described, down_s=round(down, 1))
            log(f"fault {fault['n']}: kill -9 broker {node} ({described}) for {down:.1f} s")
            self.cluster.kill(node)
            time.sleep(down)
            self._restart(node)
        elif kind == "pause":
            # Longer than broker.session.timeout.ms, so the broker's etcd session expires.
            paused = SESSION_TIMEOUT_S + 1.0 + 3.0 * u
            node, described = self._resolve(role, partition, pick)
            fault.update(node=node, role=described, down_s=round(paused, 1))
            log(f"fault {fault['n']}: SIGSTOP broker {node} ({described}) for {paused:.1f} s")
            self.cluster.pause(node)
            time.sleep(paused)
            self.cluster.resume(node)
        elif kind == "partition":
            # Longer than broker.session.timeout.ms: the broker's lease expires while it
            # still runs and, cut off only from etcd, may still be reached by clients.
            cut = SESSION_TIMEOUT_S + 1.0 + 3.0 * u
            inbound = v < 0.5
            node, described = self._resolve(role, partition, pick)
            what = "etcd and everyone" if inbound else "etcd"
            fault.update(node=node, role=described, down_s=round(cut, 1), cut_from=what)
            log(f"fault {fault['n']}: broker {node} ({described}) cut off from {what} for {cut:.1f} s")
            self.cluster.partition(node, inbound=inbound)
            time.sleep(cut)
            self.cluster.heal(node)
        else:
            down = 2.0 + 4.0 * u
            fault.update(node="etcd", down_s=round(down, 1))
            log(f"fault {fault['n']}: etcd stopped for {down:.1f} s")
            self.cluster.etcd.stop()
            time.sleep(down)
            self.cluster.etcd.start()
        fault["end"] = self.now()
        self.history.append(fault)

    def run(self, faults: int, deadline: float):
        # Leave the workloads a few quiet seconds first so that every partition has data.
        time.sleep(3)
        start = time.monotonic()
        while len(self.history) < faults and time.monotonic() < deadline:
            self.inject()
            settle = self.rng.uniform(1.0, 5.0)
            if self.interval_s:
                settle = start + len(self.history) * self.interval_s - time.monotonic()
            time.sleep(min(max(0.0, settle), max(0.0, deadline - time.monotonic())))
            self.check_processes()

    def heal(self):
        for node in NODE_IDS:
            self.cluster.heal(node)
        for node in list(self.cluster.paused):
            self.cluster.resume(node)
        if self.cluster.etcd.proc.poll() is not None:
            self.cluster.etcd.start()
        for node in NODE_IDS:
            proc = self.cluster.brokers[node].proc
            if proc is None or proc.poll() is not None:
                self._restart(node)


def dump_stacks(cluster: Cluster, workdir: Path):
    """Every running broker's thread stacks (gdb, if installed) into
    `workdir/stacks-broker-N.txt`: a broker that stopped answering shows where it waits."""
    if shutil.which("gdb") is None:
        log("gdb is not installed: no thread stacks taken")
        return
    for node, broker in cluster.brokers.items():
        proc = broker.proc
        if proc is None or proc.poll() is not None:
            continue
        out = workdir / f"stacks-broker-{node}.txt"
        try:
            with open(out, "w") as f:
                subprocess.run(["gdb", "-p", str(proc.pid), "-batch", "-ex", "thread apply all bt 40"],
                               stdout=f, stderr=subprocess.STDOUT, timeout=120)
            log(f"thread stacks of broker {node} in {out}")
        except (OSError, subprocess.SubprocessError) as e:
            log(f"no thread stacks of broker {node}: {e}")


class ResourceSampler(threading.Thread):
    """Every RESOURCE_SAMPLE_S, each running broker's resident memory (VmRSS) and number of
    open file descriptors, from /proc, and what its storage engine holds in memory
    (memtables and block cache, from its /metrics)."""

    def __init__(self, cluster: Cluster, stop: threading.Event, t0: float, metrics_ports: dict[int, int]):
        super().__init__(name="resources", daemon=True)
        self.cluster, self.stop, self.t0, self.metrics_ports = cluster, stop, t0, metrics_ports
        self.samples = []  # (t, node, pid, rss_kib, fds, storage_mib)

    def storage_mib(self, node: int) -> float | None:
        """Memtables plus block cache, in MiB (None if /metrics does not answer)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_ports[node]}/metrics", timeout=3).read()
        except (OSError, KeyError):
            return None
        total = 0.0
        for line in text.decode().splitlines():
            if line.startswith("rivulet_storage_memory_bytes{"):
                total += float(line.split()[-1])
        return round(total / 2**20, 1)

    def sample(self):
        for node, broker in self.cluster.brokers.items():
            proc = broker.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            except (OSError, StopIteration, ValueError):
                continue
            self.samples.append((round(time.monotonic() - self.t0, 1), node, proc.pid, rss, fds, self.storage_mib(node)))

    def run(self):
        while not self.stop.wait(RESOURCE_SAMPLE_S):
            self.sample()

    def summary(self, warmup_s: float) -> dict:
        """Per broker: the samples by minute, and the growth of memory and descriptors from
        the first sample after `warmup_s` to the last (one process throughout, or say so)."""
        out = {}
        for node in NODE_IDS:
            rows = [r for r in self.samples if r[1] == node]
            if not rows:
                continue
            settled = [r for r in rows if r[0] >= warmup_s] or rows
            first, last = settled[0], settled[-1]
            out[node] = {
                "pids": sorted({r[2] for r in rows}),
                "rss_mib": {"from": round(first[3] / 1024, 1), "to": round(last[3] / 1024, 1),
                            "max": round(max(r[3] for r in settled) / 1024, 1)},
                "fds": {"from": first[4], "to": last[4], "max": max(r[4] for r in settled)},
                # (minute, resident MiB, open descriptors, storage engine MiB)
                "by_minute": [(round(t / 60, 1), round(rss / 1024, 1), fds, storage)
                              for t, _, _, rss, fds, storage in rows if int(t) % 60 < RESOURCE_SAMPLE_S],
            }
        return out


def error_lines(broker, since: int) -> list[str]:
    """The ERROR lines a broker logged after byte `since` of its log."""
    with open(broker.log_path, "rb") as f:
        f.seek(since)
        return [line for line in f.read().decode(errors="replace").splitlines() if " ERROR " in line]


# Checker


def read_log(bootstrap: str, topic: str = TOPIC, timeout: float = 90) -> tuple[dict, dict[int, int]]:
    """Every record of every partition from the beginning up to where a fresh read_committed
    consumer sees the end (the high watermark; the last stable offset of a transactional
    topic): ({partition: [(offset, value), ...]}, {partition: end})."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-checker-{time.time()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True, "log_level": CLIENT_LOG_LEVEL})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        records = {p: [] for p in range(PARTITIONS)}
        remaining = {p for p in range(PARTITIONS) if ends[p] > 0}
        deadline = time.time() + timeout
        while remaining and time.time() < deadline:
            for m in consumer.consume(num_messages=10_000, timeout=1):
                p = m.partition()
                if m.error() is not None:
                    # A commit marker takes the last offset of a transactional log and is never
                    # delivered: the end-of-partition event says the reader got there.
                    if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= ends[p]:
                        remaining.discard(p)
                    continue  # otherwise a transient error: keep reading until the deadline
                if m.offset() < ends[p]:
                    records[p].append((m.offset(), m.value().decode()))
                if m.offset() >= ends[p] - 1:
                    remaining.discard(p)
        return records, ends
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offsets of TOPIC ({} for a partition without one), through a
    consumer that never joins the group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "log_level": CLIENT_LOG_LEVEL})
    try:
        committed = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in committed if tp.error is None and tp.offset >= 0}
    finally:
        consumer.close()


def check_copy(at: dict, copy_records: dict, committed: dict[int, int]) -> dict:
    """The transactional copy holds, read_committed, exactly the source records below the
    copier's committed offsets: each once, unchanged, and none beyond (which would be
    output committed without its offsets, or offsets without their output)."""
    copies = collections.Counter()
    mismatch, beyond = [], []
    for p, records in copy_records.items():
        for offset, value in records:
            source_partition, source_offset, source_value = value.split(":", 2)
            key = (int(source_partition), int(source_offset))
            copies[key] += 1
            if at.get(key) != source_value or key[0] != p:
                mismatch.append({"copy": (p, offset), "value": value, "source": at.get(key)})
            if key[1] >= committed.get(key[0], 0):
                beyond.append({"copy": (p, offset), "source": key, "committed": committed.get(key[0], 0)})
    duplicates = sorted(key for key, n in copies.items() if n > 1)
    missing = [(p, o) for p in range(PARTITIONS) for o in range(committed.get(p, 0)) if (p, o) not in copies]
    return {"txn_mismatch": mismatch, "txn_duplicates": duplicates, "txn_missing": missing,
            "txn_beyond_commit": beyond, "copied": sum(copies.values())}


def high_watermarks(bootstrap: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-watermarks-{time.time()}",
                         "log_level": CLIENT_LOG_LEVEL})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5)[1] for p in range(PARTITIONS)}
    finally:
        consumer.close()


def unavailability(ack_times: list[float], start: float, end: float, faults: list[dict]) -> list[dict]:
    """Windows longer than GAP_S in which no producer got an acknowledgement, with the
    faults that overlapped them."""
    times = sorted(t for t in ack_times if start <= t <= end)
    windows = []
    for a, b in zip([start, *times], [*times, end]):
        if b - a > GAP_S:
            during = [f["n"] for f in faults if f["start"] < b and f.get("end", end) > a - 1]
            windows.append({"from": round(a, 1), "to": round(b, 1), "s": round(b - a, 1), "faults": during})
    return windows


def check(producers: list[ProducerWorker], log_records: dict, ends: dict, consumed: list,
          samples: list, final_committed: dict | None) -> dict:
    """Applies the invariants to the history; returns the findings (empty lists = clean)."""
    stored = {}  # value -> [(partition, offset), ...]
    for p, records in log_records.items():
        for offset, value in records:
            stored.setdefault(value, []).append((p, offset))
    at = {(p, o): v for p, records in log_records.items() for o, v in records}
    acked = {f"p{w.index}-{seq}": where for w in producers for seq, where in w.acked.items()}

    # (a) and (d)
    lost = sorted(v for v in acked if v not in stored)
    wrong_offset = sorted((v, acked[v], at.get(acked[v])) for v in acked if v in stored and at.get(acked[v]) != v)
    # (b)
    duplicates = sorted((v, where) for v, where in stored.items() if len(where) > 1)
    # (c): within one producer instance, seqs of a partition must increase along the log.
    instance_of = {}
    for w in producers:
        instance_of[w.index] = w.instances
    reorders = []
    for p, records in log_records.items():
        last = {}  # (producer, instance) -> (seq, offset)
        for offset, value in records:
            producer, seq = value[1:].split("-", 1)
            producer, seq = int(producer), int(seq)
            instance = sum(1 for s in instance_of.get(producer, [0]) if s <= seq)
            key = (producer, instance)
            if key in last and seq <= last[key][0]:
                reorders.append({"partition": p, "value": value, "offset": offset,
                                 "after": f"p{producer}-{last[key][0]}", "after_offset": last[key][1],
                                 "both_acked": value in acked and f"p{producer}-{last[key][0]}" in acked})
            last[key] = (seq, offset)
    # (e): committed offsets never beyond the final log end, never backwards between samples.
    committed_over_end, committed_backwards = [], []
    previous = {}
    for t, offsets in samples + ([("final", final_committed)] if final_committed else []):
        for p, offset in offsets.items():
            if offset > ends.get(p, 0):
                committed_over_end.append({"t": t, "partition": p, "committed": offset, "log_end": ends.get(p)})
            if p in previous and offset < previous[p][1]:
                committed_backwards.append({"t": t, "partition": p, "committed": offset,
                                            "earlier": previous[p][1], "earlier_t": previous[p][0]})
            previous[p] = (t, offset)
    # (f): what the group read is in the final log at that offset.
    consumed_mismatch = sorted({(p, o, v, at.get((p, o))) for p, o, v in consumed if at.get((p, o)) != v})
    # (g): the group read every offset of every partition up to the log end.
    read_offsets = collections.defaultdict(set)
    for p, o, _ in consumed:
        read_offsets[p].add(o)
    group_skipped, group_behind = [], {}
    for p in range(PARTITIONS):
        seen = read_offsets.get(p, set())
        top = max(seen) if seen else -1
        missing = [o for o in range(0, top + 1) if o not in seen]
        if missing:
            group_skipped.append({"partition": p, "missing": len(missing), "first": missing[:10]})
        if top + 1 < ends.get(p, 0):
            group_behind[p] = ends[p] - top - 1
    return {"lost": lost, "wrong_offset": wrong_offset, "duplicates": duplicates, "reorders": reorders,
            "committed_over_end": committed_over_end, "committed_backwards": committed_backwards,
            "consumed_mismatch": consumed_mismatch, "group_skipped": group_skipped, "group_behind": group_behind,
            "log_records": sum(len(r) for r in log_records.values()), "acked": len(acked)}


def run_campaign(workdir: Path, seed: int, faults: int = 20, duration_s: float = 240, txn: bool = True,
                 soak: bool = False) -> dict:
    """Runs one campaign in `workdir` and returns its JSON-able summary (`ok` is False if
    an invariant was violated). `txn=False` leaves out the transactional copier; `soak`
    makes it a soak (one fault a minute, no kills, resources sampled, logs checked)."""
    rng = random.Random(seed)
    summary = {"seed": seed, "faults_requested": faults, "duration_s": duration_s, "soak": soak}
    cluster = Cluster(workdir, extra=("group.initial.rebalance.delay.ms=0",), proxies=True)
    metrics_ports = {}
    for node, broker in cluster.brokers.items():
        # /metrics per broker: the storage engine's memory, sampled beside the resident size.
        metrics_ports[node] = free_port()
        broker.extra.append(f"rivulet.metrics.listener=127.0.0.1:{metrics_ports[node]}")
    with cluster:
        cluster.create_topic(TOPIC, PARTITIONS, config={"min.insync.replicas": "2"})
        if txn:
            cluster.create_topic(COPY_TOPIC, PARTITIONS, config={"min.insync.replicas": "2"})
        t0 = time.monotonic()
        stop_producing, stop_consuming, stop_sampling = threading.Event(), threading.Event(), threading.Event()
        consumed, consumed_lock = [], threading.Lock()
        producers = [ProducerWorker(i, cluster.bootstrap, stop_producing, t0) for i in range(PRODUCERS)]
        members = [GroupMember(i, cluster.bootstrap, stop_consuming, consumed, consumed_lock)
                   for i in range(GROUP_MEMBERS)]
        sampler = OffsetSampler(cluster.bootstrap, stop_sampling, t0)
        copier = TxnCopier(cluster.bootstrap, stop_consuming, workdir / "txn-copier.log") if txn else None
        nemesis = Nemesis(cluster, rng, t0, **({"weights": SOAK_FAULT_WEIGHTS, "interval_s": SOAK_FAULT_INTERVAL_S}
                                                 if soak else {}))
        resources = ResourceSampler(cluster, stop_sampling, t0, metrics_ports)
        for thread in (*producers, *members, sampler, resources, *([copier] if copier else [])):
            thread.start()
        harness_errors = []
        notes = []  # waits that timed out: liveness, not safety
        try:
            nemesis.run(faults, t0 + duration_s)
        except Exception as e:  # noqa: BLE001 - the checker still runs on what happened so far
            harness_errors.append(f"nemesis: {e!r}")
            log(f"nemesis failed: {e!r}")
        nemesis_end = time.monotonic() - t0
        log(f"{len(nemesis.history)} faults in {nemesis_end:.0f} s; healing")
        nemesis.heal()
        # Keep producing a little while the healed cluster settles, then drain.
        time.sleep(5)
        stop_producing.set()
        for w in producers:
            w.join(timeout=90)
        produce_end = time.monotonic() - t0

        healed = True
        try:
            cluster.wait_for_full_isr(TOPIC, PARTITIONS, timeout=60)
            if txn:
                cluster.wait_for_full_isr(COPY_TOPIC, PARTITIONS, timeout=60)
            offsets_partitions = len(cluster.describe("__consumer_offsets"))
            cluster.wait_for_full_isr("__consumer_offsets", offsets_partitions, timeout=60)
        except AssertionError as e:
            healed = False
            log(f"the cluster did not heal: {e}")
            dump_stacks(cluster, workdir)
        # From here on the cluster is whole again: a soak requires silence in the logs.
        healed_at = {n: b.log_path.stat().st_size for n, b in cluster.brokers.items()}
        if soak:
            time.sleep(SETTLED_QUIET_S)

        # Wait until the high watermarks cover every acknowledged offset before reading.
        acked_end = collections.defaultdict(int)
        for w in producers:
            for p, o in w.acked.values():
                acked_end[p] = max(acked_end[p], o + 1)
        try:
            wait_for(lambda: all(hw >= acked_end[p] for p, hw in high_watermarks(cluster.bootstrap).items()), 30,
                     "high watermarks to reach every acknowledged offset")
        except AssertionError as e:
            notes.append(str(e)[:300])
            log(str(e))
        log(f"healed: {healed}; reading the log")
        log_records, ends = read_log(cluster.bootstrap)
        log(f"read {sum(len(r) for r in log_records.values())} records; waiting for the consumers to catch up")

        # Let the group catch up with the log end, then stop it and take the last sample.
        def caught_up():
            with consumed_lock:
                top = collections.defaultdict(lambda: -1)
                for p, o, _ in consumed:
                    top[p] = max(top[p], o)
            return all(top[p] + 1 >= end for p, end in ends.items())

        def copier_caught_up():
            committed = committed_offsets(cluster.bootstrap, COPY_GROUP)
            return all(committed.get(p, 0) >= end for p, end in ends.items())

        try:
            wait_for(caught_up, 60, "the group to consume up to the log end")
        except AssertionError as e:
            notes.append(str(e)[:300])
            log(str(e))
        if copier:
            try:
                wait_for(copier_caught_up, 60, "the transactional copier to commit up to the log end", interval=1)
            except AssertionError as e:
                notes.append(f"{str(e)[:300]} (copier in {copier.phase[0]} for "
                             f"{time.monotonic() - copier.phase[1]:.0f} s)")
                log(notes[-1])
        time.sleep(2)  # the last batch's synchronous commit
        log("stopping the consumers")
        stop_consuming.set()
        for m in members:
            m.join(timeout=30)
        harness_errors += [f"{t.name} did not stop" for t in (*producers, *members) if t.is_alive()]
        copy_findings, copier_stuck = {}, None
        if copier:
            copier.join(timeout=30)  # a transaction's commit retries are bounded by 3 x 15 s, mostly far less
            if copier.is_alive():
                # Blocked inside one librdkafka call past that call's timeout (a client bug:
                # confluentinc/librdkafka#5456, #5511). The transaction coordinator aborts the
                # open transaction after transaction.timeout.ms and fences the blocked producer,
                # so what is committed no longer changes and can still be checked.
                phase, since = copier.phase
                copier_stuck = f"{phase} for {time.monotonic() - since:.0f} s"
                notes.append(f"the transactional copier is blocked in {copier_stuck}")
                log(notes[-1])
                wait_for(lambda: time.monotonic() - since > 35, 40, "the transaction timeout to pass")
            else:
                log("the transactional copier stopped")
            at = {(p, o): v for p, records in log_records.items() for o, v in records}
            copy_records, _ = read_log(cluster.bootstrap, COPY_TOPIC)
            try:
                copier_committed = wait_for(lambda: committed_offsets(cluster.bootstrap, COPY_GROUP), 30,
                                            "the copier's committed offsets", interval=1)
                copy_findings = check_copy(at, copy_records, copier_committed)
            except AssertionError as e:
                harness_errors.append(f"the copier's check is skipped: {e}")
        errors_after_recovery = {n: error_lines(b, healed_at[n]) for n, b in cluster.brokers.items()}
        stop_sampling.set()
        sampler.join(timeout=15)
        resources.join(timeout=5)
        resources.sample()
        try:
            final_committed = wait_for(sampler.sample, 30, "the group's committed offsets")
        except AssertionError as e:
            final_committed = None
            harness_errors.append(f"final committed offsets: {e}")
        sampler.close()

        findings = check(producers, log_records, ends, consumed, sampler.samples, final_committed)
        windows = unavailability([t for w in producers for t in w.ack_times], 3.0, nemesis_end, nemesis.history)
        for w in producers:
            if w.error:
                harness_errors.append(f"producer {w.index}: {w.error}")
        for m in members:
            if m.error:
                harness_errors.append(f"{m.name}: {m.error}")
        if copier and copier.error:
            harness_errors.append(f"txn-copier: {copier.error}")
        txn_names = ("txn_mismatch", "txn_duplicates", "txn_missing", "txn_beyond_commit")

        panics = {n: sum(1 for line in b.log_path.read_text(errors="replace").splitlines() if "panicked" in line)
                  for n, b in cluster.brokers.items()}
        violations = [name for name in ("lost", "wrong_offset", "duplicates", "reorders", "committed_over_end",
                                        "committed_backwards", "consumed_mismatch", "group_skipped")
                      if findings[name]]
        violations += [name for name in txn_names if copy_findings.get(name)]
        if not healed:
            violations.append("not_healed")
        if harness_errors:
            # Not a broker anomaly, but a check that did not run (or a workload that died)
            # must not pass as clean.
            violations.append("harness_error")
        if nemesis.crashes:
            violations.append("broker_crashed")
        if nemesis.restart_failures:
            violations.append("restart_failed")
        if any(panics.values()):
            violations.append("broker_panicked")
        if soak and any(errors_after_recovery.values()):
            violations.append("errors_after_recovery")
        summary.update({
            "faults_injected": len(nemesis.history),
            "fault_kinds": dict(collections.Counter(f["kind"] for f in nemesis.history)),
            "nemesis_s": round(nemesis_end, 1), "produce_s": round(produce_end, 1),
            "sent": sum(w.sent for w in producers),
            "acked": findings["acked"],
            "failed_deliveries": dict(sum((w.failed for w in producers), collections.Counter())),
            "producer_fatal_errors": [(w.index, *f) for w in producers for f in w.fatal],
            "unflushed": sum(w.unflushed for w in producers),
            "log_records": findings["log_records"], "log_end_offsets": ends,
            "lost": len(findings["lost"]), "duplicates": len(findings["duplicates"]),
            "reorders": len(findings["reorders"]), "wrong_offsets": len(findings["wrong_offset"]),
            "group": {"consumed": len(consumed), "distinct": len({(p, o) for p, o, _ in consumed}),
                      "commit_failures": dict(sum((m.commit_failures for m in members), collections.Counter())),
                      "committed_samples": len(sampler.samples), "final_committed": final_committed,
                      "behind_at_end": findings["group_behind"]},
            "txn": None if not copier else {
                "commits": copier.commits, "aborts": copier.aborts, "restarts": copier.restarts,
                "blocked_in": copier_stuck,
                "errors": dict(copier.errors), "copied": copy_findings.get("copied"),
                **{name: len(copy_findings[name]) for name in txn_names if name in copy_findings}},
            "unavailability": {"windows": len(windows), "total_s": round(sum(w["s"] for w in windows), 1),
                               "longest_s": max((w["s"] for w in windows), default=0), "list": windows},
            "crashes": nemesis.crashes, "restart_failures": nemesis.restart_failures, "panics": panics,
            "resources": resources.summary(warmup_s=300 if soak else 30),
            "errors_after_recovery": {n: lines[:10] for n, lines in errors_after_recovery.items()},
            "harness_errors": harness_errors, "notes": notes,
            "faults": nemesis.history,
            "violations": violations,
            "evidence": {k: findings[k][:20] for k in ("lost", "wrong_offset", "duplicates", "reorders",
                                                       "committed_over_end", "committed_backwards",
                                                       "consumed_mismatch", "group_skipped") if findings[k]}
            | {k: copy_findings[k][:20] for k in txn_names if copy_findings.get(k)},
            "ok": not violations,
        })
        if violations:
            log(f"VIOLATIONS {violations}; broker log tails follow")
            print(cluster.log_tails(60), file=sys.stderr, flush=True)
    return summary


def run_isolated(workdir: Path, seed: int, faults: int, duration_s: float, txn: bool = True,
                 soak: bool = False) -> dict:
    """Runs one campaign in a child process with its own process group, and kills that
    group afterwards. The client library runs native code in the campaign's process; if
    that crashes, the brokers and etcd it started would otherwise outlive it (a SIGSTOPped
    broker forever). A crash or an overrun is reported as a failed campaign."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--seed", str(seed), "--faults", str(faults),
           "--duration-s", str(duration_s), "--workdir", str(workdir), *([] if txn else ["--no-txn"]),
           *(["--soak"] if soak else [])]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    # The nemesis, then healing, draining and checking, each bounded by its own deadlines.
    limit = duration_s + 480 + (SETTLED_QUIET_S if soak else 0)
    try:
        out, _ = child.communicate(timeout=limit)
        problem = None if child.returncode in (0, 1) else f"campaign process exited with {child.returncode}"
    except subprocess.TimeoutExpired:
        out, problem = "", f"campaign process overran {limit:.0f} s"
    finally:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the brokers and etcd it started, if any are left
        except ProcessLookupError:
            pass
        child.wait()
    if problem is None:
        try:
            return json.loads(out)
        except ValueError:
            problem = "campaign process printed no summary"
    log(f"seed {seed}: {problem}")
    for log_path in sorted(workdir.glob("broker-*/broker.log")):
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
        print(f"--- {log_path.parent.name} ---\n{tail}", file=sys.stderr, flush=True)
    return {"seed": seed, "faults_requested": faults, "duration_s": duration_s, "violations": ["harness_failed"],
            "harness_errors": [problem], "ok": False}


def main() -> int:
    faulthandler.enable()  # a crash in a client library's C code still shows the Python stacks
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", help="comma-separated seeds, run one after the other (overrides --seed)")
    parser.add_argument("--faults", type=int, default=20, help="faults per campaign (at most)")
    parser.add_argument("--duration-s", type=float, default=240, help="nemesis time limit per campaign")
    parser.add_argument("--workdir", type=Path, help="keep every campaign's data here (default: a temporary "
                                                      "directory, deleted if the campaign is clean)")
    parser.add_argument("--no-txn", action="store_true", help="leave out the transactional copier")
    parser.add_argument("--soak-minutes", type=float, help="a soak instead: this long, one fault a minute")
    parser.add_argument("--soak", action="store_true", help=argparse.SUPPRESS)  # the child of a soak
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # see run_isolated
    args = parser.parse_args()
    if args.soak_minutes:
        args.soak = True
        args.faults = int(args.soak_minutes * 60 / SOAK_FAULT_INTERVAL_S)
        args.duration_s = args.soak_minutes * 60
    if args.child:
        summary = run_campaign(args.workdir, args.seed, args.faults, args.duration_s, txn=not args.no_txn,
                               soak=args.soak)
        print(json.dumps(summary, default=str), flush=True)
        return 0 if summary["ok"] else 1

    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    failed, results = [], []
    for seed in seeds:
        workdir = (args.workdir / f"seed-{seed}") if args.workdir else Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-"))
        workdir.mkdir(parents=True, exist_ok=True)
        log(f"seed {seed}: up to {args.faults} faults in {args.duration_s:.0f} s, data in {workdir}")
        summary = run_isolated(workdir, seed, args.faults, args.duration_s, txn=not args.no_txn, soak=args.soak)
        summary["workdir"] = str(workdir)
        print(json.dumps(summary, indent=1, default=str), flush=True)
        results.append({k: summary.get(k) for k in ("seed", "faults_injected", "acked", "lost", "duplicates",
                                                     "reorders", "wrong_offsets", "violations", "ok")})
        if not summary["ok"]:
            failed.append(seed)
        elif not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(seeds) > 1:
        for result in results:
            log(json.dumps(result))
    if failed:
        log(f"invariants violated for seeds {failed}; data kept")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
