"""SASL/OAUTHBEARER (KIP-255, KIP-768) on a SASL_PLAINTEXT listener, with real clients.

Two brokers, as Kafka configures its two validators:
- unsecured JWTs (Kafka's default validator, for development), with a required scope:
  librdkafka's unsecured tokens and Kafka 4.3.1's Java tools with
  `unsecuredLoginStringClaim_sub`; the principal is the token's subject, as the ACLs
  show;
- signed JWTs verified against a JWKS file (`OAuthBearerValidatorCallbackHandler`,
  `sasl.oauthbearer.jwks.endpoint.url=file:…`, expected audience and issuer): tokens
  minted by the test (RS256) through confluent-kafka's `oauth_cb`; a token signed with
  another key, an expired one and one for another audience are refused and the broker
  keeps serving; a key added to the file is used without a restart.

On the wire (raw SaslAuthenticate): a refused token is answered with Kafka's JSON error
and the client's `%x01` then fails with SASL_AUTHENTICATION_FAILED.
"""

import json
import socket
import struct
import time
import uuid

import jwt
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Broker, free_port, java

OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
ISSUER = "https://idp.example.test"


def sasl_broker(tmp_path, *extra) -> Broker:
    sasl_port = free_port()
    broker = Broker(tmp_path)
    listeners = f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
    broker.extra = [f"listeners={listeners}", f"advertised.listeners={listeners}",
                    "sasl.enabled.mechanisms=OAUTHBEARER", "connection.failed.authentication.delay.ms=50", *extra]
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    return broker.start()


@pytest.fixture(scope="module")
def unsecured(tmp_path_factory):
    broker = sasl_broker(
        tmp_path_factory.mktemp("oauth-unsecured"),
        f'listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={OAUTH_MODULE} required '
        'unsecuredValidatorRequiredScope="kafka";',
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
    )
    yield broker
    broker.kill()


def unsecured_client(broker, principal, scope="kafka", **extra):
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": f"principal={principal} scope={scope}", **extra}


def produce(config, topic, values, timeout=15):
    producer = Producer({**config, "message.timeout.ms": 10000})
    results = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, msg: results.append(err))
    producer.flush(timeout)
    return results


def consume(config, topic, count, timeout=20):
    consumer = Consumer({"auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "group.id": f"g-{uuid.uuid4().hex[:6]}", **config})
    consumer.subscribe([topic])
    values = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and len(values) < count:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def authentication_error(config) -> str:
    """Connects with `config` and returns the authentication error librdkafka reports."""
    errors = []
    producer = Producer({**config, "error_cb": errors.append})
    for _ in range(60):
        producer.poll(0.25)
        auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION or "SASL" in e.str()]
        if auth:
            return auth[0].str()
    raise AssertionError(f"no authentication error: {[e.str() for e in errors]}")


def test_unsecured_tokens_authenticate_as_their_subject(unsecured):
    topic = f"oauth-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(unsecured_client(unsecured, "admin"))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    # The super user (the token's subject) produces and reads back.
    assert produce(unsecured_client(unsecured, "admin"), topic, [b"a", b"b"]) == [None, None]
    assert consume(unsecured_client(unsecured, "admin"), topic, 2) == [b"a", b"b"]
    # alice authenticates too but, without ACLs, is not allowed to write.
    errors = produce(unsecured_client(unsecured, "alice"), topic, [b"c"])
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors


def test_a_token_without_the_required_scope_is_refused(unsecured):
    error = authentication_error(unsecured_client(unsecured, "admin", scope="other"))
    assert "insufficient_scope" in error, error
    topic = f"oauth-{uuid.uuid4().hex[:8]}"
    assert produce(unsecured_client(unsecured, "admin"), topic, [b"x"]) == [None]


def test_java_tools_log_in_with_an_unsecured_token(unsecured, tmp_path):
    config = tmp_path / "client.properties"
    config.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n"
                      f'sasl.jaas.config={OAUTH_MODULE} required unsecuredLoginStringClaim_sub="admin" '
                      'unsecuredLoginListClaim_scope=",kafka";\n')
    topic = f"oauth-java-{uuid.uuid4().hex[:6]}"
    created = java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", unsecured.sasl_bootstrap,
                   "--command-config", str(config), "--create", "--topic", topic, "--partitions", "2")
    assert created.returncode == 0, created.stdout + created.stderr
    listed = java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", unsecured.sasl_bootstrap,
                  "--command-config", str(config), "--list")
    assert listed.returncode == 0 and topic in listed.stdout.split(), listed.stdout + listed.stderr


def raw_call(sock, api_key, version, correlation_id, body: bytes) -> bytes:
    client_id = b"raw"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    response = recv_exact(sock, size)
    assert struct.unpack(">i", response[:4])[0] == correlation_id
    return response[4:]


def recv_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def sasl_authenticate_v0(sock, correlation_id, token: bytes):
    """SaslAuthenticate v0: returns (error_code, error_message, auth_bytes)."""
    body = raw_call(sock, 36, 0, correlation_id, struct.pack(">i", len(token)) + token)
    error_code, message_len = struct.unpack(">hh", body[:4])
    offset = 4
    message = None
    if message_len >= 0:
        message = body[offset:offset + message_len].decode()
        offset += message_len
    auth_len = struct.unpack(">i", body[offset:offset + 4])[0]
    return error_code, message, body[offset + 4:offset + 4 + auth_len]


