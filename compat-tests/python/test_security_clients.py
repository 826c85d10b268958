"""Security as real clients use it: Kafka 4.3.1's Java tools, kcat and kafkajs against one
broker with every kind of secured listener and the StandardAuthorizer.

The broker (module-scoped) listens on
- PLAINTEXT: only for the start-up check; its clients are User:ANONYMOUS and may do nothing;
- SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN (the `admin` user, a super user);
- SSL with `ssl.client.auth=required`: clients named by their certificate (`User:CN=…`);
- SASL_PLAINTEXT: PLAIN and SCRAM-SHA-256 only,
each configured with `listener.name.<listener>.…` keys; certificates made with openssl.

- test_java_tools_over_sasl_ssl_with_scram_sha_512: kafka-configs creates alice's
  credential, kafka-acls grants her a topic and a group, and as alice kafka-topics,
  the console producer and a console consumer in her group work; kafka-acls --list shows
  them; another group and a wrong password are refused
- test_kcat_over_mutual_tls: produce and consume as the certificate's principal; without
  a certificate kcat cannot connect
- test_kcat_over_sasl_plaintext_plain: produce and consume, also in a group (-G) that
  commits; a wrong password fails
- test_kafkajs_over_sasl_plaintext_scram_sha_256: a user created with
  AlterUserScramCredentials produces and consumes in a group
"""

import re
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from cluster import wait_for
from conftest import KAFKA_LIB, Broker, free_port, java

NODE_DIR = Path(__file__).resolve().parent.parent / "node"

PLAIN_USERS = 'user_admin="admin-secret" user_bob="bob-secret"'
PLAIN_JAAS = f'org.apache.kafka.common.security.plain.PlainLoginModule required {PLAIN_USERS};'
KCAT_PRINCIPAL = "User:CN=kcat-client"


