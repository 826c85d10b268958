"""Inter-broker security: the brokers of an etcd cluster replicate and send transaction
markers to each other over the listener Kafka's settings name (`inter.broker.listener.name`,
`listener.security.protocol.map`), authenticating with `sasl.mechanism.inter.broker.protocol`
and the username/password of that listener's JAAS entry, and verifying each other's TLS
certificates against the listener's truststore.

Every broker serves a PLAINTEXT listener (which the cluster harness's helpers use) and an
INTERNAL one mapped to SASL_SSL, with certificates made by the test (openssl) for
127.0.0.1/localhost, so hostname verification stays on.

- test_brokers_replicate_over_sasl_ssl: PLAIN between brokers under the StandardAuthorizer
  (the PLAINTEXT principal User:ANONYMOUS has no CLUSTER_ACTION, so only fetches over
  INTERNAL as User:broker can replicate): acks=all with min.insync.replicas=3 reaches every
  replica of partitions led by each broker; an idempotent acks=all producer keeps going
  while a leader is killed with SIGKILL, the killed broker comes back and rejoins the ISR,
  and every acknowledged record is read back exactly once; a transaction over partitions
  led by different brokers commits (markers go broker to broker) and read_committed sees it
  while an aborted one stays invisible.
- test_controller_failover_and_acl_changes_over_sasl_ssl: an ACL created through one broker
  lets alice produce to partitions led by each of the three, and deleted through another
  stops her on every live leader; the controller is killed, a successor is elected, creates
  a topic that replicates over SASL_SSL, and the killed broker rejoins every ISR.
- test_scram_between_brokers: SCRAM-SHA-512 between brokers. Before the brokers' SCRAM
  user exists their fetches fail (and say so); once `alter_user_scram_credentials` created
  it, a topic made before it and one made after it both reach all three replicas
  (acks=all with min.insync.replicas=3), and a SCRAM client on the SASL_SSL listener
  produces and consumes.
- test_a_broker_with_the_wrong_password_stays_out_of_the_isrs: broker 3 logs in with a
  wrong password; it drops out of (and stays out of) the ISRs of partitions led by 1 and 2,
  the partitions it leads keep their full ISR, acks=all keeps working, and its log says
  `inter-broker authentication failed`.
- test_inter_broker_settings_refused_at_start: the binary, run on its own, refuses
  contradicting or incomplete inter-broker settings at start and names the setting; the
  same configuration without the fault starts.
"""

import collections
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from cluster import Cluster, read_partitions, wait_for
from conftest import RIVULET_BIN, Etcd, free_port

BROKER_PASSWORD = "broker-secret"
AUTHORIZER = ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
              "super.users=User:broker;User:admin")
AUTH_FAILED = "inter-broker authentication failed"


def plain_jaas(password: str | None = BROKER_PASSWORD) -> str:
    """The INTERNAL listener's PLAIN entry: the broker's own login (username/password) and
    the users it accepts (user_<name>), as in Kafka. `password=None` leaves the login out."""
    login = f'username="broker" password="{password}" ' if password is not None else ""
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'{login}user_broker="{BROKER_PASSWORD}" user_admin="admin-secret" user_alice="alice-secret";')


def scram_jaas(password: str = BROKER_PASSWORD) -> str:
    return ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="broker" password="{password}";')


