#!/usr/bin/env bash
# Whole-broker produce throughput with Apache Kafka's own load generator:
# kafka-tools ProducerPerformance against a fresh Rivulet on loopback.
#
#   bash bench/producer-perf.sh [RECORDS] [RECORD_BYTES] [ACKS]
#
# Prints ProducerPerformance's summary line and the broker's peak RSS. Bounded: the run
# ends when RECORDS are sent (default 1,000,000 x 1 KiB, acks=1).
set -euo pipefail
records="${1:-1000000}"
record_bytes="${2:-1024}"
acks="${3:-1}"
cache="${RIVULET_CACHE:-$HOME/.cache/rivulet}"
bin="${RIVULET_BIN:-${CARGO_TARGET_DIR:-$cache/target}/release/rivulet}"
lib="$cache/java-lib"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d)
trap 'kill -9 "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT

"$bin" --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" 2> "$data/broker.log" &
pid=$!
for _ in $(seq 100); do grep -q "rivulet started" "$data/broker.log" && break; sleep 0.1; done

java -Xmx1g -cp "$lib/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
  --create --topic perf --partitions 1 >/dev/null
java -Xmx1g -cp "$lib/*" org.apache.kafka.tools.ProducerPerformance \
  --topic perf --num-records "$records" --record-size "$record_bytes" --throughput -1 \
  --producer-props "bootstrap.servers=127.0.0.1:$port" "acks=$acks" linger.ms=5 batch.size=65536 \
  | tail -1
echo "broker peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
