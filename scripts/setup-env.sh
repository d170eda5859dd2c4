#!/usr/bin/env bash
# Create (or reuse) the project's Python environment and link it at .venv.
# The environment lives in the cache, keyed by the hash of requirements.lock, so an unchanged lock reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

key=$( (cat requirements.lock; python3 --version) | sha256sum | cut -c1-16)
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
# The editable install records this checkout's path; repoint it when the cached venv serves another clone.
if ! "$venv/bin/python" -c 'import latechunk, sys, pathlib; sys.exit(pathlib.Path(latechunk.__file__).resolve().parents[2] != pathlib.Path.cwd().resolve())' 2>/dev/null; then
    UV_CACHE_DIR="$LATECHUNK_CACHE/uv-cache" VIRTUAL_ENV="$venv" "$(ensure_uv)" pip install --quiet --no-deps --editable .
fi
ln -sfn "$venv" .venv
log "environment ready: .venv -> $venv"