def openssl(*args: str, cwd: Path):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def make_certs(d: Path):
    """A CA, a broker certificate for 127.0.0.1/localhost (`broker.pem`: key and chain, as
    Kafka's PEM key stores hold them) and a client certificate for CN=kcat-client, all
    EC P-256, valid for two days."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Rivulet Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, subject, usage, san in [
        ("server", "/CN=localhost", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
        ("client", "/CN=kcat-client", "clientAuth", ""),
    ]:
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        (d / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    (d / "broker.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security-clients")
    certs = tmp / "certs"
    certs.mkdir()
    make_certs(certs)
    broker = Broker(tmp)
    ports = {name: free_port() for name in ("SASL_SSL", "SSL", "SASL_PLAINTEXT")}
    listeners = ",".join([f"PLAINTEXT://127.0.0.1:{broker.port}",
                          *(f"{name}://127.0.0.1:{port}" for name, port in ports.items())])
    broker.extra = [
        f"listeners={listeners}",
        f"advertised.listeners={listeners}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
        "connection.failed.authentication.delay.ms=100",
        # One key store for both TLS listeners.
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certs / 'broker.pem'}",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={PLAIN_JAAS}",
        "listener.name.ssl.ssl.client.auth=required",
        "listener.name.ssl.ssl.truststore.type=PEM",
        f"listener.name.ssl.ssl.truststore.location={certs / 'ca.pem'}",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
    ]
    broker.start()
    broker.certs = certs
    broker.listener = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    broker.tmp = tmp
    yield broker
    broker.kill()


def admin_client(broker) -> AdminClient:
    """confluent-kafka as the super user, over SASL_PLAINTEXT with PLAIN."""
    return AdminClient({"bootstrap.servers": broker.listener["SASL_PLAINTEXT"], "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "PLAIN", "sasl.username": "admin", "sasl.password": "admin-secret"})


def create_topic_as_admin(broker, topic: str, partitions: int = 1):
    admin = admin_client(broker)  # kept while its futures are pending
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout=30)


def grant(broker, principal: str, topic: str, operations, pattern=ResourcePatternType.LITERAL, group: str | None = None):
    """ALLOW `operations` on `topic` (and READ on `group`) for `principal`, as the super user."""
    bindings = [AclBinding(ResourceType.TOPIC, topic, pattern, principal, "*", op, AclPermissionType.ALLOW)
                for op in operations]
    if group:
        bindings.append(AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, principal, "*",
                                   AclOperation.READ, AclPermissionType.ALLOW))
    admin = admin_client(broker)
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)


def java_properties(path: Path, **props: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def sasl_ssl_properties(broker, path: Path, mechanism: str, module: str, user: str, password: str) -> Path:
    return java_properties(
        path, **{"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
                 "sasl.jaas.config": f'{module} required username="{user}" password="{password}";',
                 "ssl.truststore.type": "PEM", "ssl.truststore.location": str(broker.certs / "ca.pem")})


def ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def listed_acls(output: str) -> set[tuple[str, ...]]:
    """(resource type, name, pattern type, principal, host, operation, permission) of each
    ACL in `kafka-acls --list` output."""
    acls, resource = set(), None
    for line in output.splitlines():
        pattern = re.search(r"ResourcePattern\(resourceType=(\w+), name=(.+?), patternType=(\w+)\)", line)
        if pattern:
            resource = pattern.groups()
            continue
        acl = re.search(r"principal=(.+?), host=(.+?), operation=(\w+), permissionType=(\w+)", line)
        if acl:
            assert resource is not None, output
            acls.add((*resource, *acl.groups()))
    return acls


def test_java_tools_over_sasl_ssl_with_scram_sha_512(secured):
    bootstrap = secured.listener["SASL_SSL"]
    suffix = uuid.uuid4().hex[:6]
    topic, group = f"alice-orders-{suffix}", f"alice-group-{suffix}"
    admin_props = sasl_ssl_properties(secured, secured.tmp / "admin.properties", "PLAIN",
                                      "org.apache.kafka.common.security.plain.PlainLoginModule",
                                      "admin", "admin-secret")
    alice_props = sasl_ssl_properties(secured, secured.tmp / "alice.properties", "SCRAM-SHA-512",
                                      "org.apache.kafka.common.security.scram.ScramLoginModule",
                                      "alice", "alice-secret")

    # The super user, over SASL_SSL with PLAIN, gives alice a SCRAM-SHA-512 credential...
    ok(java("kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, "--command-config", str(admin_props),
            "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--add-config", "SCRAM-SHA-512=[iterations=8192,password=alice-secret]", lib=KAFKA_LIB))
    admin = admin_client(secured)
    described = admin.describe_user_scram_credentials(["alice"])["alice"].result(timeout=30)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == \
           [(ScramMechanism.SCRAM_SHA_512, 8192)], described

    # ...and ACLs for her topic (DESCRIBE_CONFIGS too, which `kafka-topics --describe` asks
    # for) and her group.
    def kafka_acls(*args):
        return ok(java("org.apache.kafka.tools.AclCommand", "--bootstrap-server", bootstrap,
                       "--command-config", str(admin_props), *args))

    topic_operations = ("Create", "Write", "Read", "Describe", "DescribeConfigs")
    kafka_acls("--add", "--allow-principal", "User:alice", "--topic", topic,
               *(arg for op in topic_operations for arg in ("--operation", op)))
    kafka_acls("--add", "--allow-principal", "User:alice", "--operation", "Read", "--group", group)

    # As alice, over SASL_SSL with SCRAM-SHA-512.
    def as_alice(main_class, *args, input=None):
        return java(main_class, "--bootstrap-server", bootstrap, *args, input=input)

    out = ok(as_alice("org.apache.kafka.tools.TopicCommand", "--command-config", str(alice_props),
                      "--create", "--topic", topic, "--partitions", "3"))
    assert f"Created topic {topic}" in out, out
    out = ok(as_alice("org.apache.kafka.tools.TopicCommand", "--command-config", str(alice_props),
                      "--describe", "--topic", topic))
    assert f"Topic: {topic}" in out and "PartitionCount: 3" in out, out
    assert len(re.findall(rf"Topic: {topic}\tPartition: \d\tLeader: 1", out)) == 3, out

    lines = [f"alice record {i}" for i in range(100)]
    ok(as_alice("org.apache.kafka.tools.ConsoleProducer", "--topic", topic, "--command-config", str(alice_props),
                input="\n".join(lines) + "\n"))
    out = ok(as_alice("org.apache.kafka.tools.consumer.ConsoleConsumer", "--topic", topic,
                      "--command-config", str(alice_props), "--group", group, "--from-beginning",
                      "--max-messages", str(len(lines)), "--timeout-ms", "90000"))
    assert sorted(out.splitlines()) == sorted(lines), out

    # The group's offsets were committed: all 100 records, over the three partitions.
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    assert sum(tp.offset for tp in committed.topic_partitions if tp.topic == topic) == len(lines), committed

    # kafka-acls --list over SASL_SSL shows exactly the ACLs added.
    listed = listed_acls(kafka_acls("--list", "--principal", "User:alice"))
    topic_acls = {("TOPIC", topic, "LITERAL", "User:alice", "*", op, "ALLOW")
                  for op in ("CREATE", "WRITE", "READ", "DESCRIBE", "DESCRIBE_CONFIGS")}
    group_acls = {("GROUP", group, "LITERAL", "User:alice", "*", "READ", "ALLOW")}
    assert listed == topic_acls | group_acls, listed

    # Alice may not use another group: FindCoordinator is refused at once. The console
    # consumer reports the failure only through its (silent) logger and stops empty-handed.
    other = f"other-{suffix}"
    out = as_alice("org.apache.kafka.tools.consumer.ConsoleConsumer", "--topic", topic,
                   "--command-config", str(alice_props), "--group", other, "--from-beginning",
                   "--max-messages", "1", "--timeout-ms", "120000")
    assert "Processed a total of 0 messages" in out.stderr, out.stdout + out.stderr
    denied = wait_for(lambda: [line for line in secured.log_path.read_text(errors="replace").splitlines()
                               if "authorization denied" in line and "principal=User:alice" in line
                               and f'resource="{other}"' in line],
                      timeout=60, what=f"the broker's audit log to show group {other} denied")
    assert "request=FindCoordinator operation=DESCRIBE resource_type=GROUP" in denied[0], denied

    # A wrong password is refused.
    wrong = sasl_ssl_properties(secured, secured.tmp / "wrong.properties", "SCRAM-SHA-512",
                                "org.apache.kafka.common.security.scram.ScramLoginModule", "alice", "wrong")
    out = as_alice("org.apache.kafka.tools.TopicCommand", "--command-config", str(wrong), "--list")
    assert out.returncode != 0, out.stdout + out.stderr
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in out.stdout + out.stderr, out.stdout + out.stderr


def kcat(*args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)


def kcat_round_trip(bootstrap: str, topic: str, settings: list[str], count: int = 50):
    """Produces `count` keyed records with kcat and reads them back with kcat."""
    produced = [f"k{i}\tv{i}" for i in range(count)]
    out = kcat("-b", bootstrap, *settings, "-t", topic, "-P", "-K", "\t", "-X", "message.timeout.ms=60000",
               input=("\n".join(produced) + "\n").encode())
    assert out.returncode == 0, out.stderr.decode()
    out = kcat("-b", bootstrap, *settings, "-t", topic, "-C", "-o", "beginning", "-e", "-c", str(count), "-q",
               "-f", "%k\t%s\n")
    assert out.returncode == 0, out.stderr.decode()
    assert sorted(out.stdout.decode().splitlines()) == sorted(produced), out.stdout.decode()


def test_kcat_over_mutual_tls(secured):
    bootstrap, certs = secured.listener["SSL"], secured.certs
    topic = f"kcat-tls-{uuid.uuid4().hex[:6]}"
    create_topic_as_admin(secured, topic, partitions=2)
    grant(secured, KCAT_PRINCIPAL, topic, [AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE])

    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certs / 'ca.pem'}"]
    client_cert = ["-X", f"ssl.certificate.location={certs / 'client.pem'}",
                   "-X", f"ssl.key.location={certs / 'client.key'}"]
    kcat_round_trip(bootstrap, topic, tls + client_cert)

    # The metadata kcat sees lists the broker at its SSL listener and the granted topic only.
    out = kcat("-b", bootstrap, *tls, *client_cert, "-L", "-m", "30")
    assert out.returncode == 0, out.stderr.decode()
    listing = out.stdout.decode()
    assert f"broker 1 at {bootstrap}" in listing and f'topic "{topic}"' in listing, listing
    assert listing.count("topic \"") == 1, listing

    # Without a client certificate the handshake fails.
    out = kcat("-b", bootstrap, *tls, "-L", "-m", "10")
    assert out.returncode != 0, out.stdout.decode()
    assert "Failed to acquire metadata" in out.stderr.decode(), out.stderr.decode()


def test_kcat_over_sasl_plaintext_plain(secured):
    bootstrap = secured.listener["SASL_PLAINTEXT"]
    topic, group = f"kcat-plain-{uuid.uuid4().hex[:6]}", "bob-kcat"
    create_topic_as_admin(secured, topic, partitions=2)
    grant(secured, "User:bob", topic, [AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE], group=group)

    sasl = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=bob"]
    kcat_round_trip(bootstrap, topic, sasl + ["-X", "sasl.password=bob-secret"])

    # A balanced consumer in bob's group (-G) reads them again and commits.
    out = kcat("-b", bootstrap, *sasl, "-X", "sasl.password=bob-secret", "-G", group, "-X", "auto.offset.reset=earliest",
               "-o", "beginning", "-e", "-c", "50", "-q", "-f", "%s\n", topic)
    assert out.returncode == 0, out.stderr.decode()
    assert sorted(out.stdout.decode().splitlines()) == sorted(f"v{i}" for i in range(50)), out.stdout.decode()
    admin = admin_client(secured)
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    assert sum(tp.offset for tp in committed.topic_partitions if tp.topic == topic) == 50, committed

    out = kcat("-b", bootstrap, *sasl, "-X", "sasl.password=wrong", "-L", "-m", "10")
    assert out.returncode != 0, out.stdout.decode()
    errors = out.stderr.decode()
    assert "Authentication failed" in errors and "Invalid username or password" in errors, errors


def test_kafkajs_over_sasl_plaintext_scram_sha_256(secured):
    # The user is created with AlterUserScramCredentials (confluent-kafka, as the super user).
    admin = admin_client(secured)
    upsert = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                          b"carol-secret")
    admin.alter_user_scram_credentials([upsert])["carol"].result(timeout=30)
    # The scenario creates and fills `kafkajs-group` (idempotent producer) and consumes it in group `kafkajs-g`.
    grant(secured, "User:carol", "kafkajs-", [AclOperation.ALL], pattern=ResourcePatternType.PREFIXED,
          group="kafkajs-g")

    def kafkajs(*args):
        return subprocess.run(["node", str(NODE_DIR / "compat.js"), secured.listener["SASL_PLAINTEXT"], *args],
                              capture_output=True, text=True, timeout=180)

    out = kafkajs("producer-group", "scram-sha-256", "carol", "carol-secret")
    assert out.returncode == 0 and "PASS producer-group" in out.stdout, out.stdout + out.stderr

    # A wrong password, and SCRAM-SHA-512, which this listener does not enable, are refused.
    out = kafkajs("admin", "scram-sha-256", "carol", "wrong")
    assert out.returncode != 0 and "SASL SCRAM SHA256 authentication failed" in out.stdout, out.stdout + out.stderr
    out = kafkajs("admin", "scram-sha-512", "carol", "carol-secret")
    assert out.returncode != 0 and "does not support the requested SASL mechanism" in out.stdout, out.stdout + out.stderr
