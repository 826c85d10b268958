# Rivulet — build, run and test. Every target installs what it needs on a bare Debian
# machine that has only the language toolchains.

SHELL := /bin/bash
RIVULET_CACHE ?= $(HOME)/.cache/rivulet
# Outside the clone, so CI and fresh clones reuse the (slow, RocksDB-heavy) build.
CARGO_TARGET_DIR ?= $(RIVULET_CACHE)/target
export RIVULET_CACHE CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/rivulet
VENV := $(RIVULET_CACHE)/venv
DATA_DIR ?= $(CURDIR)/data
# Everything is built with the release profile only: RocksDB (C++) compiles once.
CARGO_FLAGS := --release --locked

.PHONY: all build run test test-rust test-compat lint fmt deps-build deps-etcd deps-test deps-browser deps-fuzz compat docker-test chaos soak fuzz test-fuzz fuzz-seed bench bench-cluster bench-cleaner bench-ssl clean

all: build

# apt_install PACKAGE...: installs the Debian packages that are missing (as root or via sudo).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		(apt-get update -qq || sudo apt-get update -qq) && \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing || \
		 sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing); \
	fi
endef

## deps-build: system packages the build needs (libclang for RocksDB's bindings, protoc
## for etcd-client's gRPC code).
deps-build:
	$(call apt_install,libclang-dev protobuf-compiler)

## deps-etcd: the etcd server the metadata tests run (Debian's etcd-server, v3 API).
deps-etcd:
	$(call apt_install,etcd-server)

## build: the rivulet binary (release).
build: deps-build
	cargo build $(CARGO_FLAGS) -p rivulet

## run: one broker on localhost:9092, data under ./data, embedded metadata.
run: build
	mkdir -p $(DATA_DIR)
	$(BIN) config/server.properties --override log.dirs=$(DATA_DIR)

## deps-test: kcat, the Python clients and the Java clients/tools the tests drive.
deps-test:
	bash compat-tests/install-deps.sh

## deps-browser: deps-test and Debian's chromium, for the web console's headless-browser test.
deps-browser:
	bash compat-tests/install-deps.sh --browser

## test: every test — unit, integration (real broker processes), and the client suite
## (without the tests marked `slow`, e.g. 1,000,000 offset commits; `make compat` runs them).
test: build deps-test test-rust test-compat test-fuzz

test-rust: deps-build deps-etcd
	cargo test $(CARGO_FLAGS) --workspace

test-compat: build deps-test deps-etcd
	RIVULET_BIN=$(BIN) $(VENV)/bin/pytest -q -m "not slow and not chaos and not docker" compat-tests/python

## compat: the whole client matrix, `slow` tests included; writes compat-tests/results.json
## and regenerates the client table in docs/compatibility.md.
compat: build deps-browser deps-etcd
	RIVULET_BIN=$(BIN) $(VENV)/bin/pytest -q -m "not docker" compat-tests/python --junitxml=$(RIVULET_CACHE)/compat-results.xml || true
	$(VENV)/bin/python compat-tests/report.py $(RIVULET_CACHE)/compat-results.xml

## docker-test: builds the image here (a Debian base from mmdebstrap, no image registry
## needed), starts docker/docker-compose.cluster.yml with host networking on 127.0.0.1 ports,
## produces, kills a broker container and reads everything back. Installs docker.io,
## docker-compose and mmdebstrap, and starts dockerd without its bridge when none runs.
docker-test: build deps-test
	RIVULET_BIN=$(BIN) bash docker/test.sh

## chaos: fault campaigns (seeds 1, 2, 3; 20 faults each: kill -9, SIGSTOP, network partitions, etcd outages) against
## a 3-broker loopback cluster under idempotent producers and a consumer group; the checker
## exits non-zero on a lost, duplicated or reordered acknowledged record (docs/reliability.md).
chaos: build deps-test deps-etcd
	RIVULET_BIN=$(BIN) $(VENV)/bin/python compat-tests/python/chaos.py --seeds 1,2,3 --faults 20 --duration-s 240

## soak: 30 minutes of the same workloads with a fault every minute (pauses, network
## partitions, etcd outages); prints each broker's memory and open descriptors over time
## and fails on a violated invariant or an ERROR logged after the cluster healed.
soak: build deps-test deps-etcd
	RIVULET_BIN=$(BIN) $(VENV)/bin/python compat-tests/python/chaos.py --soak-minutes 30

## fuzz: every fuzz target (request frames, record batches, coordinator records, peer
## responses) under AFL++ for up to FUZZ_SECONDS each (default 900); crashes land in
## fuzz/regressions/ and fail the run, the grown corpus in fuzz/corpus/, the execution
## counts in fuzz/runs.tsv. `make test` replays the corpus and every regression, and runs
## each target for a few seconds (test-fuzz).
fuzz: deps-fuzz
	bash fuzz/run.sh

## fuzz-seed: adds to fuzz/corpus/ what real clients (librdkafka, kafka-python, the Java
## tools) send to a broker through a recording loopback proxy.
fuzz-seed: build deps-test
	RIVULET_BIN=$(BIN) $(VENV)/bin/python fuzz/seed_corpus.py

## test-fuzz: a short AFL++ run of every target (15 s each), starting from the corpus and
## every regression: fails if any of them crashes again or a new crash is found.
test-fuzz: deps-fuzz
	FUZZ_SMOKE=1 bash fuzz/run.sh

## deps-fuzz: cargo-afl from crates.io, which builds AFL++ itself.
deps-fuzz:
	@cargo afl --version >/dev/null 2>&1 || cargo install cargo-afl --locked

## lint: formatting and clippy, warnings as errors.
lint: deps-build
	cargo fmt --all -- --check
	cargo clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

## bench: Rivulet and Apache Kafka 4.3.1 side by side with the same client tools (bounded,
## loopback); prints ratios and writes bench/results/latest.json.
bench: build deps-test
	bash bench/run.sh

## bench-cluster: 3-broker Rivulet (etcd) and Kafka (KRaft) clusters side by side, acks=all
## at replication factor 1 and 3; writes bench/results/cluster.json.
bench-cluster: build deps-test deps-etcd
	bash bench/cluster.sh

## bench-cleaner: Rivulet and Apache Kafka 4.3.1 side by side: produce to a compacted topic
## with the cleaner busy, beside a delete-policy topic, and the compacted topic's size;
## writes bench/results/cleaner.json.
bench-cleaner: build deps-test
	RIVULET_BIN=$(BIN) $(VENV)/bin/python bench/cleaner.py

## bench-ssl: Rivulet and Apache Kafka 4.3.1 side by side, each with a PLAINTEXT and an SSL
## listener: produce and consume throughput, p99 and broker CPU per GiB over TLS beside
## PLAINTEXT (RECORDS, RUNS); writes bench/results/ssl.json.
bench-ssl: build deps-test
	RIVULET_BIN=$(BIN) $(VENV)/bin/python bench/tls.py

## bench-produce: Rivulet alone with ProducerPerformance (1,000,000 x 1 KiB, acks=1).
bench-produce: build deps-test
	bash bench/producer-perf.sh

fmt:
	cargo fmt --all

clean:
	rm -rf $(DATA_DIR)