def test_a_refused_token_gets_a_json_error_then_fails_on_the_wire(unsecured):
    with socket.create_connection(("127.0.0.1", int(unsecured.sasl_bootstrap.split(":")[1])), timeout=10) as sock:
        mechanism = b"OAUTHBEARER"
        handshake = raw_call(sock, 17, 1, 1, struct.pack(">h", len(mechanism)) + mechanism)
        assert struct.unpack(">h", handshake[:2])[0] == 0
        # An unsecured token that expired an hour ago.
        claims = {"sub": "admin", "exp": int(time.time()) - 3600, "scope": "kafka"}
        token = jwt.encode(claims, key=None, algorithm="none")
        first = f"n,,\x01auth=Bearer {token}\x01\x01".encode()
        error_code, _, auth_bytes = sasl_authenticate_v0(sock, 2, first)
        assert error_code == 0 and json.loads(auth_bytes) == {"status": "invalid_token"}, auth_bytes
        error_code, message, _ = sasl_authenticate_v0(sock, 3, b"\x01")
        assert error_code == 58, (error_code, message)  # SASL_AUTHENTICATION_FAILED
        assert sock.recv(1) == b"", "the connection is closed after the failure"


# --- signed tokens against a JWKS file ---------------------------------------------------

def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key, kid):
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


def mint(key, kid, sub="alice", audience="kafka", lifetime=300, issued=None):
    now = int(time.time()) if issued is None else issued
    claims = {"sub": sub, "iss": ISSUER, "aud": audience, "iat": now, "exp": now + lifetime, "scope": "kafka"}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oauth-signed")
    key = rsa_key()
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk_of(key, "k1")]}))
    broker = sasl_broker(
        tmp,
        f"listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class={VALIDATOR}",
        f"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={OAUTH_MODULE} required;",
        f"sasl.oauthbearer.jwks.endpoint.url=file://{jwks}",
        "sasl.oauthbearer.expected.audience=kafka",
        f"sasl.oauthbearer.expected.issuer={ISSUER}",
    )
    broker.key, broker.jwks = key, jwks
    yield broker
    broker.kill()


def signed_client(broker, token_fn, **extra):
    def oauth_cb(_config):
        token = token_fn()
        return token, time.time() + 300
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb, **extra}


def test_signed_tokens_verified_against_the_jwks_file(signed):
    topic = f"oauth-signed-{uuid.uuid4().hex[:8]}"
    config = signed_client(signed, lambda: mint(signed.key, "k1"))
    assert produce(config, topic, [b"one", b"two"]) == [None, None]
    assert consume(config, topic, 2) == [b"one", b"two"]


@pytest.mark.parametrize("case", ["other-key", "expired", "other-audience", "unknown-kid", "unsigned"])
def test_bad_signed_tokens_are_refused_and_the_broker_keeps_serving(signed, case):
    other = rsa_key()
    token = {
        "other-key": lambda: mint(other, "k1"),
        "expired": lambda: mint(signed.key, "k1", issued=int(time.time()) - 7200, lifetime=600),
        "other-audience": lambda: mint(signed.key, "k1", audience="billing"),
        "unknown-kid": lambda: mint(signed.key, "k9"),
        "unsigned": lambda: jwt.encode({"sub": "alice", "iat": int(time.time()), "exp": int(time.time()) + 300,
                                        "aud": "kafka", "iss": ISSUER}, key=None, algorithm="none"),
    }[case]
    logged_reason = {"other-key": "InvalidSignature", "expired": "Expiration Time", "other-audience": "InvalidAudience",
                     "unknown-kid": "no key in the JWKS matches", "unsigned": "malformed header"}[case]
    log_start = signed.log_path.stat().st_size
    error = authentication_error(signed_client(signed, token))
    assert '{"status":"invalid_token"}' in error, error
    refusals = [line for line in signed.log_path.read_text(errors="replace")[log_start:].splitlines()
                if "OAUTHBEARER token refused" in line]
    assert refusals and logged_reason in refusals[0], refusals
    topic = f"oauth-signed-{uuid.uuid4().hex[:8]}"
    assert produce(signed_client(signed, lambda: mint(signed.key, "k1")), topic, [b"ok"]) == [None]


def test_a_key_added_to_the_jwks_file_is_used_without_a_restart(signed):
    new_key = rsa_key()
    config = signed_client(signed, lambda: mint(new_key, "k2"))
    assert "invalid_token" in authentication_error(config)
    signed.jwks.write_text(json.dumps({"keys": [jwk_of(signed.key, "k1"), jwk_of(new_key, "k2")]}))
    topic = f"oauth-rotated-{uuid.uuid4().hex[:8]}"
    assert produce(config, topic, [b"rotated"]) == [None]
    assert "JWKS file read again" in signed.log_path.read_text()


def test_a_missing_jwks_file_refuses_start(tmp_path):
    with pytest.raises(RuntimeError) as failed:
        sasl_broker(tmp_path,
                    f"listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class={VALIDATOR}",
                    f"sasl.oauthbearer.jwks.endpoint.url=file://{tmp_path}/missing.json")
    assert "sasl.oauthbearer.jwks.endpoint.url" in str(failed.value) and "cannot read the JWKS file" in str(failed.value)
