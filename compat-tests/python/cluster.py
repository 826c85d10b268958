"""A three-broker rivulet cluster sharing one etcd, for the cluster-mode tests.

    with Cluster(tmp_path, extra=("min.insync.replicas=2",)) as cluster:
        cluster.create_topic("t", partitions=6)
        leader = cluster.leader_of("t", 0)
        cluster.kill(leader)
        ...

Brokers are `conftest.Broker`s (node ids 1..3, each with its own data directory under
tmp_path) and the etcd is a `conftest.Etcd`, which can be stopped and started again on the
same data directory and ports. Leaving the `with` block kills every process, also
brokers that a test stopped with SIGSTOP.
"""

import concurrent.futures
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, Etcd
from netproxy import Proxy

NODE_IDS = (1, 2, 3)

# Settings every cluster broker gets; a test's `extra` comes after them and wins.
CLUSTER_SETTINGS = (
    "broker.session.timeout.ms=3000",
    "replica.lag.time.max.ms=3000",
    "default.replication.factor=3",
    "min.insync.replicas=2",
    "offsets.topic.replication.factor=3",
    "transaction.state.log.replication.factor=3",
    "unclean.leader.election.enable=false",
)

_ELECTED = re.compile(r"elected controller.*")
_FIELD = re.compile(r"\b(node_id|controller_epoch)=(\d+)")


def wait_for(predicate, timeout: float = 15, what: str = "condition", show=None, interval: float = 0.2):
    """Polls `predicate` until it returns something truthy, and returns that.

    An exception from `predicate` counts as "not yet" (a cluster in the middle of a
    failover answers with errors). On timeout the AssertionError names `what`, the last
    value or exception, and what `show()` returns (e.g. the current partition states).
    """
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported below if it never succeeds
            last = e
        if time.time() >= deadline:
            message = f"timed out after {timeout} s waiting for {what}; last: {last!r}"
            if show is not None:
                try:
                    message += f"; now: {show()!r}"
                except Exception as e:  # noqa: BLE001
                    message += f"; now: {e!r}"
            raise AssertionError(message)
        time.sleep(interval)


