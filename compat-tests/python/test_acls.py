"""ACLs and the StandardAuthorizer, driven by Kafka 4.3.1's `kafka-acls` and real clients.

One broker runs `authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`
with `super.users=User:admin`: a SASL_PLAINTEXT listener (PLAIN users admin, alice, bob)
and a PLAINTEXT one whose clients are `User:ANONYMOUS`.

- test_acl_apis_answer_security_disabled_without_an_authorizer
- test_prefixed_read_allows_consuming_only (alice: READ on `orders-*` and one group)
- test_transactional_producer_needs_transactional_id_write
- test_removed_acls_stop_applying_and_acls_survive_a_restart
- test_anonymous_clients_see_and_create_nothing
- test_acls_created_through_one_broker_apply_on_every_broker_of_a_cluster (etcd, 3 brokers)
"""

import re
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_port, java

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" '
              'user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";')


@pytest.fixture(scope="module")
def authorized(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("acls")
    sasl_port = free_port()
    broker = Broker(tmp)
    broker.extra = [
        f"listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
    ]
    broker.start()
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    admin_config = tmp / "admin.properties"
    admin_config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="admin-secret";\n')
    broker.admin_config = admin_config
    yield broker
    broker.kill()


def as_user(broker, user, **extra):
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-secret", **extra}


def kafka_acls(broker, *args):
    out = java("org.apache.kafka.tools.AclCommand", "--bootstrap-server", broker.sasl_bootstrap,
               "--command-config", str(broker.admin_config), *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def produce(config, topic, values, timeout=15):
    """Produces `values`; returns the delivery errors (None for each success)."""
    producer = Producer({**config, "message.timeout.ms": 10000})
    results = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, msg: results.append(err))
    producer.flush(timeout)
    return results


def consume(config, topic, count, timeout=20):
    """Consumes from the start; returns (values, errors) once `count` values or an error came."""
    consumer = Consumer({"auto.offset.reset": "earliest", "enable.auto.commit": False, **config})
    consumer.subscribe([topic])
    values, errors = [], []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and len(values) < count and not errors:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(msg.error())
            else:
                values.append(msg.value())
    finally:
        consumer.close()
    return values, errors


def create_as_admin(broker, *topics):
    admin = AdminClient(as_user(broker, "admin"))
    for future in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in topics]).values():
        future.result(timeout=30)


