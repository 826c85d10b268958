"""The log cleaner under load (`make bench-cleaner`): produce throughput to a compacted topic
while the cleaner is busy on it, beside the same load to a delete-policy topic, and how fast
the cleaner gives space back. Loopback only, bounded (3 alternating runs of RECORDS records).

    python3 bench/cleaner.py            # RECORDS=300000
    RECORDS=50000 python3 bench/cleaner.py

Prints a Markdown table and writes bench/results/cleaner.json.
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("RIVULET_CACHE", Path.home() / ".cache" / "rivulet"))
BIN = Path(os.environ.get("RIVULET_BIN", Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target")) / "release" / "rivulet"))
RECORDS = int(os.environ.get("RECORDS", "300000"))
KEYS = 5000
VALUE = b"v" * 100
RUNS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def produce(bootstrap: str, topic: str) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "1", "batch.size": 262144})
    started = time.time()
    for i in range(RECORDS):
        while True:
            try:
                producer.produce(topic, key=b"key-%d" % (i % KEYS), value=VALUE)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(120) == 0
    return RECORDS / (time.time() - started)


def main():
    work = Path(tempfile.mkdtemp())
    port = free_port()
    log = open(work / "broker.log", "wb")
    broker = subprocess.Popen([str(BIN), "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                               "--override", f"log.dirs={work / 'data'}", "--override", "log.cleaner.backoff.ms=500"],
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.time() + 30
        while b"rivulet started" not in (work / "broker.log").read_bytes():
            assert time.time() < deadline and broker.poll() is None, "broker did not start"
            time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        results = {"plain": [], "compacted": []}
        for run in range(RUNS):
            for kind in ("plain", "compacted"):
                topic = f"{kind}-{run}"
                config = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"} if kind == "compacted" else {}
                admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)
                results[kind].append(produce(bootstrap, topic))
        time.sleep(3)  # let the last cleanings finish
        cleanings = [json_fields(line) for line in (work / "broker.log").read_text().splitlines() if "cleaned log" in line]
        removed = sum(c["bytes_before"] - c["bytes_after"] for c in cleanings)
        elapsed = sum(c["elapsed_ms"] for c in cleanings) / 1000
        summary = {
            "records_per_run": RECORDS, "value_bytes": len(VALUE), "keys": KEYS,
            "produce_plain_rec_s": results["plain"], "produce_compacted_rec_s": results["compacted"],
            "cleanings": len(cleanings), "bytes_removed": removed, "cleaning_seconds": elapsed,
        }
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "cleaner.json").write_text(json.dumps(summary, indent=2))
        med = {k: statistics.median(v) for k, v in results.items()}
        print("| figure | median (min–max) |")
        print("|---|---|")
        for kind in ("plain", "compacted"):
            v = results[kind]
            print(f"| produce to a {kind} topic, rec/s | {med[kind]:,.0f} ({min(v):,.0f}–{max(v):,.0f}) |")
        print(f"| compacted / plain | {med['compacted'] / med['plain']:.2f} |")
        rate = removed / elapsed / 2**20 if elapsed else 0
        print(f"| cleaner: {len(cleanings)} cleanings removed {removed / 2**20:,.1f} MiB in {elapsed:,.1f} s | {rate:,.0f} MiB/s |")
    finally:
        broker.kill()
        broker.wait()


def json_fields(line: str) -> dict:
    return {k: int(v) for k, v in re.findall(r"(bytes_before|bytes_after|elapsed_ms)=(\d+)", line)}


if __name__ == "__main__":
    sys.exit(main())
