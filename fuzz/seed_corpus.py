"""Seeds fuzz/corpus/ from what real clients send: starts a broker behind a recording
loopback proxy, drives it with librdkafka (confluent-kafka), kafka-python and Kafka's own
Java tools, and writes

* corpus/request/       every distinct request frame (without its size prefix);
* corpus/record_batch/  every record batch found in those frames (each codec, idempotent,
                        transactional, control batches from the broker's own answers);
* corpus/peer_response/ Fetch responses as a follower receives them, prefixed with the
                        selector byte of the `peer_response` target;
* corpus/coordinator_record/  keys and values read back from `__consumer_offsets` and
                        `__transaction_state`, prefixed with the decoder selector byte.

    RIVULET_BIN=... python fuzz/seed_corpus.py [--out fuzz/corpus]

Files are named by content hash, so a rerun only adds what is new. AFL++ grows the corpus
from here; `make fuzz` writes what it finds back with `afl-cmin`.
"""

import argparse
import hashlib
import struct
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "compat-tests" / "python"))

from conftest import Broker, java  # noqa: E402
from netproxy import Proxy  # noqa: E402

MAX_FILE = 64 * 1024  # AFL++ works best on small inputs; larger frames add nothing new
PER_KIND = 6  # files kept per (api, version) or per batch shape
FETCH, OFFSET_FOR_LEADER_EPOCH = 1, 23
# peer_response's selector byte: `which % 3` picks the API, `which / 3` the version above
# the lowest one kafka-protocol knows (Fetch v4, OffsetForLeaderEpoch v2).
PEER_APIS = {FETCH: (0, 4), OFFSET_FOR_LEADER_EPOCH: (1, 2)}


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def batches_in(frame: bytes):
    """Every v2 record batch inside `frame`, found by its header: a batch length that fits,
    magic 2 and a CRC32C that matches."""
    i = 0
    while i + 61 <= len(frame):
        length = struct.unpack_from(">i", frame, i + 8)[0]
        end = i + 12 + length
        if frame[i + 16] == 2 and 49 <= length and end <= len(frame):
            crc = struct.unpack_from(">I", frame, i + 17)[0]
            if crc == crc32c(frame[i + 21:end]):
                yield frame[i:end]
                i = end
                continue
        i += 1


class Recorder:
    def __init__(self, out: Path):
        self.out = out
        self.lock = threading.Lock()
        self.buffers = defaultdict(bytes)
        self.inflight = {}  # (connection, correlation id) -> (api key, version)
        self.kept = defaultdict(int)
        self.written = defaultdict(int)

    def save(self, target: str, kind: str, data: bytes):
        if len(data) > MAX_FILE or self.kept[(target, kind)] >= PER_KIND:
            return
        digest = hashlib.sha256(data).hexdigest()[:16]
        path = self.out / target / f"{kind}-{digest}"
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.kept[(target, kind)] += 1
        self.written[target] += 1

    def tap(self, connection: int, direction: str, data: bytes):
        with self.lock:
            key = (connection, direction)
            buf = self.buffers[key] + data
            while len(buf) >= 4:
                size = struct.unpack_from(">i", buf)[0]
                if len(buf) < 4 + size:
                    break
                frame, buf = buf[4:4 + size], buf[4 + size:]
                if direction == "in":
                    self.request(connection, frame)
                else:
                    self.response(connection, frame)
            self.buffers[key] = buf

    def request(self, connection: int, frame: bytes):
        api, version, correlation = struct.unpack_from(">hhi", frame)
        self.inflight[(connection, correlation)] = (api, version)
        self.save("request", f"api{api}-v{version}", frame)
        for batch in batches_in(frame):
            self.save("record_batch", f"attr{struct.unpack_from('>h', batch, 21)[0]}", batch)

    def response(self, connection: int, frame: bytes):
        correlation = struct.unpack_from(">i", frame)[0]
        api, version = self.inflight.pop((connection, correlation), (None, None))
        if api in PEER_APIS:
            index, lowest = PEER_APIS[api]
            selector = 3 * (version - lowest) + index
            if 0 <= selector < 256:
                self.save("peer_response", f"api{api}-v{version}", bytes([selector]) + frame)
        if api == FETCH:
            for batch in batches_in(frame):
                self.save("record_batch", f"attr{struct.unpack_from('>h', batch, 21)[0]}", batch)


