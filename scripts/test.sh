#!/usr/bin/env bash
# Set up everything the tests need (environment, local Elasticsearch and MinIO, the Airflow stack, a browser), lint,
# and run the test suite.
# With ES_URL set, the suite runs against that Elasticsearch instead of the local one.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k spans
# scripts/test.sh --unit: lint and the quick unit tier (tests/unit) only; it starts nothing (no server, no Airflow
# stack, no browser) and sets up the Python environment only when there is none. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

if [[ ${1:-} == --unit ]]; then
    shift
    [[ -x .venv/bin/python ]] || scripts/setup-env.sh
    log "ruff"
    .venv/bin/ruff check dags plugins include tests bench scripts
    log "pytest tests/unit"
    exec .venv/bin/python -m pytest tests/unit "$@"
fi

scripts/setup-env.sh
if [[ -n ${ES_URL:-} ]]; then
    log "using the Elasticsearch at ES_URL=$ES_URL"
    scripts/servers.sh start s3
else
    scripts/servers.sh start
fi
scripts/install-compose.sh || log "no Compose implementation: the compose-file tests will skip"
# The browser tests drive Debian's chromium with its chromedriver (no browser download).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing chromium and chromium-driver from Debian's packages"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium chromium-driver >/dev/null
    else
        die "the UI tests need chromium and chromium-driver: apt-get install chromium chromium-driver"
    fi
fi
# The Airflow stack (api-server, scheduler, dag-processor, triggerer, Celery workers on PostgreSQL and Redis) that
# the stack tests drive through the REST API, the CLI and a browser; restarted so it runs this checkout's code.
# Its scheduled runs write a default index of their own, never one an older checkout left in Elasticsearch.
# Retries after 5 s, not a minute, so that the chaos test's recoveries stay quick.
# Two gpu workers, so that a test sees mapped embed tasks spread over both.
LATECHUNK_INDEX="latechunk-test-$(date +%s)" LATECHUNK_RETRY_DELAY_S=5 LATECHUNK_GPU_WORKERS=2 \
    scripts/airflow.sh restart >/dev/null
log "ruff"
.venv/bin/ruff check dags plugins include tests bench scripts
log "pytest"
.venv/bin/python -m pytest "$@"
