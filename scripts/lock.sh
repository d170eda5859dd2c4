#!/usr/bin/env bash
# Recompile requirements.lock from the pins in pyproject.toml (run after changing a dependency).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
uv_bin=$(ensure_uv)
"$uv_bin" pip compile --quiet pyproject.toml --extra dev --python-version 3.11 --universal --no-header \
    --output-file requirements.lock
