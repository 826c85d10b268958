"""Produce and consume over TLS beside PLAINTEXT (`make bench-ssl`), Rivulet and Apache Kafka
4.3.1 (KRaft, one combined node) on this machine with the same client tools: each broker has
a PLAINTEXT and an SSL listener, and kafka-tools 4.3.1 `ProducerPerformance` writes RECORDS
records of 1 KiB (acks=1, linger.ms=5, batch.size=65536, --throughput -1) to a 3-partition
topic through each listener, then `ConsumerPerformance` reads them back through the same
listener in a new group. Loopback only, bounded (every tool run has a timeout).

    python3 bench/tls.py                      # RECORDS=300000, RUNS=3
    RECORDS=20000 RUNS=1 python3 bench/tls.py

The brokers alternate (Kafka, Rivulet, Kafka, Rivulet, ...), each started fresh on an empty
data directory per run, RUNS times; the order of the two listeners alternates between runs
too (PLAINTEXT first in the first run). Certificates are made with openssl for each
invocation: a CA and a broker certificate for 127.0.0.1/localhost, EC P-256 keys (as the
TLS tests use), given to both brokers as the same PEM key store (unencrypted PKCS#8 key
and its chain); clients trust the CA through a PEM truststore. Both brokers run with
`group.initial.rebalance.delay.ms=0`.

Recorded per run, broker and listener: produce records/s, MB/s and p99 latency; consume
records/s and MB/s (ConsumerPerformance's own figures, group join included, as in
bench/run.sh) and its records/s of the fetching alone (join excluded); the broker's CPU
time (user + system from /proc, all threads) per GiB of record payload during the produce
and during the consume (the tool JVM's start-up is inside the window); and the broker's
peak RSS at the end of the run.

Prints a Markdown table (median and min–max per figure, Rivulet / Kafka of the medians,
SSL / PLAINTEXT of the medians for each broker) and writes bench/results/ssl.json.
`python3 bench/tls.py bench/results/ssl.json` re-prints the table of a saved run. (Not
named ssl.py: in this folder that would hide the standard library's `ssl` from every script
run here, and confluent_kafka imports it.)
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from brokers import TOOLS, cpu_seconds, free_port, peak_rss_mib, wait_port

HERE = Path(__file__).resolve().parent

RECORDS = int(os.environ.get("RECORDS", "300000"))
RUNS = int(os.environ.get("RUNS", "3"))
RECORD_BYTES = 1024
PARTITIONS = 3
PROTOCOLS = ("PLAINTEXT", "SSL")
BROKERS = ("kafka", "rivulet")
NAMES = {"kafka": "Kafka", "rivulet": "Rivulet"}
# A tool run may take this long before it counts as failed (~3 MB/s at the default size).
TOOL_TIMEOUT = 120 + RECORDS / 1000
GIB = 2**30


def openssl(*args: str, cwd: Path):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {out.stderr}")


def make_certs(d: Path) -> Path:
    """A CA (`ca.pem`) and a broker certificate for 127.0.0.1/localhost signed by it, EC
    P-256, valid for two days; `broker.pem` holds the broker's key (unencrypted PKCS#8) and
    its chain, the PEM key store both brokers read."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Rivulet Bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "server.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    key = (d / "server.key").read_text()
    assert "BEGIN PRIVATE KEY" in key, "Kafka's PEM key store needs a PKCS#8 key"
    (d / "broker.pem").write_text(key + (d / "server.pem").read_text())
    for protocol, extra in (("PLAINTEXT", ""),
                            ("SSL", f"ssl.truststore.type=PEM\nssl.truststore.location={d / 'ca.pem'}\n")):
        (d / f"client-{protocol}.properties").write_text(f"security.protocol={protocol}\n{extra}")
    return d


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["java", "-Xmx1g", "-cp", f"{TOOLS}/*", *args], capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT)


def summary_line(out: subprocess.CompletedProcess, what: str, matches) -> str:
    """The last line of a tool's output that `matches`; fails with the tool's output if none."""
    lines = [line for line in out.stdout.splitlines() if matches(line)]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return lines[-1]


def csv_numbers(line: str) -> list[float] | None:
    try:
        return [float(f) for f in line.split(",")[2:]]
    except ValueError:
        return None


