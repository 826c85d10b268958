"""The log cleaner under load (`make bench-cleaner`), Rivulet and Apache Kafka 4.3.1 (KRaft,
one combined node) one after the other on this machine with the same client and workload:
produce throughput to a compacted topic while the cleaner works on it, beside the same load
to a delete-policy topic, and how much of the superseded bytes the cleaner has already
given back when the produce ends.
Loopback only, bounded (per broker: 3 alternating runs of RECORDS records per topic kind).

    python3 bench/cleaner.py            # RECORDS=300000
    RECORDS=50000 python3 bench/cleaner.py

Both brokers clean every 500 ms at `min.cleanable.dirty.ratio=0.1`. Kafka never cleans its
active segment, so its compacted topics get `segment.bytes=1048576` (with the 1 GiB default
nothing would be cleaned in a run of this size); Rivulet needs no segments. Sizes come from
`kafka-log-dirs` for both: right after the produce, and once cleaning has settled.

Prints a Markdown table and writes bench/results/cleaner.json.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from brokers import TOOLS, free_port, wait_port

HERE = Path(__file__).resolve().parent
RECORDS = int(os.environ.get("RECORDS", "300000"))
KEYS = 5000
VALUE = b"v" * 100
RUNS = 3


def start_rivulet(work: Path, port: int):
    return brokers.start_rivulet(work, port, {"log.cleaner.backoff.ms": 500})


def start_kafka(work: Path, port: int):
    return brokers.start_kafka(work, port, {"log.cleaner.backoff.ms": 500})


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


def topic_size(bootstrap: str, topic: str) -> int:
    out = subprocess.run(["java", "-cp", f"{TOOLS}/*", "org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server",
                          bootstrap, "--describe", "--topic-list", topic], capture_output=True, text=True, timeout=60)
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    return sum(p["size"] for d in report["brokers"][0]["logDirs"] for p in d["partitions"])


def settle(bootstrap: str, topic: str) -> tuple[int, int, float]:
    """(size right after the produce, settled size, seconds until it settled)."""
    started = time.time()
    first = last = topic_size(bootstrap, topic)
    settled_at, stable = started, 0
    while stable < 4 and time.time() - started < 60:
        time.sleep(0.5)
        size = topic_size(bootstrap, topic)
        if size < last:
            settled_at, stable = time.time(), 0
        else:
            stable += 1
        last = size
    return first, last, settled_at - started


def run(name: str, start, work: Path) -> dict:
    port = free_port()
    proc = start(work, port)
    try:
        wait_port(port, proc, name)
        bootstrap = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        produce_rates = {"plain": [], "compacted": []}
        reclaim = []
        for i in range(RUNS):
            for kind in ("plain", "compacted"):
                topic = f"{kind}-{i}"
                config = {}
                if kind == "compacted":
                    config = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
                    if name == "kafka":
                        config["segment.bytes"] = "1048576"
                admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)
                produce_rates[kind].append(produce(bootstrap, topic))
                if kind == "compacted":
                    before, after, seconds = settle(bootstrap, topic)
                    reclaim.append({"before": before, "after": after, "seconds": seconds})
        return {"produce_rec_s": produce_rates, "reclaim": reclaim}
    finally:
        brokers.stop(proc)


def main():
    subprocess.run(["bash", str(HERE.parent / "compat-tests" / "install-deps.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp())
    results = {"records_per_run": RECORDS, "value_bytes": len(VALUE), "keys": KEYS,
               "kafka": run("kafka", start_kafka, work), "rivulet": run("rivulet", start_rivulet, work)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "cleaner.json").write_text(json.dumps(results, indent=2))
    report(results)


def report(results: dict):
    def fmt(values, digits=0):
        return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"

    print("| figure | Kafka, median (min–max) | Rivulet, median (min–max) | Rivulet / Kafka |")
    print("|---|---|---|---|")
    med = {}
    for kind in ("plain", "compacted"):
        k, r = results["kafka"]["produce_rec_s"][kind], results["rivulet"]["produce_rec_s"][kind]
        med[kind] = (statistics.median(k), statistics.median(r))
        print(f"| produce to a {kind} topic, rec/s | {fmt(k)} | {fmt(r)} | {med[kind][1] / med[kind][0]:.2f} |")
    print(f"| compacted / plain | {med['compacted'][0] / med['plain'][0]:.2f} | "
          f"{med['compacted'][1] / med['plain'][1]:.2f} | |")
    written = results["records_per_run"] * (results["value_bytes"] + 10) / 2**20
    sizes = {b: [r["before"] / 2**20 for r in results[b]["reclaim"]] for b in ("kafka", "rivulet")}
    print(f"| compacted topic's size right after its produce (~{written:.0f} MiB of keys and values written), MiB | "
          f"{fmt(sizes['kafka'], 1)} | {fmt(sizes['rivulet'], 1)} | "
          f"{statistics.median(sizes['rivulet']) / statistics.median(sizes['kafka']):.2f} |")
    for broker in ("kafka", "rivulet"):
        left = [(r["before"] - r["after"]) / 2**20 for r in results[broker]["reclaim"]]
        if max(left) > 0.1:
            seconds = [r["seconds"] for r in results[broker]["reclaim"]]
            print(f"| {broker}: still reclaimed after the produce, MiB in s | {fmt(left, 1)} in {fmt(seconds, 1)} | | |")

if __name__ == "__main__":
    if len(sys.argv) == 2:
        # Re-print the table of a saved run: python3 bench/cleaner.py bench/results/cleaner.json
        report(json.loads(Path(sys.argv[1]).read_text()))
    else:
        sys.exit(main())
