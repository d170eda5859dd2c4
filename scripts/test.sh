#!/usr/bin/env bash
# Set up everything the tests need (environment, local Elasticsearch and MinIO), lint, and run the test suite.
# With ES_URL set, the suite runs against that Elasticsearch instead of the local one.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k spans
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup-env.sh
if [[ -n ${ES_URL:-} ]]; then
    log "using the Elasticsearch at ES_URL=$ES_URL"
    scripts/servers.sh start s3
else
    scripts/servers.sh start
fi
scripts/install-compose.sh || log "no Compose implementation: the compose-file tests will skip"
log "ruff"
.venv/bin/ruff check dags plugins include tests bench scripts
log "pytest"
.venv/bin/python -m pytest "$@"