def produce(bootstrap: str, topic: str, client_config: Path) -> dict:
    out = tool("org.apache.kafka.tools.ProducerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
               "--num-records", str(RECORDS), "--record-size", str(RECORD_BYTES), "--throughput", "-1",
               "--command-config", str(client_config),
               "--command-property", "acks=1", "linger.ms=5", "batch.size=65536")
    line = summary_line(out, "ProducerPerformance", lambda line: "records sent" in line and "99th" in line)
    m = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency.*?"
                  r"(\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", line)
    if not m or int(m.group(1)) != RECORDS:
        raise RuntimeError(f"ProducerPerformance: unexpected summary {line!r} {out.stderr[-2000:]}")
    keys = ["records", "records_per_s", "mb_per_s", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "p999_ms"]
    return dict(zip(keys, map(float, m.groups())))


def consume(bootstrap: str, topic: str, client_config: Path, group: str) -> dict:
    out = tool("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
               "--num-records", str(RECORDS), "--group", group, "--timeout", "60000",
               "--command-config", str(client_config))
    line = summary_line(out, "ConsumerPerformance", lambda line: (csv_numbers(line) or [])[7:] != [])
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    values = csv_numbers(line)[:8]
    keys = ["mb", "mb_per_s", "records", "records_per_s", "rebalance_ms", "fetch_ms", "fetch_mb_per_s",
            "fetch_records_per_s"]
    result = dict(zip(keys, values))
    if result["records"] != RECORDS:
        raise RuntimeError(f"ConsumerPerformance read {result['records']:.0f} of {RECORDS} records: {out.stderr[-2000:]}")
    return result


def run(name: str, index: int, certs: Path, work: Path) -> dict:
    work.mkdir(parents=True)
    port, ssl_port = free_port(), free_port()
    settings = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(certs / "broker.pem"),
                "group.initial.rebalance.delay.ms": 0}
    start = brokers.start_kafka if name == "kafka" else brokers.start_rivulet
    proc = start(work, port, settings, extra_listeners={"SSL": ssl_port})
    order = PROTOCOLS if index % 2 == 0 else PROTOCOLS[::-1]
    result = {"broker": name, "run": index, "order": list(order)}
    try:
        wait_port(port, proc, name)
        wait_port(ssl_port, proc, f"{name} (SSL)",
                  {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem")})
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        topics = {p: f"perf-{p.lower()}" for p in PROTOCOLS}
        for topic, future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics.values()]).items():
            future.result(30)
        gib = RECORDS * RECORD_BYTES / GIB
        for protocol in order:
            bootstrap = f"127.0.0.1:{port if protocol == 'PLAINTEXT' else ssl_port}"
            client = certs / f"client-{protocol}.properties"
            before = cpu_seconds(proc.pid)
            p = produce(bootstrap, topics[protocol], client)
            between = cpu_seconds(proc.pid)
            c = consume(bootstrap, topics[protocol], client, f"perf-{name}-{index}-{uuid.uuid4().hex[:8]}")
            after = cpu_seconds(proc.pid)
            result[protocol] = {"produce": p, "consume": c,
                                "broker_cpu_s": {"produce": between - before, "consume": after - between}}
            print(f"{NAMES[name]} run {index + 1} {protocol}: produce {p['records_per_s']:,.0f} rec/s "
                  f"(p99 {p['p99_ms']:.0f} ms), consume {c['records_per_s']:,.0f} rec/s, broker CPU "
                  f"{(between - before) / gib:.1f} / {(after - between) / gib:.1f} s per GiB", file=sys.stderr)
        assert proc.poll() is None, f"{name} exited"
        result["peak_rss_mib"] = peak_rss_mib(proc.pid)
        return result
    except Exception:
        log = work / f"{name}.log"
        if log.exists():
            print(f"{name}'s log ends with:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]),
                  file=sys.stderr)
        raise
    finally:
        brokers.stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def figures(r: dict, protocol: str) -> dict:
    """The reported figures of one run and listener."""
    gib = r["records"] * r["record_bytes"] / GIB
    x = r[protocol]
    return {
        "produce_records_per_s": x["produce"]["records_per_s"],
        "produce_mb_per_s": x["produce"]["mb_per_s"],
        "produce_p99_ms": x["produce"]["p99_ms"],
        "consume_records_per_s": x["consume"]["records_per_s"],
        "consume_mb_per_s": x["consume"]["mb_per_s"],
        "consume_fetch_records_per_s": x["consume"]["fetch_records_per_s"],
        "broker_cpu_s_per_gib_produced": x["broker_cpu_s"]["produce"] / gib,
        "broker_cpu_s_per_gib_consumed": x["broker_cpu_s"]["consume"] / gib,
    }