class Cluster:
    """Etcd plus brokers 1..3 with CLUSTER_SETTINGS and `extra`; use it as a context manager."""

    def __init__(self, tmp_path: Path, extra=(), root: str = "cluster", proxies: bool = False,
                 etcd_tls: Path | None = None):
        """With `proxies`, each broker reaches etcd through a proxy of its own and advertises
        a proxy in front of its listener (which clients and the other brokers then use), so
        `partition()` can cut it off (see netproxy.py). With `etcd_tls`, etcd serves TLS
        (see `conftest.Etcd`): `extra` then carries the brokers' metadata.store.ssl.* settings."""
        etcd_dir = tmp_path / "etcd"
        etcd_dir.mkdir(parents=True, exist_ok=True)
        self.etcd = Etcd(etcd_dir, tls=etcd_tls)
        settings = (f"metadata.store={self.etcd.url(root)}", *CLUSTER_SETTINGS, *extra)
        self.brokers = {}
        self.paused = set()
        self.etcd_proxies: dict[int, Proxy] = {}
        self.inbound_proxies: dict[int, Proxy] = {}
        for node_id in NODE_IDS:
            data_dir = tmp_path / f"broker-{node_id}"
            data_dir.mkdir(parents=True, exist_ok=True)
            # node.id comes after Broker.start()'s node.id=1 and after the shared settings.
            broker = Broker(data_dir, extra=(*settings, f"node.id={node_id}"))
            if proxies:
                to_etcd = self.etcd_proxies[node_id] = Proxy(self.etcd.client_port)
                inbound = self.inbound_proxies[node_id] = Proxy(broker.port)
                # Later overrides win: Broker.start() advertises the listener itself first.
                broker.extra += [f"metadata.store=etcd://127.0.0.1:{to_etcd.port}/{root}",
                                 f"advertised.listeners=PLAINTEXT://127.0.0.1:{inbound.port}"]
            self.brokers[node_id] = broker

    def __enter__(self):
        try:
            self.start_all()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *exc):
        self.stop_all()

    # Processes

    def start_all(self):
        """Starts every broker at once (a cluster broker may wait for its peers)."""
        with concurrent.futures.ThreadPoolExecutor(len(self.brokers)) as pool:
            for future in [pool.submit(b.start) for b in self.brokers.values()]:
                future.result()

    def broker(self, node_id: int) -> Broker:
        return self.brokers[node_id]

    def kill(self, node_id: int):
        """kill -9 of one broker; its etcd registration lasts until the session times out."""
        self.brokers[node_id].kill()
        self.paused.discard(node_id)

    def start(self, node_id: int):
        """(Re)starts a broker on its port and data; returns once it serves."""
        return self.brokers[node_id].start()

    def pause(self, node_id: int):
        """SIGSTOP: the process keeps its sockets but stops answering, like a long GC pause."""
        os.kill(self.brokers[node_id].proc.pid, signal.SIGSTOP)
        self.paused.add(node_id)

    def resume(self, node_id: int):
        os.kill(self.brokers[node_id].proc.pid, signal.SIGCONT)
        self.paused.discard(node_id)

    def partition(self, node_id: int, inbound: bool):
        """Cuts broker `node_id` off etcd and, with `inbound`, everyone off it (clients and
        the other brokers; it can still reach them). Needs `proxies=True`."""
        self.etcd_proxies[node_id].cut()
        if inbound:
            self.inbound_proxies[node_id].cut()

    def heal(self, node_id: int):
        """Ends every partition of broker `node_id`."""
        for proxies in (self.etcd_proxies, self.inbound_proxies):
            if node_id in proxies:
                proxies[node_id].heal()

    def stop_all(self):
        for broker in self.brokers.values():
            broker.kill()  # SIGKILL also ends a SIGSTOPped process
        self.paused.clear()
        self.etcd.stop()
        for proxies in (self.etcd_proxies, self.inbound_proxies):
            for proxy in proxies.values():
                proxy.close()

    def running(self, node_id: int) -> bool:
        """Alive and not paused."""
        proc = self.brokers[node_id].proc
        return proc is not None and proc.poll() is None and node_id not in self.paused

    def live(self) -> list[int]:
        return [n for n in self.brokers if self.running(n)]

    # Addresses

    @property
    def bootstrap(self) -> str:
        """All three brokers, running or not (clients skip the dead ones)."""
        return ",".join(b.bootstrap for b in self.brokers.values())

    @property
    def live_bootstrap(self) -> str:
        """Only the brokers that are running and not paused."""
        return ",".join(self.brokers[n].bootstrap for n in self.live())

    def admin(self, bootstrap: str | None = None) -> AdminClient:
        """A new AdminClient. Keep a reference while waiting on its futures: a collected
        client fails them with _DESTROY."""
        return AdminClient({"bootstrap.servers": bootstrap or self.live_bootstrap})

    # Metadata

    def describe(self, topic: str, bootstrap: str | None = None) -> dict[int, dict]:
        """{partition: {"leader": id, "replicas": [...], "isr": [...]}} from a Metadata request
        to `bootstrap` (default: the live brokers)."""
        metadata = self.admin(bootstrap).list_topics(topic, timeout=10)
        described = metadata.topics[topic]
        if described.error is not None:
            raise KafkaException(described.error)
        return {
            p.id: {"leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs)}
            for p in described.partitions.values()
        }

    def brokers_in_metadata(self, bootstrap: str) -> dict[int, tuple[str, int]]:
        """{node id: (host, port)} as the broker(s) at `bootstrap` advertise the cluster."""
        brokers = self.admin(bootstrap).list_topics(timeout=10).brokers
        return {b.id: (b.host, b.port) for b in brokers.values()}

    def leader_of(self, topic: str, partition: int, bootstrap: str | None = None, timeout: float = 30) -> int:
        """The partition's leader once metadata names a running broker as leader."""

        def leader():
            found = self.describe(topic, bootstrap)[partition]["leader"]
            return found if found in self.brokers and self.running(found) else None

        return wait_for(leader, timeout, f"a live leader of {topic}-{partition}")

    def create_topic(self, name: str, partitions: int, replication_factor: int = 3, config: dict | None = None,
                     timeout: float = 30) -> dict[int, dict]:
        """Creates a topic through the AdminClient and waits until every partition has a
        leader and all its replicas in sync; returns `describe(name)`."""
        new = NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=config or {})
        admin = self.admin()  # must outlive its futures
        admin.create_topics([new])[name].result(timeout=30)
        return self.wait_for_full_isr(name, partitions, replication_factor, timeout)

    def wait_for_full_isr(self, topic: str, partitions: int, replication_factor: int = 3, timeout: float = 30):
        # Every running broker must say so: each applies metadata changes on its own, as
        # Kafka's brokers do, so one that has not yet would answer UNKNOWN_TOPIC_OR_PARTITION.
        def full():
            described = None
            for node_id in self.live():
                described = self.describe(topic, self.brokers[node_id].bootstrap)
                ok = sorted(described) == list(range(partitions)) and all(
                    p["leader"] in p["isr"] and len(p["replicas"]) == replication_factor
                    and sorted(p["isr"]) == sorted(p["replicas"])
                    for p in described.values())
                if not ok:
                    return None
            return described

        return wait_for(full, timeout, f"every partition of {topic} to have {replication_factor} replicas in sync",
                        show=lambda: self.describe(topic))

    def wait_for(self, predicate, timeout: float = 15, what: str = "condition", show=None):
        return wait_for(predicate, timeout, what, show)

    # Controller

    def elections(self) -> list[tuple[int, int]]:
        """Every `elected controller` line of every broker's log, as (controller_epoch, node_id)."""
        found = []
        for broker in self.brokers.values():
            if not broker.log_path.exists():
                continue
            for line in broker.log_path.read_text(errors="replace").splitlines():
                match = _ELECTED.search(line)
                if match:
                    fields = dict(_FIELD.findall(match.group(0)))
                    if "node_id" in fields and "controller_epoch" in fields:
                        found.append((int(fields["controller_epoch"]), int(fields["node_id"])))
        return sorted(found)

    def controller(self) -> tuple[int, int] | None:
        """(controller_epoch, node_id) of the most recent election, from the brokers' logs."""
        elections = self.elections()
        return elections[-1] if elections else None

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- broker {n} ---\n{b.log_tail(lines)}" for n, b in self.brokers.items())


def read_partitions(bootstrap, topic, partitions, timeout=60.0, config: dict | None = None) -> dict[int, list]:
    """Every record of the given partitions from the beginning up to each one's high
    watermark at the start of the read, as {partition: [Message, ...]} in offset order.
    `config` adds client settings (security, ...)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, **(config or {}), "group.id": f"reader-{topic}-{time.time()}",
                         "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records = {p: [] for p in partitions}
        remaining = {p for p in partitions if ends[p] > 0}
        deadline = time.time() + timeout
        while remaining:
            assert time.time() < deadline, \
                f"read timed out: ends {ends}, got {({p: len(r) for p, r in records.items()})}"
            for m in consumer.consume(num_messages=10_000, timeout=1):
                if m.error() is not None:
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    continue
                if m.offset() < ends[m.partition()]:
                    records[m.partition()].append(m)
                if m.offset() >= ends[m.partition()] - 1:
                    remaining.discard(m.partition())
        return records
    finally:
        consumer.close()
