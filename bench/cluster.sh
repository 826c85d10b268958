#!/usr/bin/env bash
# Replication cost, side by side: a 3-broker Rivulet cluster on one etcd and a 3-node
# Apache Kafka 4.3.1 KRaft cluster (each node broker + controller, -Xmx1G as Kafka's start
# script), one after the other on this machine over loopback. The same kafka-tools 4.3.1
# ProducerPerformance runs against a topic with replication factor 1 and one with
# replication factor 3 (min.insync.replicas=2), both acks=all. Bounded: fixed record
# counts; everything it starts is killed on exit.
#
#   bash bench/cluster.sh            # 500,000 records of 1 KiB per run
#   SCALE=10 bash bench/cluster.sh   # a tenth, for a quick check
#
# Prints a Markdown table and writes bench/results/cluster.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${RIVULET_CACHE:-$HOME/.cache/rivulet}"
bin="${RIVULET_BIN:-${CARGO_TARGET_DIR:-$cache/target}/release/rivulet}"
tools="$cache/java-lib"
kafka_lib="$cache/kafka-lib"
scale="${SCALE:-1}"
records=$((500000 / scale))
partitions=3

bash "$here/../compat-tests/install-deps.sh"
command -v etcd >/dev/null || { echo "etcd is missing: run 'make deps-etcd'" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
stop_all() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_all; rm -rf "$work"; }
trap cleanup EXIT
tool() { timeout 300 java -Xmx1g -cp "$tools/*" "$@"; }

# Waits until Metadata from the cluster lists three brokers.
wait_for_three() {
  for _ in $(seq 300); do
    tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$bootstrap" 2>/dev/null \
      | grep -c '^127' | grep -q 3 && return 0
    sleep 0.5
  done
  echo "the cluster did not come up" >&2
  return 1
}

start_rivulet_cluster() {
  local etcd_port peer_port node port
  etcd_port=$(free_port)
  peer_port=$(free_port)
  etcd --name bench --data-dir "$work/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "bench=http://127.0.0.1:$peer_port" > "$work/etcd.log" 2>&1 &
  pids+=($!)
  # Ready means answering (GET /health), not an open port: etcd accepts before it serves.
  for _ in $(seq 300); do
    python3 -c 'import sys, urllib.request as u
o = u.build_opener(u.ProxyHandler({}))
sys.exit(0 if b"\"health\":\"true\"" in o.open(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).read() else 1)' \
      "$etcd_port" 2>/dev/null && break
    sleep 0.1
  done
  bootstrap=""
  for node in 1 2 3; do
    port=$(free_port)
    mkdir -p "$work/rivulet-$node"
    "$bin" --override "node.id=$node" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
      --override "log.dirs=$work/rivulet-$node/data" --override "metadata.store=etcd://127.0.0.1:$etcd_port/bench" \
      > "$work/rivulet-$node/broker.log" 2>&1 &
    pids+=($!)
    bootstrap="${bootstrap:+$bootstrap,}127.0.0.1:$port"
  done
}

start_kafka_cluster() {
  local node voters="" ports=() controllers=() cluster_id dir
  for node in 1 2 3; do
    ports[$node]=$(free_port)
    controllers[$node]=$(free_port)
    voters="${voters:+$voters,}$node@127.0.0.1:${controllers[$node]}"
  done
  cluster_id=$(python3 -c 'import uuid,base64;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  bootstrap=""
  for node in 1 2 3; do
    dir=$work/kafka-$node
    mkdir -p "$dir"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${ports[$node]},CONTROLLER://127.0.0.1:${controllers[$node]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$node]}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
group.initial.rebalance.delay.ms=0
PROPS
    java -cp "$kafka_lib/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      > "$dir/format.log" 2>&1
    java -Xmx1G -Xms1G -cp "$kafka_lib/*" kafka.Kafka "$dir/server.properties" > "$dir/broker.log" 2>&1 &
    pids+=($!)
    bootstrap="${bootstrap:+$bootstrap,}127.0.0.1:${ports[$node]}"
  done
}

run() {
  local rf=$1 topic="rf$1"
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create --topic "$topic" \
    --partitions $partitions --replication-factor "$rf" --config "min.insync.replicas=$(( rf > 1 ? 2 : 1 ))" >/dev/null
  sleep 2
  tool org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$records" --record-size 1024 \
    --throughput -1 --producer-props "bootstrap.servers=$bootstrap" acks=all linger.ms=5 batch.size=65536 2>/dev/null | tail -1
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
start_kafka_cluster
wait_for_three
kafka_rf1=$(run 1)
kafka_rf3=$(run 3)
stop_all
start_rivulet_cluster
wait_for_three
rivulet_rf1=$(run 1)
rivulet_rf3=$(run 3)
stop_all
mkdir -p "$here/results"
python3 - "$kafka_rf1" "$kafka_rf3" "$rivulet_rf1" "$rivulet_rf3" "$here/results/cluster.json" <<'PY'
import json, re, sys
def parse(line):
    m = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency.*?(\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", line)
    keys = ["records_per_s", "mb_per_s", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "p999_ms"]
    return dict(zip(keys, map(float, m.groups()))) if m else {"raw": line}
rows = {"kafka": {"rf1": parse(sys.argv[1]), "rf3": parse(sys.argv[2])},
        "rivulet": {"rf1": parse(sys.argv[3]), "rf3": parse(sys.argv[4])}}
json.dump(rows, open(sys.argv[5], "w"), indent=2)
print("| 3 brokers, acks=all, 3 partitions | records/s | MB/s | avg ms | p50 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|---|---|")
for broker, name in (("kafka", "Apache Kafka 4.3.1"), ("rivulet", "Rivulet")):
    for rf, label in (("rf1", "RF=1"), ("rf3", "RF=3, min.insync.replicas=2")):
        r = rows[broker][rf]
        cells = [f"{r[k]:,.1f}" if k in r else "?" for k in ("records_per_s", "mb_per_s", "avg_ms", "p50_ms", "p99_ms", "p999_ms")]
        print(f"| {name} {label} | " + " | ".join(cells) + " |")
PY
