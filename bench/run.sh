#!/usr/bin/env bash
# Side-by-side benchmark: Apache Kafka 4.3.1 (KRaft, one combined node) and Rivulet, one
# after the other on this machine, driven by the same kafka-tools 4.3.1 classes over
# loopback. Bounded: fixed record counts, a few minutes in all.
#
#   bash bench/run.sh            # full run (1,000,000 records acks=1, 500,000 acks=all,
#                                # 500,000 in 100 ms transactions, ...)
#   SCALE=10 bash bench/run.sh   # a tenth of every count, for a quick check
#
# Prints a Markdown table with the ratio Rivulet / Kafka for every figure and writes
# bench/results/latest.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${RIVULET_CACHE:-$HOME/.cache/rivulet}"
bin="${RIVULET_BIN:-${CARGO_TARGET_DIR:-$cache/target}/release/rivulet}"
tools="$cache/java-lib"
kafka_lib="$cache/kafka-lib"
scale="${SCALE:-1}"
produce_acks1=$((1000000 / scale))
produce_acks_all=$((500000 / scale))
produce_txn=$((500000 / scale))
latency_records=$((10000 / scale))
record_bytes=1024
# The JVM settings of Kafka's own start script (kafka-server-start.sh: -Xmx1G -Xms1G).
kafka_heap="-Xmx1G -Xms1G"

# Client tools and the Kafka broker jars (bench/kafka-pom.xml) come from the test deps.
bash "$here/../compat-tests/install-deps.sh"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
pid=""
work=$(mktemp -d)
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start_kafka() {
  local port=$1 controller_port dir=$work/kafka
  controller_port=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  java -cp "$kafka_lib/*" kafka.tools.StorageTool format -t "$(python3 -c 'import uuid,base64;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')" \
    -c "$dir/server.properties" --standalone > "$dir/format.log" 2>&1
  started=$(now_ms)
  # shellcheck disable=SC2086
  java $kafka_heap -cp "$kafka_lib/*" kafka.Kafka "$dir/server.properties" > "$dir/broker.log" 2>&1 &
  pid=$!
}

# The Rust peer tansu (crates.io), in-memory storage (needs its `dynostore` feature), when
# installed with
#   cargo install tansu --version 0.6.0 --features dynostore --locked --root "$RIVULET_CACHE/tansu"
tansu_bin="$cache/tansu/bin/tansu"
start_tansu() {
  local port=$1 dir=$work/tansu
  mkdir -p "$dir"
  started=$(now_ms)
  "$tansu_bin" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ > "$dir/broker.log" 2>&1 &
  pid=$!
}

start_rivulet() {
  local port=$1 dir=$work/rivulet
  mkdir -p "$dir"
  started=$(now_ms)
  "$bin" --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$dir/data" \
    --override group.initial.rebalance.delay.ms=0 > "$dir/broker.log" 2>&1 &
  pid=$!
}

# Start-to-first-request: polls every 5 ms with an ApiVersions v0 request until a
# well-formed answer arrives (a bound port alone is not "ready").
wait_ready() {
  local port=$1
  ready_ms=$(python3 - "$port" "$started" <<'PY'
import socket, struct, sys, time
port, started = int(sys.argv[1]), int(sys.argv[2])
request = struct.pack(">hhih", 18, 0, 1, -1)
frame = struct.pack(">i", len(request)) + request
deadline = time.time() + 60
while time.time() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(frame)
            size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            body = s.recv(size, socket.MSG_WAITALL)
            if len(body) == size and struct.unpack(">i", body[:4])[0] == 1 and struct.unpack(">h", body[4:6])[0] == 0:
                print(int(time.time() * 1000) - started)
                sys.exit(0)
    except (OSError, struct.error):
        pass
    time.sleep(0.005)
sys.exit(1)
PY
) || ready_ms=""
}

# Every tool run is bounded, whatever the broker does.
tool() { timeout 300 java -Xmx1g -cp "$tools/*" "$@"; }