def openssl(*args: str, cwd: Path):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """A CA and a broker certificate for 127.0.0.1/localhost (EC P-256, two days), as in
    test_tls.py. `broker.pem` holds the key and chain (Kafka's PEM key store); `ca.pem` is
    the truststore each broker verifies its peers against."""
    d = tmp_path_factory.mktemp("ib-certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Rivulet Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "server.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    (d / "broker.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    return d


def inter_broker_settings(plain_port: int, internal_port: int, certs: Path, *, mechanism: str = "PLAIN",
                          password: str | None = BROKER_PASSWORD, listener_keys: bool = True) -> dict[str, str]:
    """A broker's PLAINTEXT and INTERNAL (SASL_SSL) listeners, INTERNAL between brokers.
    With `listener_keys` the TLS and mechanism settings are the listener's own
    (`listener.name.internal.…`), else the global keys."""
    endpoints = f"PLAINTEXT://127.0.0.1:{plain_port},INTERNAL://127.0.0.1:{internal_port}"
    scope = "listener.name.internal." if listener_keys else ""
    settings = {
        "listeners": endpoints,
        "advertised.listeners": endpoints,
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL",
        "inter.broker.listener.name": "INTERNAL",
        f"{scope}ssl.keystore.type": "PEM",
        f"{scope}ssl.keystore.location": str(certs / "broker.pem"),
        f"{scope}ssl.truststore.type": "PEM",
        f"{scope}ssl.truststore.location": str(certs / "ca.pem"),
        f"{scope}sasl.enabled.mechanisms": mechanism,
        "sasl.mechanism.inter.broker.protocol": mechanism,
    }
    if mechanism == "PLAIN":
        settings["listener.name.internal.plain.sasl.jaas.config"] = plain_jaas(password)
    else:
        settings[f"listener.name.internal.{mechanism.lower()}.sasl.jaas.config"] = scram_jaas(password)
    return settings


def secured_cluster(tmp_path, certs: Path, extra=(), passwords: dict[int, str] | None = None, **options) -> Cluster:
    """A Cluster whose brokers talk to each other over INTERNAL (see inter_broker_settings);
    `passwords` gives some brokers another password for their own login."""
    cluster = Cluster(tmp_path, extra=extra)
    for node_id, broker in cluster.brokers.items():
        broker.internal_port = free_port()
        password = (passwords or {}).get(node_id, BROKER_PASSWORD)
        settings = inter_broker_settings(broker.port, broker.internal_port, certs, password=password, **options)
        broker.extra = [*broker.extra, *(f"{k}={v}" for k, v in settings.items())]
    return cluster


def internal_client(cluster: Cluster, certs: Path, user: str, mechanism: str = "PLAIN", **extra) -> dict:
    """A client of the INTERNAL (SASL_SSL) listeners as `user` (password `<user>-secret`)."""
    bootstrap = ",".join(f"127.0.0.1:{b.internal_port}" for b in cluster.brokers.values())
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "ssl.ca.location": str(certs / "ca.pem"),
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": f"{user}-secret", **extra}


def create_topics(config: dict, *topics: NewTopic):
    admin = AdminClient(config)  # must outlive its futures
    for future in admin.create_topics(list(topics)).values():
        future.result(timeout=30)


def produce(config: dict, topic: str, values, partition: int | None = None, timeout: float = 40, **extra) -> list:
    """Produces `values` (round robin over the partitions unless `partition` is given) with
    acks=all; returns [(value, partition, offset or error)] in delivery order."""
    producer = Producer({**config, "acks": "all", "linger.ms": 5, "message.timeout.ms": int(timeout * 1000) - 5000,
                         **extra})
    results = []

    def delivered(err, msg):
        results.append((msg.value(), msg.partition(), err if err is not None else msg.offset()))

    for value in values:
        kwargs = {} if partition is None else {"partition": partition}
        producer.produce(topic, value, on_delivery=delivered, **kwargs)
        producer.poll(0)
    producer.flush(timeout)
    return results


def failed(results: list) -> list:
    return [r for r in results if not isinstance(r[2], int)]


def read_all(config: dict, topic: str, partitions, timeout: float = 30) -> dict[int, list]:
    """Every record of `partitions` up to each one's high watermark at the start of the
    read: {partition: [(offset, value), ...]}."""
    read = read_partitions(config["bootstrap.servers"], topic, partitions, timeout, config=config)
    return {p: [(m.offset(), m.value()) for m in messages] for p, messages in read.items()}


def read_committed(config: dict, topic: str, partitions: int, want: int, timeout: float = 30) -> list[bytes]:
    """Values a read_committed consumer sees: until `want` arrived, then two more seconds
    (anything extra would be a record it must not see)."""
    consumer = Consumer({**config, "group.id": f"committed-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    values = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.time() + timeout
        while len(values) < want and time.time() < deadline:
            values += [m.value() for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
        end = time.time() + 2
        while time.time() < end:
            values += [m.value() for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return values


def isr_picture(cluster: Cluster, topic: str, bootstrap: str | None = None) -> dict[int, tuple[int, list[int]]]:
    """{partition: (leader, sorted ISR)}."""
    return {p: (d["leader"], sorted(d["isr"])) for p, d in cluster.describe(topic, bootstrap).items()}


class BackgroundProducer:
    """An idempotent acks=all producer sending 0, 1, 2, ... round robin over the partitions
    (~150 a second) from a thread until `stop()`; records what was acknowledged where."""

    def __init__(self, config: dict, topic: str, partitions: int):
        self.topic, self.partitions = topic, partitions
        self.producer = Producer({**config, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                  "message.timeout.ms": 60000})
        self.sent = 0
        self.acked: dict[int, tuple[int, int]] = {}  # value -> (partition, offset)
        self.errors = []
        self.unflushed = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _delivered(self, err, msg):
        if err is not None:
            self.errors.append((int(msg.value()), err))
        else:
            self.acked[int(msg.value())] = (msg.partition(), msg.offset())

    def _run(self):
        while not self._stop.is_set():
            value = self.sent
            self.producer.produce(self.topic, str(value).encode(), partition=value % self.partitions,
                                  on_delivery=self._delivered)
            self.sent += 1
            self.producer.poll(0)
            time.sleep(0.005)
        self.unflushed = self.producer.flush(60)

    def acked_on(self, partition: int) -> int:
        return sum(1 for p, _ in list(self.acked.values()) if p == partition)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=90)
        assert not self._thread.is_alive(), "the producer did not finish flushing"


def test_brokers_replicate_over_sasl_ssl(tmp_path, certs):
    topic, partitions = "ib-replicated", 3
    with secured_cluster(tmp_path, certs, extra=AUTHORIZER) as cluster:
        admin_config = internal_client(cluster, certs, "admin")
        # The topic admin and every produce/consume are done as User:admin over SASL_SSL. The
        # PLAINTEXT principal User:ANONYMOUS only gets DESCRIBE on topics, which the harness's
        # Metadata helpers (describe, wait_for_full_isr, leader_of) need, and no
        # CLUSTER_ACTION: a broker fetching over the PLAINTEXT listener would be refused, so
        # replication can only work over INTERNAL as User:broker.
        admin = AdminClient(admin_config)
        describe_topics = AclBinding(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                                     AclOperation.DESCRIBE, AclPermissionType.ALLOW)
        for future in admin.create_acls([describe_topics]).values():
            future.result(timeout=15)

        create_topics(admin_config, NewTopic(topic, partitions, 3, config={"min.insync.replicas": "2"}),
                      NewTopic("ib-all-replicas", 3, 3, config={"min.insync.replicas": "3"}))
        described = cluster.wait_for_full_isr(topic, partitions)
        cluster.wait_for_full_isr("ib-all-replicas", 3)
        assert sorted(p["leader"] for p in described.values()) == [1, 2, 3], described

        # A new partition's ISR starts full, so that alone proves nothing. With
        # min.insync.replicas=3, acks=all is only answered once both followers fetched the
        # record: one record per partition covers every broker fetching from every other.
        leaders = {p: d["leader"] for p, d in cluster.describe("ib-all-replicas").items()}
        assert sorted(leaders.values()) == [1, 2, 3], leaders
        results = [r for p in range(3) for r in produce(admin_config, "ib-all-replicas", [f"p{p}".encode()], p)]
        assert not failed(results), f"{results}\n{cluster.log_tails()}"

        background = BackgroundProducer(admin_config, topic, partitions)
        try:
            wait_for(lambda: len(background.acked) >= 200, 20, "200 acks=all records before the kill",
                     show=lambda: (len(background.acked), background.errors[:3]))
            victim = cluster.leader_of(topic, 0)
            acked_before = background.acked_on(0)
            cluster.kill(victim)
            killed_at = time.time()
            new_leader = cluster.leader_of(topic, 0, timeout=30)
            assert new_leader != victim
            print(f"partition 0: broker {new_leader} leads {time.time() - killed_at:.1f} s after broker {victim} "
                  "was killed")
            # Produce continues to the partition the victim led, now led by another broker.
            wait_for(lambda: background.acked_on(0) >= acked_before + 100, 30,
                     f"acks on partition 0 under its new leader {new_leader}",
                     show=lambda: (background.acked_on(0), background.errors[:3]))
            # Out of the ISRs while down, so that being back in them below says it fetched.
            wait_for(lambda: all(victim not in d["isr"] for d in cluster.describe(topic).values()), 15,
                     f"broker {victim} to leave the ISRs of {topic}", show=lambda: isr_picture(cluster, topic))

            # Back on its port and data: rejoining the ISRs takes fetches that authenticate
            # over SASL_SSL and are allowed CLUSTER_ACTION.
            cluster.start(victim)
            restarted_at = time.time()
            cluster.wait_for_full_isr(topic, partitions, timeout=45)
            print(f"broker {victim} back in every ISR {time.time() - restarted_at:.1f} s after its restart")
            acked_now = len(background.acked)
            wait_for(lambda: len(background.acked) >= acked_now + 100, 20, "acks after the rejoin")
        finally:
            background.stop()
        assert background.unflushed == 0, background.unflushed
        assert not background.errors, background.errors[:10]
        assert len(background.acked) == background.sent

        records = read_all(admin_config, topic, range(partitions))
        stored = collections.Counter(int(v) for rs in records.values() for _, v in rs)
        at = {(p, o): int(v) for p, rs in records.items() for o, v in rs}
        moved = [(v, where, at.get(where)) for v, where in sorted(background.acked.items()) if at.get(where) != v]
        assert not moved, f"{len(moved)} acknowledged records lost or moved (value, (partition, offset), found): " \
                          f"{moved[:10]}"
        duplicated = sorted(v for v, n in stored.items() if n > 1)
        assert not duplicated, f"{len(duplicated)} values stored more than once: {duplicated[:10]}"
        assert set(stored) == set(range(background.sent))

        # A transaction over partitions led by different brokers: whichever broker
        # coordinates it, the markers for the others' partitions go over INTERNAL
        # (WriteTxnMarkers needs CLUSTER_ACTION too).
        create_topics(admin_config, NewTopic("ib-txn", 3, 3))
        cluster.wait_for_full_isr("ib-txn", 3)
        txn_leaders = {d["leader"] for d in cluster.describe("ib-txn").values()}
        assert len(txn_leaders) > 1, cluster.describe("ib-txn")
        producer = Producer({**admin_config, "transactional.id": "ib-txn", "transaction.timeout.ms": 20000})
        producer.init_transactions(30)
        producer.begin_transaction()
        for p in range(3):
            for i in range(5):
                producer.produce("ib-txn", f"committed-{p}-{i}".encode(), partition=p)
        producer.commit_transaction(30)
        producer.begin_transaction()
        for p in range(3):
            producer.produce("ib-txn", f"aborted-{p}".encode(), partition=p)
        producer.flush(30)
        producer.abort_transaction(30)
        seen = read_committed(admin_config, "ib-txn", 3, 15)
        assert sorted(seen) == sorted(f"committed-{p}-{i}".encode() for p in range(3) for i in range(5)), seen


def test_controller_failover_and_acl_changes_over_sasl_ssl(tmp_path, certs):
    """ACLs created and deleted through one broker apply on every broker (each leader
    checks alice's produce); the controller is killed and its successor, elected while
    brokers talk over SASL_SSL only, creates a topic that replicates; the killed broker
    comes back into every ISR."""
    topic = "ctl-acl"
    with secured_cluster(tmp_path, certs, extra=AUTHORIZER) as cluster:
        admin_config = internal_client(cluster, certs, "admin")
        alice = internal_client(cluster, certs, "alice")
        admin = AdminClient(admin_config)  # must outlive its futures
        describe_topics = AclBinding(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                                     AclOperation.DESCRIBE, AclPermissionType.ALLOW)
        for future in admin.create_acls([describe_topics]).values():
            future.result(timeout=15)
        create_topics(admin_config, NewTopic(topic, 3, 3))
        described = cluster.wait_for_full_isr(topic, 3)
        assert sorted(d["leader"] for d in described.values()) == [1, 2, 3], described

        def alice_writes_everywhere() -> bool:
            results = [r for p in range(3) for r in produce(alice, topic, [b"a"], p, timeout=15)]
            return not failed(results)

        def alice_refused_everywhere() -> bool:
            results = [r for p in range(3) for r in produce(alice, topic, [b"a"], p, timeout=15)]
            return len(failed(results)) == 3 and all(
                r[2].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for r in failed(results))

        assert alice_refused_everywhere()
        # Created through broker 1's INTERNAL listener only.
        via_one = AdminClient({**admin_config, "bootstrap.servers": f"127.0.0.1:{cluster.broker(1).internal_port}"})
        write = AclBinding(ResourceType.TOPIC, "ctl-", ResourcePatternType.PREFIXED, "User:alice", "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW)
        for future in via_one.create_acls([write]).values():
            future.result(timeout=15)
        wait_for(alice_writes_everywhere, 15, "alice's WRITE to apply on the leaders of all three partitions")

        # The controller goes; another broker is elected and creates a topic that replicates.
        epoch, controller = wait_for(cluster.controller, 15, "a controller")
        cluster.kill(controller)
        new_epoch, new_controller = wait_for(
            lambda: (c := cluster.controller()) and c[0] > epoch and c or None, 30, "a new controller")
        assert new_controller != controller
        print(f"broker {new_controller} took over from broker {controller} (controller epoch {new_epoch})")
        create_topics(admin_config, NewTopic("ctl-after-failover", 2, 2))
        cluster.wait_for_full_isr("ctl-after-failover", 2, replication_factor=2, timeout=30)
        results = [r for p in range(2) for r in produce(alice, "ctl-after-failover", [f"x{p}".encode()], p)]
        assert not failed(results), results

        # Deleted through another broker: refused again on every live leader.
        other = next(n for n in (1, 2, 3) if n not in (1, controller))
        via_other = AdminClient({**admin_config, "bootstrap.servers": f"127.0.0.1:{cluster.broker(other).internal_port}"})
        for future in via_other.delete_acls([AclBindingFilter(ResourceType.TOPIC, "ctl-", ResourcePatternType.PREFIXED,
                                                              "User:alice", "*", AclOperation.WRITE,
                                                              AclPermissionType.ALLOW)]).values():
            assert len(future.result(timeout=15)) == 1
        wait_for(lambda: cluster.leader_of(topic, 0) != controller and alice_refused_everywhere(), 30,
                 "alice refused again once the ACL is deleted")

        cluster.start(controller)
        cluster.wait_for_full_isr(topic, 3, timeout=45)


def test_scram_between_brokers(tmp_path, certs):
    mechanism = "SCRAM-SHA-512"
    with secured_cluster(tmp_path, certs, mechanism=mechanism, listener_keys=False) as cluster:
        # SCRAM users live in the metadata store, so the brokers' own user cannot exist yet:
        # their fetches fail (and are retried). Clients of the PLAINTEXT listener are served.
        create_topics({"bootstrap.servers": cluster.bootstrap},
                      NewTopic("ib-scram-early", 3, 3, config={"min.insync.replicas": "3"}))

        def failing():
            return [n for n, b in cluster.brokers.items() if AUTH_FAILED in b.log_path.read_text(errors="replace")]

        assert wait_for(failing, 15, f"a broker to log '{AUTH_FAILED}' before its SCRAM user exists",
                        show=cluster.log_tails)

        admin = cluster.admin()
        upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                                f"{user}-secret".encode())
                   for user in ("broker", "alice")]
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result(timeout=15)
        created_at = time.time()

        # A topic created now: acks=all under min.insync.replicas=3 is answered only once
        # both followers of each partition fetched the record over SASL_SSL with SCRAM.
        cluster.create_topic("ib-scram", 3, config={"min.insync.replicas": "3"})
        alice = internal_client(cluster, certs, "alice", mechanism)
        results = produce(alice, "ib-scram", [f"v{i}".encode() for i in range(30)])
        assert not failed(results), f"{failed(results)[:3]}\n{cluster.log_tails()}"
        print(f"all replicas of ib-scram have the records {time.time() - created_at:.1f} s after the credential")
        cluster.wait_for_full_isr("ib-scram", 3)
        records = read_all(alice, "ib-scram", range(3))
        assert sorted(v for rs in records.values() for _, v in rs) == sorted(f"v{i}".encode() for i in range(30))

        # The topic created before the credential: its followers, retrying, now authenticate.
        results = produce(alice, "ib-scram-early", [f"e{i}".encode() for i in range(9)])
        assert not failed(results), f"{failed(results)[:3]}\n{cluster.log_tails()}"
        cluster.wait_for_full_isr("ib-scram-early", 3)


def test_a_broker_with_the_wrong_password_stays_out_of_the_isrs(tmp_path, certs):
    topic, partitions, odd = "ib-wrong", 6, 3
    with secured_cluster(tmp_path, certs, passwords={odd: "wrong"}) as cluster:
        # It still registers (Cluster started it) and clients of its PLAINTEXT listener are served.
        admin = cluster.admin()
        for future in admin.create_topics([NewTopic(topic, partitions, 3)]).values():
            future.result(timeout=30)
        bootstrap = f"{cluster.broker(1).bootstrap},{cluster.broker(2).bootstrap}"

        def settled():
            picture = isr_picture(cluster, topic, bootstrap)
            if sorted(picture) != list(range(partitions)):
                return None
            for p, (leader, isr) in picture.items():
                expected = [1, 2, 3] if leader == odd else sorted({1, 2, 3} - {odd})
                if isr != expected:
                    return None
            return picture

        # Kafka's placement spreads the leaders; those of broker 3 keep their full ISR, as
        # brokers 1 and 2 log in to it with the right password.
        picture = wait_for(settled, 15, f"broker {odd} out of the ISRs of partitions led by 1 and 2 only",
                           show=lambda: isr_picture(cluster, topic, bootstrap))
        assert sorted(leader for leader, _ in picture.values()) == [1, 1, 2, 2, 3, 3], picture

        # min.insync.replicas=2: acks=all works on every partition.
        results = [r for p in range(partitions)
                   for r in produce({"bootstrap.servers": cluster.bootstrap}, topic, [f"v{p}".encode()], p)]
        assert not failed(results), f"{results}\n{cluster.log_tails()}"
        assert settled() == picture, f"broker {odd} rejoined an ISR: {isr_picture(cluster, topic, bootstrap)}"

        log = cluster.broker(odd).log_path.read_text(errors="replace")
        warnings = [line for line in log.splitlines() if AUTH_FAILED in line]
        assert warnings, cluster.log_tails()
        assert any("WARN" in line for line in warnings), warnings[:3]


# Refused at start

@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    server = Etcd(tmp_path_factory.mktemp("ib-etcd"))
    yield server
    server.stop()


def start_outcome(tmp_path: Path, etcd: Etcd, settings: dict[str, str], timeout: float = 30) -> tuple[int | None, str]:
    """Runs the broker alone (in cluster mode, on `etcd`) with `settings`. Returns (exit code,
    log) once it exits, or (None, log) once it logs `rivulet started` (it is then killed)."""
    data = tmp_path / f"refused-{uuid.uuid4().hex[:8]}"
    data.mkdir()
    args = [str(RIVULET_BIN), "--override", "node.id=1", "--override", f"log.dirs={data / 'data'}",
            "--override", f"metadata.store={etcd.url(data.name)}"]
    for key, value in settings.items():
        args += ["--override", f"{key}={value}"]
    log_path = data / "broker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                return proc.returncode, log_path.read_text(errors="replace")
            if b"rivulet started" in log_path.read_bytes():
                return None, log_path.read_text(errors="replace")
            time.sleep(0.05)
        raise AssertionError(f"neither exited nor started within {timeout} s:\n{log_path.read_text()[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def without(settings: dict[str, str], *keys: str) -> dict[str, str]:
    return {k: v for k, v in settings.items() if k not in keys}


def ssl_only(settings: dict[str, str]) -> dict[str, str]:
    """INTERNAL as SSL (no SASL settings: they would be refused as unused) without a truststore."""
    kept = {k: v for k, v in settings.items() if "sasl" not in k and "truststore" not in k}
    return {**kept, "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SSL"}


REFUSALS = {

    # case: (how the base configuration is changed, the keys the refusal names or None if it starts)
    "accepted": (lambda s: s, None),
    "both-keys": (lambda s: {**s, "security.inter.broker.protocol": "SASL_SSL"},
                  ["inter.broker.listener.name", "security.inter.broker.protocol"]),
    "unknown-listener": (lambda s: {**s, "inter.broker.listener.name": "REPLICATION"},
                         ["inter.broker.listener.name"]),
    "no-mechanism": (lambda s: without(s, "sasl.mechanism.inter.broker.protocol"),
                     ["sasl.mechanism.inter.broker.protocol"]),
    "ssl-without-truststore": (ssl_only, ["ssl.truststore.location"]),
    # A login is only needed in cluster mode (which start_outcome runs in).
    "no-credentials": (lambda s: {**s, "listener.name.internal.plain.sasl.jaas.config": plain_jaas(password=None)},
                       ["listener.name.internal.plain.sasl.jaas.config"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_inter_broker_settings_refused_at_start(tmp_path, certs, etcd, case):
    change, named = REFUSALS[case]
    settings = change(inter_broker_settings(free_port(), free_port(), certs))
    code, log = start_outcome(tmp_path, etcd, settings)
    if named is None:
        assert code is None, f"the base configuration did not start (exit {code}):\n{log[-3000:]}"
        # Every key of it is enforced, so none may be reported as ignored.
        ignored = [line for line in log.splitlines() if "unknown configuration key ignored" in line]
        assert not ignored, "\n".join(ignored)
        return
    assert code is not None, f"started although it should have refused ({case}):\n{log[-3000:]}"
    assert code != 0, log[-3000:]
    missing = [key for key in named if key not in log]
    assert not missing, f"the refusal does not name {missing}:\n{log[-3000:]}"
