#!/usr/bin/env bash
# Make a Compose implementation available for tests/test_compose.py (which runs `docker-compose config`, no engine
# needed). Idempotent: does nothing when `docker compose` (the v2 plugin) or `docker-compose` already works.
# On CI this runs as root on Debian/Ubuntu and installs Debian's docker-compose package (1.29).
set -euo pipefail

if docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-compose: no compose implementation and no apt-get; install Docker Compose yourself" >&2
    exit 1
fi
sudo=()
if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-compose: needs root (or sudo) for apt-get" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-compose: installing Debian's docker-compose package" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends docker-compose >/dev/null; then
    "${sudo[@]}" apt-get update -q >/dev/null
    "${sudo[@]}" apt-get install -y -q --no-install-recommends docker-compose >/dev/null
fi
docker-compose version
