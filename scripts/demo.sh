#!/usr/bin/env bash
# The main job on a fresh machine: set up the environment, start Elasticsearch and MinIO on loopback,
# upload the sample corpus, run the ingest DAG for real, and print the top hits for a sample question.
# Arguments go to scripts/demo.py (e.g. --question "...").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
scripts/servers.sh start
exec .venv/bin/python scripts/demo.py "$@"
