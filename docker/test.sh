#!/usr/bin/env bash
# Runs the compose cluster test (compat-tests/python/test_docker.py) on a bare Debian machine:
# installs Debian's docker.io, docker-compose and mmdebstrap when missing, starts a docker
# daemon with its default bridge disabled when none is running (and stops it afterwards),
# then runs the test, which builds the images here and keeps all traffic on 127.0.0.1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${RIVULET_CACHE:-$HOME/.cache/rivulet}"

missing=""
for p in docker.io docker-compose mmdebstrap; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing$missing"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi

started=""
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (no default bridge, no iptables rules); log in $cache/dockerd.log"
  mkdir -p "$cache"
  dockerd --bridge=none --iptables=false >"$cache/dockerd.log" 2>&1 &
  started=$!
  trap 'kill "$started" 2>/dev/null; wait "$started" 2>/dev/null || true' EXIT
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start:"; tail -20 "$cache/dockerd.log"; exit 1; }
fi

cd "$here/../compat-tests/python"
"$cache/venv/bin/pytest" -q -p no:cacheprovider -m docker test_docker.py
