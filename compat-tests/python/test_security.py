"""SASL on a SASL_PLAINTEXT listener, driven by real clients over real sockets.

One broker serves a PLAINTEXT listener (for the admin tools) and a SASL_PLAINTEXT one
with PLAIN (users from the JAAS line), SCRAM-SHA-256 and SCRAM-SHA-512 (users created
with Kafka 4.3.1's `kafka-configs`).

- test_plain_good_password_produces_and_consumes / test_plain_wrong_password_fails_and_broker_keeps_serving
- test_scram_users_from_kafka_configs_authenticate (SCRAM-SHA-256 and SCRAM-SHA-512)
- test_request_before_authentication_closes_the_connection
- test_an_ssl_listener_without_a_pem_key_store_refuses_to_start (TLS itself: test_tls.py)
- test_sasl_clients_of_a_cluster_stay_on_the_sasl_listeners (etcd, 3 brokers)
"""

import socket
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from conftest import KAFKA_LIB, RIVULET_BIN, Broker, free_port, java

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" '
              'user_admin="admin-secret" user_alice="alice-secret";')


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security")
    sasl_port = free_port()
    broker = Broker(tmp)
    broker.extra = [
        f"listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
        "connection.failed.authentication.delay.ms=100",
    ]
    broker.start()
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    yield broker
    broker.kill()


def sasl_config(broker, mechanism, user, password):
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def round_trip(broker, mechanism, user, password):
    """Produces one record and consumes it back as `user`; raises on authentication failure."""
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    errors = []
    producer = Producer({**sasl_config(broker, mechanism, user, password),
                         "error_cb": errors.append, "message.timeout.ms": 10000})
    delivered = []
    producer.produce(topic, b"secret-value", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(15)
    assert delivered == [None], (delivered, errors)
    consumer = Consumer({**sasl_config(broker, mechanism, user, password), "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                assert msg.value() == b"secret-value"
                return
        raise AssertionError("no record consumed")
    finally:
        consumer.close()


def authentication_fails(broker, mechanism, user, password) -> str:
    """Connects as `user` and returns the authentication error librdkafka reports."""
    errors = []
    producer = Producer({**sasl_config(broker, mechanism, user, password), "error_cb": errors.append})
    for _ in range(40):
        producer.poll(0.25)
        auth = [e for e in errors if "Authentication" in e.str() or "SASL" in e.str()]
        if auth:
            return auth[0].str()
    raise AssertionError(f"no authentication error: {[e.str() for e in errors]}")


def test_plain_good_password_produces_and_consumes(secured):
    round_trip(secured, "PLAIN", "alice", "alice-secret")


def test_plain_wrong_password_fails_and_broker_keeps_serving(secured):
    error = authentication_fails(secured, "PLAIN", "alice", "wrong")
    assert "Invalid username or password" in error, error
    error = authentication_fails(secured, "PLAIN", "mallory", "alice-secret")
    assert "Invalid username or password" in error, error
    round_trip(secured, "PLAIN", "admin", "admin-secret")


def kafka_configs(broker, *args):
    return java("kafka.admin.ConfigCommand", "--bootstrap-server", broker.bootstrap, *args, lib=KAFKA_LIB)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_users_from_kafka_configs_authenticate(secured, mechanism):
    user = f"scram-{mechanism[-3:]}"
    out = kafka_configs(secured, "--alter", "--entity-type", "users", "--entity-name", user,
                        "--add-config", f"{mechanism}=[iterations=8192,password={user}-secret]")
    assert out.returncode == 0, out.stdout + out.stderr
    described = kafka_configs(secured, "--describe", "--entity-type", "users", "--entity-name", user)
    assert described.returncode == 0, described.stdout + described.stderr
    assert f"SCRAM credential configs for user-principal '{user}' are {mechanism}=iterations=8192" in described.stdout, \
        described.stdout
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    description = admin.describe_user_scram_credentials([user])[user].result(timeout=10)
    infos = [(i.mechanism.name.replace("_", "-"), i.iterations) for i in description.scram_credential_infos]
    assert infos == [(mechanism, 8192)], infos

    round_trip(secured, mechanism, user, f"{user}-secret")
    error = authentication_fails(secured, mechanism, user, "wrong")
    assert f"invalid credentials with SASL mechanism {mechanism}" in error, error

    out = kafka_configs(secured, "--alter", "--entity-type", "users", "--entity-name", user,
                        "--delete-config", mechanism)
    assert out.returncode == 0, out.stdout + out.stderr
    error = authentication_fails(secured, mechanism, user, f"{user}-secret")
    assert f"invalid credentials with SASL mechanism {mechanism}" in error, error
    described = admin.describe_user_scram_credentials([user])
    with pytest.raises(KafkaException) as missing:
        described[user].result(timeout=10)
    assert missing.value.args[0].name() == "RESOURCE_NOT_FOUND"


def test_request_before_authentication_closes_the_connection(secured):
    host, port = secured.sasl_bootstrap.split(":")
    client_id = b"raw"
    # Metadata v1, all topics (null array): a request not allowed before authentication.
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", -1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        assert sock.recv(4096) == b"", "the broker answered instead of closing"


def test_an_ssl_listener_with_a_jks_key_store_refuses_to_start(tmp_path):
    port = free_port()
    out = subprocess.run([str(RIVULET_BIN), "--override", f"listeners=SSL://127.0.0.1:{port}",
                          "--override", "ssl.keystore.location=/etc/kafka/broker.jks",
                          "--override", f"log.dirs={tmp_path / 'data'}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    # No type: Kafka's default, JKS, which is not read; the message tells how to convert it.
    assert "ssl.keystore.type" in out.stderr and "JKS key stores are not read" in out.stderr, out.stderr
    assert "-deststoretype PKCS12" in out.stderr, out.stderr


def test_sasl_clients_of_a_cluster_stay_on_the_sasl_listeners(tmp_path):
    """Three brokers on etcd, each with a PLAINTEXT and a SASL_PLAINTEXT listener. A client
    that bootstraps on broker 2's SASL listener must be sent to every broker's SASL listener
    (Metadata answers per listener), so it can produce to and consume from partitions led
    by each of them."""
    from cluster import Cluster

    cluster = Cluster(tmp_path)
    sasl_ports = {}
    for node_id, broker in cluster.brokers.items():
        sasl_ports[node_id] = free_port()
        endpoints = f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_ports[node_id]}"
        broker.extra = [*broker.extra, f"listeners={endpoints}", f"advertised.listeners={endpoints}",
                        "sasl.enabled.mechanisms=PLAIN",
                        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}"]
    with cluster:
        topic = "sasl-spread"
        described = cluster.create_topic(topic, partitions=3)
        assert sorted(p["leader"] for p in described.values()) == [1, 2, 3], described
        client = {"bootstrap.servers": f"127.0.0.1:{sasl_ports[2]}", "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"}
        metadata = AdminClient(client).list_topics(timeout=10)
        assert {b.id: b.port for b in metadata.brokers.values()} == sasl_ports, metadata.brokers
        producer = Producer({**client, "acks": "all", "message.timeout.ms": 15000})
        delivered = []
        for p in range(3):
            producer.produce(topic, f"v{p}".encode(), partition=p, on_delivery=lambda err, msg: delivered.append(err))
        producer.flush(20)
        assert delivered == [None, None, None], delivered
        consumer = Consumer({**client, "group.id": "sasl-spread", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        values = []
        try:
            deadline = time.time() + 30
            while len(values) < 3 and time.time() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    values.append(msg.value())
        finally:
            consumer.close()
        assert sorted(values) == [b"v0", b"v1", b"v2"], values