def summary(results: dict) -> dict:
    """Median, min and max of every figure per broker and listener, and the ratios of medians."""
    out = {}
    for name in BROKERS:
        runs = [r for r in results["runs"] if r["broker"] == name]
        out[name] = {}
        for protocol in PROTOCOLS:
            values = [figures({**r, **results["workload"]}, protocol) for r in runs]
            out[name][protocol] = {k: {"median": statistics.median(v[k] for v in values),
                                       "min": min(v[k] for v in values), "max": max(v[k] for v in values)}
                                   for k in values[0]}
        rss = [r["peak_rss_mib"] for r in runs]
        out[name]["peak_rss_mib"] = {"median": statistics.median(rss), "min": min(rss), "max": max(rss)}
        out[name]["ssl_over_plaintext"] = {k: out[name]["SSL"][k]["median"] / out[name]["PLAINTEXT"][k]["median"]
                                           for k in out[name]["SSL"] if out[name]["PLAINTEXT"][k]["median"]}
    out["rivulet_over_kafka"] = {
        protocol: {k: out["rivulet"][protocol][k]["median"] / out["kafka"][protocol][k]["median"]
                   for k in out["kafka"][protocol] if out["kafka"][protocol][k]["median"]}
        for protocol in PROTOCOLS}
    out["rivulet_over_kafka"]["peak_rss_mib"] = (out["rivulet"]["peak_rss_mib"]["median"]
                                                 / out["kafka"]["peak_rss_mib"]["median"])
    return out


LABELS = [
    ("produce_records_per_s", "produce, records/s", 0),
    ("produce_mb_per_s", "produce, MB/s", 1),
    ("produce_p99_ms", "produce p99 latency, ms", 0),
    ("consume_records_per_s", "consume, records/s", 0),
    ("consume_mb_per_s", "consume, MB/s", 1),
    ("consume_fetch_records_per_s", "consume without the group join, records/s", 0),
    ("broker_cpu_s_per_gib_produced", "broker CPU per GiB produced, s", 1),
    ("broker_cpu_s_per_gib_consumed", "broker CPU per GiB consumed, s", 1),
]


def report(results: dict):
    s = summary(results)

    def fmt(stat, digits):
        return f"{stat['median']:,.{digits}f} ({stat['min']:,.{digits}f}–{stat['max']:,.{digits}f})"

    def ratio(value):
        return f"{value:.2f}" if value is not None else "n/a"

    w = results["workload"]
    runs = len([r for r in results["runs"] if r["broker"] == "kafka"])
    print(f"\n{w['records']:,} records of {w['record_bytes']} B per listener, {runs} run(s) per broker\n")
    print("| figure | listener | Kafka, median (min–max) | Rivulet, median (min–max) | Rivulet / Kafka |")
    print("|---|---|---|---|---|")
    for key, label, digits in LABELS:
        for protocol in PROTOCOLS:
            print(f"| {label} | {protocol} | {fmt(s['kafka'][protocol][key], digits)} | "
                  f"{fmt(s['rivulet'][protocol][key], digits)} | "
                  f"{ratio(s['rivulet_over_kafka'][protocol].get(key))} |")
        print(f"| {label} | SSL / PLAINTEXT | {ratio(s['kafka']['ssl_over_plaintext'].get(key))} | "
              f"{ratio(s['rivulet']['ssl_over_plaintext'].get(key))} | |")
    print(f"| broker peak RSS at the end, MiB | both | {fmt(s['kafka']['peak_rss_mib'], 1)} | "
          f"{fmt(s['rivulet']['peak_rss_mib'], 1)} | {ratio(s['rivulet_over_kafka']['peak_rss_mib'])} |")


def main() -> int:
    # A TERM (e.g. from a timeout around the whole run) unwinds through the `finally`s above,
    # which kill the broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="rivulet-bench-ssl-"))
    try:
        certs = make_certs(work / "certs")
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"machine: {os.cpu_count()} cores, load {' '.join(load)}; {RECORDS:,} records x {RECORD_BYTES} B, "
              f"{RUNS} run(s) per broker", file=sys.stderr)
        results = {"workload": {"records": RECORDS, "record_bytes": RECORD_BYTES, "partitions": PARTITIONS,
                                "acks": "1", "linger_ms": 5, "batch_size": 65536,
                                "broker_key": "EC P-256"},
                   "machine": {"cores": os.cpu_count(), "load_at_start": load},
                   "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
        for i in range(RUNS):
            for name in BROKERS:
                results["runs"].append(run(name, i, certs, work / f"{name}-{i}"))
        results["summary"] = summary(results)
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "ssl.json").write_text(json.dumps(results, indent=2))
        report(results)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 2:
        # Re-print the table of a saved run: python3 bench/tls.py bench/results/ssl.json
        report(json.loads(Path(sys.argv[1]).read_text()))
    else:
        sys.exit(main())
