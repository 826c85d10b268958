"""TLS on SSL and SASL_SSL listeners, with certificates made by the test (openssl) and
real clients over real sockets: confluent-kafka, Kafka 4.3.1's Java tools with a PEM
truststore, mutual TLS naming the client by its certificate, SASL PLAIN over TLS, and the
failures a broker must survive (a plaintext client on the TLS port, a cut handshake).
PKCS12 stores as `openssl pkcs12 -export` and Java 17's keytool make them serve the broker
and the Java tools, and a wrong store password stops the broker naming the setting."""

import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import RIVULET_BIN, Broker, free_port, java

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_alice="alice-secret";')


def openssl(*args: str, cwd: Path):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """A CA, a broker certificate for 127.0.0.1/localhost and a client certificate, all
    EC P-256, valid for two days. `broker.pem` holds the broker's key and chain, as Kafka's
    PEM key stores do."""
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Rivulet Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, subject, usage, san in [
        ("server", "/CN=localhost", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
        ("client", "/O=Team/OU=payments/CN=app", "clientAuth", ""),
    ]:
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        (d / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    (d / "broker.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    return d


def tls_broker(tmp_path, certs: Path, *extra: str, protocol: str = "SSL",
               keystore: tuple[str, ...] | None = None) -> Broker:
    """A broker with a PLAINTEXT and a `protocol` listener; its key store is `broker.pem`
    unless `keystore` gives the ssl.keystore.* settings."""
    tls_port = free_port()
    broker = Broker(tmp_path)
    listeners = f"PLAINTEXT://127.0.0.1:{broker.port},{protocol}://127.0.0.1:{tls_port}"
    if keystore is None:
        keystore = ("ssl.keystore.type=PEM", f"ssl.keystore.location={certs / 'broker.pem'}")
    broker.extra = [f"listeners={listeners}", f"advertised.listeners={listeners}", *keystore, *extra]
    broker.tls_bootstrap = f"127.0.0.1:{tls_port}"
    return broker.start()


def ssl_client(broker, certs: Path, **extra) -> dict:
    return {"bootstrap.servers": broker.tls_bootstrap, "security.protocol": "SSL",
            "ssl.ca.location": str(certs / "ca.pem"), **extra}


def round_trip(config: dict, count: int = 20) -> list[bytes]:
    """Produces `count` records to a new topic and reads them back with `config`."""
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    errors = []
    producer = Producer({**config, "error_cb": errors.append, "message.timeout.ms": 15000})
    delivered = []
    for i in range(count):
        producer.produce(topic, f"v{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(20)
    if len(delivered) != count or any(delivered):
        raise KafkaException(f"produce failed: {delivered[:1]} {errors[:1]}")
    consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = time.time() + 20
    while len(values) < count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            values.append(msg.value())
    consumer.close()
    return values


def cannot_connect(config: dict) -> bool:
    """Whether `config` fails to list the topics within a few seconds."""
    try:
        AdminClient({**config, "socket.timeout.ms": 3000}).list_topics(timeout=5)
        return False
    except KafkaException:
        return True


def test_ssl_with_confluent_kafka_and_the_java_tools_and_bad_peers_do_not_stop_it(tmp_path, certs):
    broker = tls_broker(tmp_path, certs)
    try:
        assert round_trip(ssl_client(broker, certs)) == [f"v{i}".encode() for i in range(20)]

        # Kafka 4.3.1's kafka-topics over TLS, trusting the CA through a PEM truststore.
        client_props = tmp_path / "client.properties"
        client_props.write_text(f"security.protocol=SSL\nssl.truststore.type=PEM\n"
                                f"ssl.truststore.location={certs / 'ca.pem'}\n")
        out = java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.tls_bootstrap,
                   "--command-config", str(client_props), "--create", "--topic", "made-over-tls",
                   "--partitions", "2")
        assert out.returncode == 0, out.stdout + out.stderr
        out = java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.tls_bootstrap,
                   "--command-config", str(client_props), "--list")
        assert "made-over-tls" in out.stdout.split(), out.stdout + out.stderr

        # A client that does not trust the broker's CA, and a plaintext client on the TLS port, fail.
        assert cannot_connect({"bootstrap.servers": broker.tls_bootstrap, "security.protocol": "SSL"})
        assert cannot_connect({"bootstrap.servers": broker.tls_bootstrap})
        # Half a handshake, then nothing; and garbage instead of a ClientHello.
        host, port = broker.tls_bootstrap.split(":")
        stalled = socket.create_connection((host, int(port)))
        stalled.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]))
        with socket.create_connection((host, int(port))) as garbage:
            garbage.sendall(b"\x00\x00\x00\x10" + b"\xff" * 16)
            garbage.settimeout(10)
            garbage.recv(1024)  # an alert or the close: raises if the broker just hangs
        # The broker keeps serving TLS and plaintext clients meanwhile.
        assert round_trip(ssl_client(broker, certs), 5) == [f"v{i}".encode() for i in range(5)]
        assert round_trip({"bootstrap.servers": broker.bootstrap}, 5) == [f"v{i}".encode() for i in range(5)]
        stalled.close()
        assert broker.proc.poll() is None
        assert "TLS handshake failed" in broker.log_path.read_text()
    finally:
        broker.kill()


