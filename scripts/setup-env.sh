#!/usr/bin/env bash
# Create (or reuse) the project's Python environment and link it at .venv.
# The environment lives in the cache, keyed by requirements.lock and this checkout's path (the project is installed
# editable), so an unchanged lock reuses it; uv's package cache makes a new one cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

key=$( (cat requirements.lock; python3 --version; pwd -P) | sha256sum | cut -c1-16)
venv="$LATECHUNK_CACHE/venv-$key"
if [[ ! -f "$venv/.complete" ]]; then
    uv_bin=$(ensure_uv)
    log "creating the Python environment in $venv (first run downloads torch and friends)"
    rm -rf "$venv"
    "$uv_bin" venv --quiet --python "$(command -v python3)" "$venv"
    UV_CACHE_DIR="$LATECHUNK_CACHE/uv-cache" VIRTUAL_ENV="$venv" \
        "$uv_bin" pip install --quiet --requirement requirements.lock
    UV_CACHE_DIR="$LATECHUNK_CACHE/uv-cache" VIRTUAL_ENV="$venv" \
        "$uv_bin" pip install --quiet --no-deps --editable .
    touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
log "environment ready: .venv -> $venv"
