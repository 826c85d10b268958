"""TLS between the brokers and etcd (`metadata.store.ssl.*`, named after Kafka's
`zookeeper.ssl.*`), against a real etcd serving its clients over TLS only and requiring
their certificates (`--client-cert-auth`), with certificates made by the test (openssl,
keytool): a three-broker cluster with etcd authentication on top of mutual TLS serves,
replicates and fails over; brokers without TLS, trusting another CA, offering no
certificate or reaching an etcd whose certificate names another host fail to start within
their connection timeout, saying why; settings that would not be enforced refuse start."""

import json
import ssl
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from cluster import Cluster, read_partitions
from conftest import Broker, Etcd

ROOT_PASSWORD = "r00t-Secret"
TRUST_PASSWORD = "trust-Secret"
STORE_PASSWORD = "st0re-Secret"


def run(*cmd: str, cwd: Path):
    out = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def issue(d: Path, ca: str, name: str, subject: str, usage: str, san: str = ""):
    """An EC P-256 key `name.key` and certificate `name.pem` signed by `ca`, valid two days."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("openssl", "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}")
    run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """`ca` (etcd's CA) and `other-ca`; etcd's certificate for 127.0.0.1 (`etcd`, also a
    client certificate: etcd's gateway uses it towards etcd) and one for another host
    (`misnamed`); the brokers' client certificate as a PEM bundle (`broker.pem`) and as
    PKCS12 (`broker.p12`), and a keytool-made PKCS12 truststore with the CA."""
    d = tmp_path_factory.mktemp("etcd-certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca, cn in [("ca", "etcd test CA"), ("other-ca", "another CA")]:
        run("openssl", "req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj",
            f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    issue(d, "ca", "etcd", "/CN=etcd", "serverAuth,clientAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    issue(d, "ca", "misnamed", "/CN=etcd.invalid", "serverAuth,clientAuth", "subjectAltName=DNS:etcd.invalid\n")
    issue(d, "ca", "client", "/CN=rivulet-broker", "clientAuth")
    (d / "broker.pem").write_text((d / "client.key").read_text() + (d / "client.pem").read_text())
    run("openssl", "pkcs12", "-export", "-inkey", "client.key", "-in", "client.pem", "-certfile", "ca.pem",
        "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{STORE_PASSWORD}", cwd=d)
    run("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-storetype", "PKCS12",
        "-keystore", "truststore.p12", "-storepass", TRUST_PASSWORD, cwd=d)
    # The layout conftest.Etcd serves from; the misnamed etcd gets a directory of its own.
    misnamed = d / "misnamed-etcd"
    misnamed.mkdir()
    for name in ("ca.pem", "client.pem", "client.key"):
        (misnamed / name).write_bytes((d / name).read_bytes())
    (misnamed / "etcd.pem").write_bytes((d / "misnamed.pem").read_bytes())
    (misnamed / "etcd.key").write_bytes((d / "misnamed.key").read_bytes())
    return d


@pytest.fixture(scope="module")
def tls_etcd(certs, tmp_path_factory):
    server = Etcd(tmp_path_factory.mktemp("tls-etcd"), tls=certs)
    yield server
    server.stop()


def pem_settings(certs: Path, truststore: str = "ca.pem") -> tuple[str, ...]:
    return ("metadata.store.ssl.client.enable=true", f"metadata.store.ssl.truststore.location={certs / truststore}",
            f"metadata.store.ssl.keystore.location={certs / 'broker.pem'}")


def etcd_api(etcd: Etcd, certs: Path, path: str, body: dict) -> dict:
    """A call to etcd's JSON gateway over TLS with the client certificate."""
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(f"https://127.0.0.1:{etcd.client_port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def refused_start(broker: Broker, timeout_ms: int = 2000) -> str:
    """Starts `broker`, which must exit (non-zero) on its own; returns its log."""
    started = time.time()
    with pytest.raises(RuntimeError, match="broker exited"):
        broker.start()
    assert broker.proc.returncode != 0
    assert time.time() - started < timeout_ms / 1000 + 15, "it did not give up within its connection timeout"
    return broker.log_path.read_text(errors="replace")


def test_a_cluster_on_etcd_over_mutual_tls_with_authentication_serves_and_fails_over(tmp_path, certs):
    # Brokers 1 and 2 read PEM stores; broker 3 PKCS12 ones (told by their file names, as
    # ZooKeeper's client tells them): openssl's key store and keytool's truststore.
    settings = (*pem_settings(certs), "metadata.store.username=root", f"metadata.store.password={ROOT_PASSWORD}")
    cluster = Cluster(tmp_path, extra=settings, etcd_tls=certs)
    cluster.brokers[3].extra += [f"metadata.store.ssl.truststore.location={certs / 'truststore.p12'}",
                                 f"metadata.store.ssl.truststore.password={TRUST_PASSWORD}",
                                 f"metadata.store.ssl.keystore.location={certs / 'broker.p12'}",
                                 f"metadata.store.ssl.keystore.password={STORE_PASSWORD}"]
    # etcd authentication on top of the certificates, as `etcdctl user add root; auth enable`.
    etcd_api(cluster.etcd, certs, "/v3/auth/user/add", {"name": "root", "password": ROOT_PASSWORD})
    etcd_api(cluster.etcd, certs, "/v3/auth/user/grant", {"user": "root", "role": "root"})
    etcd_api(cluster.etcd, certs, "/v3/auth/enable", {})
    with cluster:
        for broker in cluster.brokers.values():
            log = broker.log_path.read_text(errors="replace")
            assert "https://127.0.0.1" in log and "broker registered in etcd" in log, broker.log_tail()
            assert ROOT_PASSWORD not in log and STORE_PASSWORD not in log and TRUST_PASSWORD not in log
        topic = "over-tls"
        cluster.create_topic(topic, partitions=1, replication_factor=3)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 20000})
        delivered = []
        for i in range(20):
            producer.produce(topic, f"v{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
        producer.flush(20)
        assert delivered == [None] * 20, delivered

        # kill -9 of the leader: a successor is elected through etcd over TLS and serves.
        leader = cluster.leader_of(topic, 0)
        cluster.kill(leader)
        successor = cluster.leader_of(topic, 0, timeout=20)
        assert successor != leader
        producer = Producer({"bootstrap.servers": cluster.live_bootstrap, "acks": "all",
                             "message.timeout.ms": 20000})
        for i in range(20, 30):
            producer.produce(topic, f"v{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
        producer.flush(20)
        assert delivered == [None] * 30, delivered
        records = read_partitions(cluster.live_bootstrap, topic, [0], timeout=30)[0]
        assert [m.value() for m in records] == [f"v{i}".encode() for i in range(30)]


def test_brokers_that_cannot_reach_etcd_over_tls_stop_and_say_why(tmp_path, certs, tls_etcd):
    def broker(*settings: str) -> Broker:
        d = tmp_path / uuid.uuid4().hex[:8]
        d.mkdir()
        return Broker(d, extra=(f"metadata.store={tls_etcd.url('refused')}",
                                "metadata.store.connection.timeout.ms=2000", *settings))

    # No TLS settings: plaintext gRPC to a TLS port gets nowhere, and the error says so.
    log = refused_start(broker())
    assert f"etcd at http://127.0.0.1:{tls_etcd.client_port} did not answer within 2000 ms" in log, log[-3000:]
    assert "metadata.store.ssl.client.enable" in log, log[-3000:]

    # Trusting another CA: etcd's certificate is refused, and the log names the reason.
    log = refused_start(broker(*pem_settings(certs, truststore="other-ca.pem")))
    assert f"etcd at https://127.0.0.1:{tls_etcd.client_port} did not answer" in log, log[-3000:]
    assert "UnknownIssuer" in log or "unknown issuer" in log.lower(), log[-3000:]

    # No client certificate for an etcd that requires one.
    log = refused_start(broker("metadata.store.ssl.client.enable=true",
                               f"metadata.store.ssl.truststore.location={certs / 'ca.pem'}"))
    assert "did not answer within 2000 ms" in log, log[-3000:]

    # Settings that would not be enforced stop the broker at once, naming the key.
    for settings, key in [((f"metadata.store.ssl.truststore.location={certs / 'ca.pem'}",),
                           "metadata.store.ssl.truststore.location"),
                          (("metadata.store.ssl.client.enable=true",), "metadata.store.ssl.truststore.location"),
                          ((*pem_settings(certs), "metadata.store.ssl.protocol=TLSv1.2"), "metadata.store.ssl.protocol")]:
        started = time.time()
        log = refused_start(broker(*settings))
        assert key in log and time.time() - started < 5, log[-3000:]


def test_the_host_name_in_etcds_certificate_is_verified_unless_turned_off(tmp_path, certs):
    etcd = Etcd(tmp_path, tls=certs / "misnamed-etcd")
    try:
        def broker(*settings: str) -> Broker:
            d = tmp_path / uuid.uuid4().hex[:8]
            d.mkdir()
            return Broker(d, extra=(f"metadata.store={etcd.url('names')}", "metadata.store.connection.timeout.ms=2000",
                                    *pem_settings(certs), *settings))

        log = refused_start(broker())
        assert "NotValidForName" in log or "not valid for name" in log.lower(), log[-3000:]
        # Empty, as Kafka's ssl.endpoint.identification.algorithm: the chain is still verified.
        accepted = broker("metadata.store.ssl.endpoint.identification.algorithm=").start()
        try:
            assert "broker registered in etcd" in accepted.log_tail(100)
        finally:
            accepted.kill()
    finally:
        etcd.stop()