def test_mutual_tls_admits_only_certified_clients_and_names_them_by_their_certificate(tmp_path, certs, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info,rivulet_broker::connection=debug")
    broker = tls_broker(tmp_path, certs, "ssl.client.auth=required", "ssl.truststore.type=PEM",
                        f"ssl.truststore.location={certs / 'ca.pem'}")
    try:
        assert cannot_connect(ssl_client(broker, certs))
        with_certificate = ssl_client(broker, certs, **{"ssl.certificate.location": str(certs / "client.pem"),
                                                        "ssl.key.location": str(certs / "client.key")})
        assert round_trip(with_certificate) == [f"v{i}".encode() for i in range(20)]
        # Kafka's default principal: the subject in RFC 2253 order, most specific first.
        assert "principal=User:CN=app,OU=payments,O=Team" in broker.log_path.read_text()
    finally:
        broker.kill()


def test_principal_mapping_rules_name_certified_clients(tmp_path, certs, monkeypatch):
    """`ssl.principal.mapping.rules` (KIP-371): the first rule matching the whole subject names
    the principal (`RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L` makes `app@payments`); a subject no
    rule matches fails the connection while other clients are served."""
    monkeypatch.setenv("RUST_LOG", "info,rivulet_broker::connection=debug")
    tls_extra = ("ssl.client.auth=required", "ssl.truststore.type=PEM", f"ssl.truststore.location={certs / 'ca.pem'}")
    client = {"ssl.certificate.location": str(certs / "client.pem"), "ssl.key.location": str(certs / "client.key")}
    (tmp_path / "mapped").mkdir()
    (tmp_path / "unmatched").mkdir()
    broker = tls_broker(tmp_path / "mapped", certs, *tls_extra,
                        r"ssl.principal.mapping.rules=RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT")
    try:
        assert round_trip(ssl_client(broker, certs, **client)) == [f"v{i}".encode() for i in range(20)]
        assert "principal=User:app@payments" in broker.log_path.read_text()
    finally:
        broker.kill()
    broker = tls_broker(tmp_path / "unmatched", certs, *tls_extra,
                        r"ssl.principal.mapping.rules=RULE:^CN=(.*?),OU=ServiceUsers,.*$/$1/")
    try:
        assert cannot_connect(ssl_client(broker, certs, **client))
        assert "no ssl.principal.mapping.rules rule applies" in broker.log_path.read_text()
        assert round_trip({"bootstrap.servers": broker.bootstrap}, 5) == [f"v{i}".encode() for i in range(5)]
    finally:
        broker.kill()


def test_cipher_suites_by_kafkas_names(tmp_path, certs):
    """`ssl.cipher.suites` with Kafka's (JSSE) names: the broker negotiates only the listed
    suite; a suite rustls does not implement refuses start naming the setting."""
    broker = tls_broker(tmp_path, certs, "ssl.cipher.suites=TLS_AES_128_GCM_SHA256")
    try:
        out = subprocess.run(["openssl", "s_client", "-connect", broker.tls_bootstrap, "-brief"],
                             input="", capture_output=True, text=True, timeout=30)
        assert "Ciphersuite: TLS_AES_128_GCM_SHA256" in out.stdout + out.stderr, out.stdout + out.stderr
        assert round_trip(ssl_client(broker, certs), 5) == [f"v{i}".encode() for i in range(5)]
    finally:
        broker.kill()
    with pytest.raises(RuntimeError) as refused:
        tls_broker(tmp_path, certs, "ssl.cipher.suites=TLS_RSA_WITH_AES_128_CBC_SHA")
    assert "ssl.cipher.suites" in str(refused.value) and "is not available" in str(refused.value)


def test_sasl_plain_over_tls(tmp_path, certs):
    broker = tls_broker(tmp_path, certs, "sasl.enabled.mechanisms=PLAIN",
                        f"listener.name.sasl_ssl.plain.sasl.jaas.config={PLAIN_JAAS}", protocol="SASL_SSL")
    try:
        config = {**ssl_client(broker, certs), "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                  "sasl.username": "alice"}
        assert round_trip({**config, "sasl.password": "alice-secret"}) == [f"v{i}".encode() for i in range(20)]
        assert cannot_connect({**config, "sasl.password": "wrong"})
        # TLS without SASL on a SASL_SSL port is not served either.
        assert cannot_connect(ssl_client(broker, certs))
    finally:
        broker.kill()


STORE_PASSWORD = "st0re-Secret"


def keytool(*args: str, cwd: Path):
    out = subprocess.run(["keytool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def pkcs12_keystore(certs: Path, name: str) -> Path:
    """`name`'s key and certificate chain (with the CA) as `openssl pkcs12 -export` writes a
    store by default (OpenSSL 3: PBES2, AES-256, HMAC-SHA256)."""
    store = certs / f"{name}.p12"
    if not store.exists():
        openssl("pkcs12", "-export", "-inkey", f"{name}.key", "-in", f"{name}.pem", "-certfile", "ca.pem",
                "-name", name, "-out", store.name, "-passout", f"pass:{STORE_PASSWORD}", cwd=certs)
    return store


def pkcs12_settings(store: Path, prefix: str = "") -> tuple[str, ...]:
    return (f"{prefix}ssl.keystore.type=PKCS12", f"{prefix}ssl.keystore.location={store}",
            f"{prefix}ssl.keystore.password={STORE_PASSWORD}")


def test_pkcs12_key_store_made_by_openssl_serves_confluent_kafka(tmp_path, certs):
    # Per listener, as Kafka allows: the global PEM settings are overridden for the SSL listener.
    keystore = ("ssl.keystore.type=PEM", f"ssl.keystore.location={certs / 'broker.pem'}",
                *pkcs12_settings(pkcs12_keystore(certs, "server"), prefix="listener.name.ssl."))
    broker = tls_broker(tmp_path, certs, keystore=keystore)
    try:
        assert round_trip(ssl_client(broker, certs)) == [f"v{i}".encode() for i in range(20)]
    finally:
        broker.kill()


@pytest.fixture(scope="module")
def keytool_stores(certs, tmp_path_factory) -> Path:
    """Stores as Kafka's documentation has them made with Java 17's keytool: the broker's
    key pair generated in a PKCS12 key store, its certificate signed by the CA and imported
    back with the CA's; a PKCS12 truststore holding the CA (Java's trusted-certificate
    entries). Plus the client's key store, exported by openssl, for the Java tools."""
    d = tmp_path_factory.mktemp("keytool")
    store = ["-storetype", "PKCS12", "-keystore", "broker.p12", "-storepass", STORE_PASSWORD]
    keytool("-genkeypair", "-alias", "broker", "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2",
            "-dname", "CN=localhost", *store, cwd=d)
    keytool("-certreq", "-alias", "broker", "-file", "broker.csr", *store, cwd=d)
    (d / "broker.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(d / "broker.csr"), "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", str(d / "broker-signed.pem"), "-days", "2", "-extfile", str(d / "broker.ext"), cwd=certs)
    keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(certs / "ca.pem"), *store, cwd=d)
    keytool("-importcert", "-noprompt", "-alias", "broker", "-file", "broker-signed.pem", *store, cwd=d)
    keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(certs / "ca.pem"), "-storetype", "PKCS12",
            "-keystore", "truststore.p12", "-storepass", STORE_PASSWORD, cwd=d)
    pkcs12_keystore(certs, "client")
    return d


def test_keytool_pkcs12_stores_serve_mutual_tls_to_confluent_kafka_and_the_java_tools(tmp_path, certs,
                                                                                       keytool_stores, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info,rivulet_broker::connection=debug")
    broker = tls_broker(tmp_path, certs, "ssl.client.auth=required", "ssl.truststore.type=PKCS12",
                        f"ssl.truststore.location={keytool_stores / 'truststore.p12'}",
                        f"ssl.truststore.password={STORE_PASSWORD}",
                        keystore=(*pkcs12_settings(keytool_stores / "broker.p12"), f"ssl.key.password={STORE_PASSWORD}"))
    try:
        assert cannot_connect(ssl_client(broker, certs))
        with_certificate = ssl_client(broker, certs, **{"ssl.certificate.location": str(certs / "client.pem"),
                                                        "ssl.key.location": str(certs / "client.key")})
        assert round_trip(with_certificate, 5) == [f"v{i}".encode() for i in range(5)]
        assert "principal=User:CN=app,OU=payments,O=Team" in broker.log_path.read_text()

        # Kafka 4.3.1's kafka-topics with PKCS12 stores on the client side: the keytool-made
        # truststore and the client's openssl-made key store.
        client_props = tmp_path / "client.properties"
        client_props.write_text(
            f"security.protocol=SSL\nssl.truststore.type=PKCS12\n"
            f"ssl.truststore.location={keytool_stores / 'truststore.p12'}\nssl.truststore.password={STORE_PASSWORD}\n"
            f"ssl.keystore.type=PKCS12\nssl.keystore.location={certs / 'client.p12'}\n"
            f"ssl.keystore.password={STORE_PASSWORD}\n")
        out = java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.tls_bootstrap,
                   "--command-config", str(client_props), "--create", "--topic", "made-with-pkcs12",
                   "--partitions", "2")
        assert out.returncode == 0, out.stdout + out.stderr
        out = java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.tls_bootstrap,
                   "--command-config", str(client_props), "--list")
        assert "made-with-pkcs12" in out.stdout.split(), out.stdout + out.stderr
    finally:
        broker.kill()


def test_a_wrong_pkcs12_store_password_stops_the_broker_naming_the_setting(tmp_path, certs):
    store = pkcs12_keystore(certs, "server")
    port = free_port()
    out = subprocess.run([str(RIVULET_BIN), "--override", f"listeners=SSL://127.0.0.1:{port}",
                          "--override", "ssl.keystore.type=PKCS12", "--override", f"ssl.keystore.location={store}",
                          "--override", "ssl.keystore.password=not-the-password",
                          "--override", f"log.dirs={tmp_path / 'data'}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "ssl.keystore.password" in out.stderr and "listener SSL" in out.stderr, out.stderr
    assert "password is wrong" in out.stderr, out.stderr
    assert "not-the-password" not in out.stderr + out.stdout