def test_acl_apis_answer_security_disabled_without_an_authorizer(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        out = java("org.apache.kafka.tools.AclCommand", "--bootstrap-server", broker.bootstrap, "--list")
        assert out.returncode != 0
        assert "SecurityDisabledException: No Authorizer is configured." in out.stdout + out.stderr, out.stderr
    finally:
        broker.kill()


def test_prefixed_read_allows_consuming_only(authorized):
    suffix = uuid.uuid4().hex[:6]
    orders, payments, group = f"orders-{suffix}", f"payments-{suffix}", f"alice-group-{suffix}"
    create_as_admin(authorized, orders, payments)
    assert produce(as_user(authorized, "admin"), orders, [b"o1", b"o2", b"o3"]) == [None] * 3
    assert produce(as_user(authorized, "admin"), payments, [b"p1"]) == [None]

    kafka_acls(authorized, "--add", "--allow-principal", "User:alice", "--operation", "Read",
               "--topic", "orders-", "--resource-pattern-type", "prefixed")
    kafka_acls(authorized, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--group", group)
    listed = kafka_acls(authorized, "--list", "--principal", "User:alice")
    assert "resourceType=TOPIC, name=orders-, patternType=PREFIXED" in listed, listed
    assert f"resourceType=GROUP, name={group}, patternType=LITERAL" in listed, listed
    assert len(re.findall(r"principal=User:alice, host=\*, operation=READ, permissionType=ALLOW", listed)) == 2, listed

    alice = as_user(authorized, "alice")
    values, errors = consume({**alice, "group.id": group}, orders, 3)
    assert (values, errors) == ([b"o1", b"o2", b"o3"], []), (values, errors)

    denied = produce(alice, orders, [b"not-allowed"])
    assert [e.code() for e in denied] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], denied

    values, errors = consume({**alice, "group.id": f"other-{suffix}"}, orders, 1)
    assert values == [] and [e.code() for e in errors] == [KafkaError.GROUP_AUTHORIZATION_FAILED], (values, errors)

    visible = set(AdminClient(alice).list_topics(timeout=10).topics)
    assert orders in visible and payments not in visible, visible
    values, errors = consume({**alice, "group.id": group}, payments, 1)
    assert values == [] and [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], (values, errors)


def test_transactional_producer_needs_transactional_id_write(authorized):
    topic = f"orders-tx-{uuid.uuid4().hex[:6]}"
    create_as_admin(authorized, topic)
    kafka_acls(authorized, "--add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", topic)
    bob = as_user(authorized, "bob")
    # Idempotent producing only needs WRITE on a topic (KIP-679).
    assert produce({**bob, "enable.idempotence": True}, topic, [b"idempotent"]) == [None]

    producer = Producer({**bob, "transactional.id": f"bob-tx-{topic}", "transaction.timeout.ms": 10000})
    with pytest.raises(KafkaException) as denied:
        producer.init_transactions(20)
    assert denied.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, denied.value

    kafka_acls(authorized, "--add", "--allow-principal", "User:bob", "--operation", "Write",
               "--transactional-id", f"bob-tx-{topic}")
    producer = Producer({**bob, "transactional.id": f"bob-tx-{topic}", "transaction.timeout.ms": 10000})
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce(topic, b"in-a-transaction")
    producer.commit_transaction(20)


def test_removed_acls_stop_applying_and_acls_survive_a_restart(authorized):
    topic = f"orders-keep-{uuid.uuid4().hex[:6]}"
    create_as_admin(authorized, topic)
    assert produce(as_user(authorized, "admin"), topic, [b"kept"]) == [None]
    kafka_acls(authorized, "--add", "--allow-principal", "User:bob", "--operation", "Read", "--topic", topic,
               "--group", f"bob-{topic}")
    bob = {**as_user(authorized, "bob"), "group.id": f"bob-{topic}"}
    assert consume(bob, topic, 1) == ([b"kept"], [])

    authorized.kill()
    authorized.start()
    assert consume(bob, topic, 1) == ([b"kept"], [])

    kafka_acls(authorized, "--remove", "--force", "--allow-principal", "User:bob", "--operation", "Read",
               "--topic", topic)
    values, errors = consume(bob, topic, 1)
    assert values == [] and [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], (values, errors)
    remaining = kafka_acls(authorized, "--list", "--topic", topic)
    assert "User:bob" not in remaining, remaining


def test_anonymous_clients_see_and_create_nothing(authorized):
    topic = f"anon-{uuid.uuid4().hex[:6]}"
    create_as_admin(authorized, topic)
    anonymous = AdminClient({"bootstrap.servers": authorized.bootstrap})
    assert topic not in anonymous.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as denied:
        anonymous.create_topics([NewTopic(f"{topic}-new", num_partitions=1, replication_factor=1)])[
            f"{topic}-new"].result(timeout=10)
    assert denied.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    out = java("org.apache.kafka.tools.AclCommand", "--bootstrap-server", authorized.bootstrap, "--list")
    assert "ClusterAuthorizationException" in out.stdout + out.stderr, out.stdout + out.stderr
    denied_log = authorized.log_path.read_text(errors="replace")
    assert "authorization denied" in denied_log and "User:ANONYMOUS" in denied_log


def test_acls_created_through_one_broker_apply_on_every_broker_of_a_cluster(tmp_path):
    """Three brokers on etcd. The topic allows everyone everything; a DENY of WRITE for
    `User:ANONYMOUS`, created through broker 1, must stop produces to partitions led by
    each of the three brokers, and its deletion let them through again."""
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    from cluster import Cluster, wait_for

    settings = ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                # The brokers fetch from each other as User:ANONYMOUS over PLAINTEXT: with no
                # ACL on the cluster resource they keep CLUSTER_ACTION.
                "allow.everyone.if.no.acl.found=true")
    with Cluster(tmp_path, extra=settings) as cluster:
        topic = "guarded"
        described = cluster.create_topic(topic, partitions=3)
        assert sorted(p["leader"] for p in described.values()) == [1, 2, 3], described
        admin = AdminClient({"bootstrap.servers": cluster.broker(1).bootstrap})
        allow_all = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:*", "*",
                               AclOperation.ALL, AclPermissionType.ALLOW)
        deny_write = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
                                AclOperation.WRITE, AclPermissionType.DENY)

        def produce_errors():
            """The delivery error code of one record to each partition (0 = delivered)."""
            results = {}
            producer = Producer({"bootstrap.servers": cluster.bootstrap, "message.timeout.ms": 5000,
                                 "enable.idempotence": False, "retries": 0})
            for p in range(3):
                producer.produce(topic, b"v", partition=p,
                                 on_delivery=lambda err, msg: results.__setitem__(msg.partition(),
                                                                                  err.code() if err else 0))
            producer.flush(10)
            return results

        assert produce_errors() == {0: 0, 1: 0, 2: 0}
        for future in admin.create_acls([allow_all, deny_write]).values():
            future.result(timeout=10)
        created = time.time()
        denied = {0: KafkaError.TOPIC_AUTHORIZATION_FAILED, 1: KafkaError.TOPIC_AUTHORIZATION_FAILED,
                  2: KafkaError.TOPIC_AUTHORIZATION_FAILED}
        wait_for(lambda: produce_errors() == denied, timeout=10, what="every leader to deny the write",
                 show=produce_errors)
        print(f"denied on every broker {time.time() - created:.2f} s after CreateAcls returned")

        from confluent_kafka.admin import AclBindingFilter
        deny_filter = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:ANONYMOUS",
                                       "*", AclOperation.WRITE, AclPermissionType.DENY)
        for future in admin.delete_acls([deny_filter]).values():
            assert len(future.result(timeout=10)) == 1
        wait_for(lambda: produce_errors() == {0: 0, 1: 0, 2: 0}, timeout=10, what="every leader to allow again",
                 show=produce_errors)
