#!/usr/bin/env bash
# Installs what the compatibility tests drive: kcat and openssl (Debian), a Python venv with the
# Python clients and pytest, and the Apache Kafka 4.3.1 client/tool jars (Maven); with
# `--browser` also Debian's chromium.
# Idempotent and quick when everything is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${RIVULET_CACHE:-$HOME/.cache/rivulet}"
mkdir -p "$cache"

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

if ! command -v kcat >/dev/null 2>&1; then
  echo "installing kcat"
  apt_install kcat
fi

# The TLS tests make their certificates with openssl.
if ! command -v openssl >/dev/null 2>&1; then
  echo "installing openssl"
  apt_install openssl
fi

venv="$cache/venv"
stamp="$venv/.requirements-installed"
if [ ! -f "$stamp" ] || ! cmp -s "$here/python/requirements.txt" "$stamp"; then
  echo "creating Python venv at $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/python/requirements.txt"
  cp "$here/python/requirements.txt" "$stamp"
fi

# Go clients (franz-go, IBM/sarama): one binary, rebuilt when its sources change.
go_bin="$cache/go-compat"
go_stamp="$cache/go-compat.sources"
go_sources="$(cat "$here/go/main.go" "$here/go/go.mod" "$here/go/go.sum" | sha256sum)"
if [ ! -x "$go_bin" ] || [ "$(cat "$go_stamp" 2>/dev/null)" != "$go_sources" ]; then
  echo "building the Go client scenarios"
  (cd "$here/go" && go build -o "$go_bin" .)
  echo "$go_sources" > "$go_stamp"
fi

# Node client (kafkajs), without a lock file.
if [ ! -d "$here/node/node_modules/kafkajs" ]; then
  echo "installing kafkajs"
  (cd "$here/node" && npm install --no-audit --no-fund --no-package-lock --silent)
fi

# resolve_jars POM DIR: the runtime jars of POM into DIR, again only when POM changed.
resolve_jars() {
  local pom=$1 dir=$2
  if [ ! -f "$dir/.complete" ] || ! cmp -s "$pom" "$dir/.complete"; then
    echo "resolving $(basename "$pom") into $dir"
    rm -rf "$dir"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dir" -DincludeScope=runtime
    cp "$pom" "$dir/.complete"
  fi
}

# Debian's chromium for the web console's headless-browser test (`--browser`; `make compat`
# asks for it, `make test` does not run that test).
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium"
  apt_install chromium
fi

# The Kafka 4.3.1 clients and console tools.
resolve_jars "$here/java/pom.xml" "$cache/java-lib"

# The Apache Kafka broker jar carries the tools still written in Scala (kafka-configs'
# kafka.admin.ConfigCommand); the benchmark uses the same set to run Kafka itself.
resolve_jars "$here/../bench/kafka-pom.xml" "$cache/kafka-lib"

# Kafka Connect 4.3.1 (distributed worker, file connectors) and MirrorMaker 2 for test_connect.py
# and test_mirror_maker.py.
resolve_jars "$here/connect/pom.xml" "$cache/connect-lib"
