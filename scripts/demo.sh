#!/usr/bin/env bash
# The main job on a fresh machine: set up the environment, start Elasticsearch, MinIO and the Airflow stack
# (scripts/airflow.sh: api-server, scheduler, dag-processor, triggerer, Celery workers on PostgreSQL and Redis),
# upload the sample corpus, trigger the ingest DAG through the REST API, follow it, and print the top hits for a
# sample question. The stack stays up for the UI; `scripts/demo.sh stop` stops everything.
# Arguments go to scripts/demo.py (e.g. --question "...").
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == stop ]]; then
    scripts/airflow.sh stop
    exec scripts/servers.sh stop
fi
scripts/airflow.sh start >/dev/null
exec .venv/bin/python scripts/demo.py "$@"
