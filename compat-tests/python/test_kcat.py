"""kcat (librdkafka): metadata, and keyed records with headers through every codec."""

import json
import random
import subprocess

import pytest

from conftest import create_topic

RECORDS = 10_000
PARTITIONS = 6


def kcat(*args, input=None, timeout=120):
    return subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)


def test_metadata_lists_broker_and_topics(broker):
    create_topic(broker, "listed", partitions=3)
    out = kcat("-b", broker.bootstrap, "-L", "-J")
    assert out.returncode == 0, out.stderr
    meta = json.loads(out.stdout)
    assert [(b["id"], b["name"]) for b in meta["brokers"]] == [(1, broker.bootstrap)]
    topics = {t["topic"]: t for t in meta["topics"]}
    assert "listed" in topics
    assert sorted(p["partition"] for p in topics["listed"]["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == 1 for p in topics["listed"]["partitions"])


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_keyed_records_with_headers_round_trip(broker, codec):
    topic = f"kcat-{codec}"
    create_topic(broker, topic, partitions=PARTITIONS)
    rng = random.Random(codec)
    produced = []
    for i in range(RECORDS):
        key = f"key-{i % 250}"
        value = f"value-{i}-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(0, 60)))
        produced.append((key, value))
    lines = "".join(f"{k}\t{v}\n" for k, v in produced).encode()
    out = kcat(
        "-b", broker.bootstrap, "-t", topic, "-P", "-z", codec, "-K", "\t",
        "-H", "source=kcat", "-H", f"codec={codec}",
        "-X", "enable.idempotence=true", "-X", "linger.ms=5",
        input=lines,
    )
    assert out.returncode == 0, out.stderr

    out = kcat("-b", broker.bootstrap, "-t", topic, "-C", "-e", "-o", "beginning", "-q", "-f", "%p\t%o\t%k\t%s\t%h\n")
    assert out.returncode == 0, out.stderr
    consumed = [line.split("\t") for line in out.stdout.decode().splitlines()]
    assert len(consumed) == RECORDS

    partition_of_key = {}
    by_partition = {}
    for partition, offset, key, value, headers in consumed:
        assert headers == f"source=kcat,codec={codec}"
        # A key always lands in the same partition.
        assert partition_of_key.setdefault(key, partition) == partition
        by_partition.setdefault(partition, []).append((int(offset), key, value))
    assert len(by_partition) > 1, "keys should spread over the partitions"

    # Byte-identical content, and per-partition order equals production order.
    assert sorted((k, v) for _, _, k, v, _ in consumed) == sorted(produced)
    for partition, rows in by_partition.items():
        offsets = [o for o, _, _ in rows]
        assert offsets == list(range(len(rows))), f"partition {partition} offsets not contiguous"
        keys_here = {k for _, k, _ in rows}
        expected = [(k, v) for k, v in produced if k in keys_here]
        assert [(k, v) for _, k, v in rows] == expected
