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
# Bytecode for every module of the environment, written once: a process that may not write it (as under
# PYTHONDONTWRITEBYTECODE=1, which CI machines often set) otherwise compiles each module it imports from source,
# every time: 14.5 s instead of 5.9 s to import airflow.sdk, pandas, torch and transformers on 2 cores, paid by
# every task, CLI call and DAG parse. A few packages ship test files with deliberate syntax errors, which compileall
# reports and skips.
if [[ ! -f "$venv/.bytecode" ]]; then
    log "compiling the environment's modules to bytecode"
    "$venv/bin/python" -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
    touch "$venv/.bytecode"
fi
ln -sfn "$venv" .venv
log "environment ready: .venv -> $venv"