def drive_librdkafka(bootstrap: str):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic("seed-plain", 2, 1), NewTopic("seed-compact", 1, 1, config={"cleanup.policy": "compact"})]
    for f in admin.create_topics(topics).values():
        f.result(30)
    admin.create_partitions([NewPartitions("seed-plain", 3)])["seed-plain"].result(30)
    admin.describe_configs([ConfigResource("topic", "seed-plain")])
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "enable.idempotence": codec != "none", "linger.ms": 5})
        for i in range(20):
            p.produce("seed-plain", key=f"k{i % 4}".encode(), value=f"{codec} value {i}".encode(),
                      headers=[("h", b"v")] if i % 3 == 0 else None)
            p.produce("seed-compact", key=f"k{i % 3}".encode(), value=None if i % 5 == 4 else b"v")
        p.flush(30)
    tp = Producer({"bootstrap.servers": bootstrap, "transactional.id": "seed-txn", "compression.type": "lz4"})
    tp.init_transactions(30)
    for commit in (True, False):
        tp.begin_transaction()
        for i in range(5):
            tp.produce("seed-plain", key=b"t", value=f"txn {i}".encode(), partition=i % 3)
        tp.commit_transaction(30) if commit else tp.abort_transaction(30)
    for isolation in ("read_committed", "read_uncommitted"):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"seed-{isolation}",
                      "auto.offset.reset": "earliest", "isolation.level": isolation,
                      "enable.auto.commit": False})
        c.subscribe(["seed-plain", "seed-compact"])
        deadline = time.time() + 20
        seen = 0
        while time.time() < deadline and seen < 100:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen += 1
        c.commit(asynchronous=False)
        c.close()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-assign"})
    c.assign([TopicPartition("seed-plain", 0, 0)])
    c.poll(2)
    c.close()


def drive_kafka_python(bootstrap: str):
    from kafka import KafkaConsumer, KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
    for i in range(10):
        p.send("seed-kp", key=b"k", value=f"kafka-python {i}".encode())
    p.flush(30)
    p.close()
    c = KafkaConsumer("seed-kp", bootstrap_servers=bootstrap, group_id="seed-kp",
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    for _ in c:
        pass
    c.commit()
    c.close()


def drive_java_tools(bootstrap: str):
    java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--create",
         "--topic", "seed-java", "--partitions", "2", "--config", "retention.ms=600000")
    java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--describe")
    java("org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap, "--topic", "seed-java",
         "--property", "parse.key=true", "--property", "key.separator=:", "--compression-codec", "zstd",
         input="a:1\nb:2\nc:3\n")
    java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap, "--topic", "seed-java",
         "--from-beginning", "--max-messages", "3", "--group", "seed-java", "--timeout-ms", "20000")
    java("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", bootstrap,
         "--describe", "--all-groups")
    java("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", bootstrap, "--entity-type", "topics",
         "--entity-name", "seed-java", "--alter", "--add-config", "retention.ms=700000")
    java("org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", bootstrap, "--offset-json-file",
         str(write_temp('{"partitions":[{"topic":"seed-java","partition":0,"offset":1}],"version":1}')))


def write_temp(text: str) -> Path:
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    f.write(text)
    f.close()
    return Path(f.name)


def read_coordinator_logs(bootstrap: str, recorder: Recorder):
    """Keys and values of the coordinators' own topics, as the coordinators replay them."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-reader", "enable.auto.commit": False})
    md = c.list_topics(timeout=10)
    for topic, key_selector in (("__consumer_offsets", 0), ("__transaction_state", 3)):
        if topic not in md.topics:
            continue
        partitions = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
        c.assign(partitions)
        deadline = time.time() + 10
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            key, value = m.key() or b"", m.value() or b""
            recorder.save("coordinator_record", "key", bytes([key_selector]) + key)
            if topic == "__transaction_state":
                value_selector = 4
            else:
                key_version = struct.unpack_from(">h", key)[0] if len(key) >= 2 else 0
                value_selector = 1 if key_version in (0, 1) else 2
            if value:
                recorder.save("coordinator_record", f"value{value_selector}-{len(value) // 32}",
                              bytes([value_selector]) + value)
    c.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "corpus")
    args = parser.parse_args()
    recorder = Recorder(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        proxy = Proxy(broker.port, tap=recorder.tap)
        broker.extra = [f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}"]
        broker.start()
        bootstrap = f"127.0.0.1:{proxy.port}"
        try:
            drive_librdkafka(bootstrap)
            drive_kafka_python(bootstrap)
            drive_java_tools(bootstrap)
            read_coordinator_logs(bootstrap, recorder)
        finally:
            proxy.close()
            broker.kill()
    for target, count in sorted(recorder.written.items()):
        print(f"{target}: {count} new inputs")


if __name__ == "__main__":
    main()
