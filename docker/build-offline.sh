#!/usr/bin/env bash
# Builds the rivulet image without pulling anything from an image registry:
#  1. a Debian bookworm base image (minbase plus etcd-server, for the compose file's etcd)
#     made with mmdebstrap from Debian's packages and loaded with `docker import`, unless
#     it is there already;
#  2. the rivulet image on top of it from the release binary (docker/Dockerfile.binary).
# Usage: docker/build-offline.sh [BINARY] — BINARY defaults to the `make build` output.
# Environment: RIVULET_IMAGE (default rivulet:latest), RIVULET_BASE_IMAGE
# (default rivulet-base:bookworm).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${RIVULET_CACHE:-$HOME/.cache/rivulet}"
binary="${1:-${CARGO_TARGET_DIR:-$cache/target}/release/rivulet}"
image="${RIVULET_IMAGE:-rivulet:latest}"
base="${RIVULET_BASE_IMAGE:-rivulet-base:bookworm}"

[ -x "$binary" ] || { echo "no rivulet binary at $binary (run make build)" >&2; exit 1; }

if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "making the base image $base with mmdebstrap (Debian bookworm minbase + etcd-server)"
  mmdebstrap --quiet --variant=minbase --include=etcd-server,ca-certificates bookworm - \
    | docker import --change 'CMD ["/bin/bash"]' - "$base"
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/rivulet"
cp "$here/server.properties" "$context/server.properties"
docker build -q -f "$here/Dockerfile.binary" --build-arg BASE="$base" -t "$image" "$context"
echo "built $image on $base"