run_broker() {
  local name=$1 port
  port=$(free_port)
  "start_$name" "$port"
  wait_ready "$port" || true
  if [ -z "$ready_ms" ]; then
    echo "$name did not answer within 60 s; skipped. Its log:" >&2
    tail -5 "$work/$name/broker.log" >&2 || true
    kill -9 "$pid" 2>/dev/null || true
    pid=""
    return 0
  fi
  local b="127.0.0.1:$port"
  for topic in perf1 perfall perftxn latency; do
    tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$b" --create --topic $topic --partitions 1 >/dev/null 2>&1 || true
  done
  local p1 pall ptxn consume e2e
  p1=$(tool org.apache.kafka.tools.ProducerPerformance --topic perf1 --num-records "$produce_acks1" --record-size $record_bytes \
    --throughput -1 --producer-props "bootstrap.servers=$b" acks=1 linger.ms=5 batch.size=65536 2>/dev/null | tail -1 || true)
  pall=$(tool org.apache.kafka.tools.ProducerPerformance --topic perfall --num-records "$produce_acks_all" --record-size $record_bytes \
    --throughput -1 --producer-props "bootstrap.servers=$b" acks=all linger.ms=5 batch.size=65536 2>/dev/null | tail -1 || true)
  # Transactional producer: a transaction committed every 100 ms (exactly-once producers).
  ptxn=$(tool org.apache.kafka.tools.ProducerPerformance --topic perftxn --num-records "$produce_txn" --record-size $record_bytes \
    --throughput -1 --transactional-id "bench-$name" --transaction-duration-ms 100 \
    --producer-props "bootstrap.servers=$b" acks=all linger.ms=5 batch.size=65536 2>/dev/null | tail -1 || true)
  consume=$(tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$b" --topic perf1 --messages "$produce_acks1" \
    --group "perf-$name" --timeout 60000 2>/dev/null | tail -1 || true)
  e2e=$(tool org.apache.kafka.tools.EndToEndLatency --bootstrap-server "$b" --topic latency --num-records "$latency_records" \
    --producer-acks 1 --record-size 1024 2>/dev/null | grep -E "Percentiles|Avg latency" | tr '\n' ' ' || true)
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  python3 - "$name" "$ready_ms" "$rss" "$p1" "$pall" "$consume" "$e2e" "$ptxn" >> "$work/results.jsonl" <<'PY'
import json, re, sys
name, ready_ms, rss_kb, p1, pall, consume, e2e, ptxn = sys.argv[1:]
def producer(line):
    m = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency.*?(\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", line)
    keys = ["records_per_s", "mb_per_s", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "p999_ms"]
    return dict(zip(keys, map(float, m.groups()))) if m else {"raw": line}
fields = consume.split(",")
consumer = {"mb_per_s": float(fields[3]), "records_per_s": float(fields[5])} if len(fields) > 5 else {"raw": consume}
m = re.search(r"Avg latency: ([\d.]+) ms.*?Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)", e2e)
latency = dict(zip(["avg_ms", "p50_ms", "p99_ms", "p999_ms"], map(float, m.groups()))) if m else {"raw": e2e}
print(json.dumps({"broker": name, "startup_ms": int(ready_ms), "peak_rss_mib": round(int(rss_kb) / 1024, 1),
                  "produce_acks1": producer(p1), "produce_acks_all": producer(pall),
                  "produce_transactional": producer(ptxn), "consume": consumer,
                  "end_to_end": latency}))
PY
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run_broker kafka
run_broker rivulet
if [ -x "$tansu_bin" ]; then
  run_broker tansu
else
  echo "tansu not installed: skipped (see start_tansu in bench/run.sh)" >&2
fi
mkdir -p "$here/results"
python3 - "$work/results.jsonl" "$here/results/latest.json" <<'PY'
import json, sys
rows = {r["broker"]: r for r in map(json.loads, open(sys.argv[1]))}
json.dump(rows, open(sys.argv[2], "w"), indent=2)
k, r = rows["kafka"], rows["rivulet"]
t = rows.get("tansu")
def get(row, path):
    for p in path.split("."):
        row = row.get(p, {}) if isinstance(row, dict) else {}
    return row if isinstance(row, (int, float)) else None
figures = [
    ("produce acks=1 records/s", "produce_acks1.records_per_s"), ("produce acks=1 MB/s", "produce_acks1.mb_per_s"),
    ("produce acks=1 p99 ms", "produce_acks1.p99_ms"),
    ("produce acks=all records/s", "produce_acks_all.records_per_s"), ("produce acks=all p99 ms", "produce_acks_all.p99_ms"),
    ("transactional produce records/s", "produce_transactional.records_per_s"),
    ("transactional produce p99 ms", "produce_transactional.p99_ms"),
    ("consume records/s", "consume.records_per_s"), ("consume MB/s", "consume.mb_per_s"),
    ("end-to-end p50 ms", "end_to_end.p50_ms"), ("end-to-end p99 ms", "end_to_end.p99_ms"), ("end-to-end p99.9 ms", "end_to_end.p999_ms"),
    ("peak RSS MiB", "peak_rss_mib"), ("start to first request ms", "startup_ms"),
]
print("| figure | Apache Kafka 4.3.1 | Rivulet | Rivulet / Kafka |" + (" tansu 0.6.0 (memory) |" if t else ""))
print("|---|---|---|---|" + ("---|" if t else ""))
for label, path in figures:
    a, b = get(k, path), get(r, path)
    ratio = f"{b / a:.2f}" if a and b is not None else "n/a"
    print(f"| {label} | {a} | {b} | {ratio} |" + (f" {get(t, path)} |" if t else ""))
PY
