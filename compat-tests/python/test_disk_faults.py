"""Disk faults: a full data directory and a damaged database file.

A full volume must refuse new writes with KAFKA_STORAGE_ERROR, leave every acknowledged
record intact and readable, and accept writes again once space returns, without a restart.
A damaged file must never be served as data: a truncated table file stops the broker at
start with an error naming it; a table file whose contents are damaged is caught by its
block checksums when read, and the fetch fails with KAFKA_STORAGE_ERROR and a log line
naming the file.
"""

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from conftest import Broker, create_topic

VALUE_BYTES = 1000


def value(i: int) -> bytes:
    # Every byte depends on i, so a damaged or misplaced record cannot pass for another.
    head = f"record {i:08d} ".encode()
    return (head * (VALUE_BYTES // len(head) + 1))[:VALUE_BYTES]


def produce(bootstrap: str, topic: str, indices, stop_on_error: bool):
    """Sends value(i) for each i, acks=all and no retries; returns the acknowledged
    (offset, i) pairs and the error codes of the others."""
    acked, errors = [], []

    def report(err, msg):
        if err is None:
            acked.append((msg.offset(), int(msg.value()[7:15])))
        else:
            errors.append(err.code())

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                  "retries": 0, "linger.ms": 5, "message.timeout.ms": 15000})
    chunk = []
    for i in indices:
        chunk.append(i)
        if len(chunk) == 500:
            for j in chunk:
                p.produce(topic, value=value(j), on_delivery=report)
            p.flush(30)
            chunk = []
            if stop_on_error and errors:
                break
    for j in chunk:
        p.produce(topic, value=value(j), on_delivery=report)
    p.flush(30)
    return acked, errors


def consume_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 30):
    """(offset, value) of every record from the start, until `expect` are read or the
    topic has been quiet for a few seconds."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}",
                  "enable.auto.commit": False, "fetch.max.bytes": 1048576})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline, quiet_since = [], time.time() + timeout_s, time.time()
    while time.time() < deadline and len(got) < expect and time.time() - quiet_since < 8:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.offset(), m.value()))
        quiet_since = time.time()
    c.close()
    return got


@pytest.fixture
def small_volume(tmp_path):
    """A 200 MiB tmpfs; a filler file leaves 24 MiB of it free until the test deletes it."""
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    filler = mount_point / "filler"
    try:
        free = shutil.disk_usage(mount_point).free
        with open(filler, "wb") as f:
            f.truncate(0)
            block = b"\0" * (1 << 20)
            for _ in range((free - 24 * (1 << 20)) // len(block)):
                f.write(block)
        yield mount_point, filler
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_a_full_volume_refuses_writes_keeps_what_was_acknowledged_and_recovers(tmp_path, small_volume):
    volume, filler = small_volume
    broker = Broker(tmp_path, extra=[f"log.dirs={volume / 'data'}"]).start()
    try:
        create_topic(broker, "full")
        acked, errors = produce(broker.bootstrap, "full", range(60_000), stop_on_error=True)
        assert errors, "60 MB went into 24 MB of free space"
        assert KafkaError.KAFKA_STORAGE_ERROR in errors, errors
        assert set(errors) <= {KafkaError.KAFKA_STORAGE_ERROR, KafkaError._MSG_TIMED_OUT}, errors
        assert len(acked) > 5000, "far less than the free space was written before the refusals"
        assert broker.proc.poll() is None, broker.log_tail()
        assert "No space left on device" in broker.log_path.read_text()

        # Everything acknowledged is there, in order, byte for byte.
        got = consume_all(broker.bootstrap, "full", len(acked))
        assert [(o, value(i)) for o, i in sorted(acked)] == got[:len(acked)]
        assert len(got) == len(acked), "a refused record was stored"

        # Space returns: writes are accepted again without a restart.
        filler.unlink()
        deadline, more = time.time() + 60, []
        while time.time() < deadline and not more:
            more, _ = produce(broker.bootstrap, "full", [100_000], stop_on_error=False)
            time.sleep(0 if more else 1)
        assert more, f"no write accepted within 60 s of space returning:\n{broker.log_tail()}"
        after, _ = produce(broker.bootstrap, "full", range(100_001, 101_000), stop_on_error=False)
        assert len(after) == 999
        got = consume_all(broker.bootstrap, "full", len(acked) + 1000)
        expected = [value(i) for _, i in sorted(acked + more + after)]
        assert [v for _, v in got] == expected
        assert [o for o, _ in got] == list(range(len(expected)))
    finally:
        broker.kill()


def sst_files(data_dir: Path):
    return sorted(data_dir.rglob("*.sst"), key=lambda p: p.stat().st_size, reverse=True)


@pytest.fixture
def stored_log(tmp_path):
    """A broker's data directory holding 8,000 records of one partition in a table file
    (RocksDB writes the recovered write-ahead log into one at restart), broker stopped."""
    broker = Broker(tmp_path).start()
    create_topic(broker, "kept")
    acked, errors = produce(broker.bootstrap, "kept", range(8000), stop_on_error=True)
    assert not errors and len(acked) == 8000
    broker.kill()
    broker.start()
    broker.kill()
    largest = sst_files(tmp_path / "data")[0]
    assert largest.stat().st_size > 4_000_000, [(p.name, p.stat().st_size) for p in sst_files(tmp_path / "data")]
    return broker, largest


def test_a_truncated_table_file_stops_the_broker_at_start_naming_the_file(stored_log):
    broker, table = stored_log
    with open(table, "r+b") as f:
        f.truncate(table.stat().st_size // 2)
    with pytest.raises(RuntimeError) as refused:
        broker.start()
    assert broker.proc.returncode != 0
    message = str(refused.value)
    assert "Corruption" in message and table.name in message, message
    # One cause chain, each cause said once.
    stopped = [line for line in message.splitlines() if "rivulet stopped" in line]
    assert stopped and stopped[-1].count("Sst file size mismatch") == 1, stopped


def test_damaged_table_contents_are_never_served(stored_log):
    broker, table = stored_log
    with open(table, "r+b") as f:
        f.seek(table.stat().st_size // 2)
        f.write(b"\xde\xad\xbe\xef" * 4)
    broker.start()
    try:
        got = consume_all(broker.bootstrap, "kept", 8000, timeout_s=20)
        # What is served is exactly what was written, from the start, up to the damaged
        # block and no further.
        assert got == [(i, value(i)) for i in range(len(got))]
        assert 0 < len(got) < 8000, len(got)
        log = broker.log_path.read_text()
        assert "read failed" in log and "Corruption" in log and table.name in log, broker.log_tail()
        assert broker.proc.poll() is None
    finally:
        broker.kill()
