#!/usr/bin/env bash
# Start, stop or inspect the project's local servers on loopback, with no Docker:
#   - Elasticsearch 8.x: Elastic's integ-test distribution from Maven Central, run by its own bin/elasticsearch;
#   - MinIO (S3 protocol): built once from the Go module proxy, then cached; it publishes the document bucket's
#     notifications (objects created or removed under the ingest prefix) to Kafka;
#   - Apache Kafka (KRaft): the broker's jars from Maven Central (scripts/kafka.sh).
# Usage: scripts/servers.sh start|stop|status|env [es|s3|kafka|es-cluster]
# `start` is idempotent (a healthy server is reused); `stop` leaves nothing running.
# `es-cluster` (never part of `all`) is a separate 3-node Elasticsearch cluster on loopback, beside the single node:
# HTTP on 9201-9203, transport on 9401-9403, 512 MB of heap per node, its own data under the cache; `start
# es-cluster` also restarts any of its nodes that is down (after a test killed it).
# After `start`, var/servers.env holds ES_URL, S3_ENDPOINT_URL and the S3 credentials for tests and the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ES_VERSION=8.19.21
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
ES_PORT=${LATECHUNK_ES_PORT:-9200}
S3_PORT=${LATECHUNK_S3_PORT:-9000}
S3_CONSOLE_PORT=${LATECHUNK_S3_CONSOLE_PORT:-9001}
ES_HEAP=${LATECHUNK_ES_HEAP:-1g}
ES_CLUSTER_NODES=3
ES_CLUSTER_HTTP_BASE=${LATECHUNK_ES_CLUSTER_HTTP_BASE:-9200}        # node i serves HTTP on base + i
ES_CLUSTER_TRANSPORT_BASE=${LATECHUNK_ES_CLUSTER_TRANSPORT_BASE:-9400}  # and transport on base + i
ES_CLUSTER_HEAP=${LATECHUNK_ES_CLUSTER_HEAP:-512m}
S3_USER=${LATECHUNK_S3_ACCESS_KEY:-latechunk}
S3_PASSWORD=${LATECHUNK_S3_SECRET_KEY:-latechunk-local-secret}
S3_BUCKETS=${LATECHUNK_S3_BUCKETS:-latechunk-docs latechunk-staging}
VAR=$PWD/var
# The bucket and prefix whose notifications go to Kafka: the event DAG's defaults (LATECHUNK_BUCKET, LATECHUNK_PREFIX).
EVENTS_BUCKET=${LATECHUNK_BUCKET:-latechunk-docs}
EVENTS_PREFIX=${LATECHUNK_PREFIX:-incoming/}
# MinIO's Kafka notification target, configured by environment: its ARN is arn:minio:sqs::<target id>:kafka.
MINIO_KAFKA_TARGET=LATECHUNK
# Elasticsearch refuses to run as root: as root, it runs as a system user, and its files live where that user
# can read them (root's home is private).
ES_USER=latechunk-es
if [[ $(id -u) == 0 ]]; then ES_HOME_ROOT=/var/cache/latechunk; else ES_HOME_ROOT=$LATECHUNK_CACHE; fi
ES_HOME=$ES_HOME_ROOT/elasticsearch-$ES_VERSION
ES_STATE=$ES_HOME_ROOT/state-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)
ES_CLUSTER_STATE=$ES_HOME_ROOT/cluster-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)
MINIO_BIN=$LATECHUNK_CACHE/minio-$MINIO_VERSION/minio
source scripts/kafka.sh

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

es_healthy() { curl -sf -m 2 "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null; }
s3_healthy() { curl -sf -m 2 "http://127.0.0.1:$S3_PORT/minio/health/live" >/dev/null; }

find_java_home() {
    local java_bin home version
    if [[ -n ${ES_JAVA_HOME:-} ]]; then home=$ES_JAVA_HOME
    elif [[ -n ${JAVA_HOME:-} ]]; then home=$JAVA_HOME
    else
        java_bin=$(command -v java) || die "Java 17 or newer is required to run Elasticsearch; install a JDK (e.g. apt-get install openjdk-17-jre-headless) or set ES_JAVA_HOME"
        home=$(dirname "$(dirname "$(readlink -f "$java_bin")")")
    fi
    [[ -x $home/bin/java ]] || die "no java executable under $home (from ES_JAVA_HOME/JAVA_HOME)"
    version=$("$home/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    [[ -n $version && $version -ge 17 ]] || die "Elasticsearch $ES_VERSION needs Java 17+, found version '${version:-unknown}' at $home"
    echo "$home"
}

install_es() {
    [[ -x $ES_HOME/bin/elasticsearch ]] && return
    command -v mvn >/dev/null || die "Maven (mvn) is required to fetch Elasticsearch from Maven Central"
    local coords=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip
    log "resolving $coords from Maven Central"
    mvn -q -B dependency:get -Dartifact="$coords" -Dtransitive=false >&2 \
        || die "could not resolve $coords from Maven Central"
    local zip=$HOME/.m2/repository/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip
    local tmp; tmp=$(mktemp -d "$ES_HOME_ROOT/unpack.XXXXXX")
    unzip -q "$zip" -d "$tmp"
    mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
    rm -rf "$tmp"
}

start_es() {
    if es_healthy; then log "Elasticsearch already running on 127.0.0.1:$ES_PORT"; return; fi
    port_open "$ES_PORT" && die "port $ES_PORT is taken by something that is not a healthy Elasticsearch; stop it or set LATECHUNK_ES_PORT"
    local java_home; java_home=$(find_java_home)
    mkdir -p "$ES_HOME_ROOT"
    install_es
    mkdir -p "$ES_STATE"/{data,logs}
    rm -rf "$ES_STATE/config" && cp -r "$ES_HOME/config" "$ES_STATE/config"
    local -a run_as=()
    if [[ $(id -u) == 0 ]]; then
        id "$ES_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
        chown -R "$ES_USER:" "$ES_STATE"
        chmod -R a+rX "$ES_HOME"
        run_as=(setpriv --reuid="$ES_USER" --regid="$ES_USER" --clear-groups)
    fi
    log "starting Elasticsearch $ES_VERSION on 127.0.0.1:$ES_PORT (state in $ES_STATE)"
    # setsid: the node must outlive the shell (or test) that started it, whatever happens to that one's group.
    setsid --wait "${run_as[@]}" env ES_JAVA_HOME="$java_home" ES_PATH_CONF="$ES_STATE/config" \
        ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
        "$ES_HOME/bin/elasticsearch" -d -p "$ES_STATE/logs/es.pid" \
        -Ecluster.name=latechunk-local -Enode.name=local \
        -Ediscovery.type=single-node -Expack.security.enabled=false -Expack.ml.enabled=false \
        -Enetwork.host=127.0.0.1 -Ehttp.port="$ES_PORT" -Etransport.port=0 \
        -Epath.data="$ES_STATE/data" -Epath.logs="$ES_STATE/logs" \
        -Ecluster.routing.allocation.disk.threshold_enabled=false \
        -Eaction.destructive_requires_name=false >"$ES_STATE/logs/stdout.log" 2>&1 \
        || { tail -n 30 "$ES_STATE/logs/stdout.log" >&2; die "Elasticsearch failed to start (log: $ES_STATE/logs)"; }
    for _ in $(seq 1 120); do es_healthy && break; sleep 1; done
    es_healthy || die "Elasticsearch did not become healthy within 120 s (log: $ES_STATE/logs)"
    mkdir -p "$VAR" && ln -sfn "$ES_STATE" "$VAR/elasticsearch"
    write_env
    log "Elasticsearch is up: http://127.0.0.1:$ES_PORT"
}

stop_es() { stop_pidfile Elasticsearch "$ES_STATE/logs/es.pid"; }

es_node_up() { curl -sf -m 2 "http://127.0.0.1:$((ES_CLUSTER_HTTP_BASE + $1))/_nodes/_local" >/dev/null; }
es_cluster_healthy() {
    curl -sf -m 3 "http://127.0.0.1:$((ES_CLUSTER_HTTP_BASE + 1))/_cluster/health?wait_for_nodes=$ES_CLUSTER_NODES&wait_for_status=yellow&timeout=1s" >/dev/null
}

# One node of the cluster, in the background (all start together: each waits for the others to elect a master).
start_es_node() {
    local node=$1 java_home=$2 dir=$ES_CLUSTER_STATE/node-$1 seeds="" i
    for i in $(seq 1 "$ES_CLUSTER_NODES"); do seeds+="${seeds:+,}127.0.0.1:$((ES_CLUSTER_TRANSPORT_BASE + i))"; done
    local masters; masters=$(seq -s, -f 'node-%g' 1 "$ES_CLUSTER_NODES")
    mkdir -p "$dir"/{data,logs}
    rm -rf "$dir/config" && cp -r "$ES_HOME/config" "$dir/config"
    local -a run_as=()
    if [[ $(id -u) == 0 ]]; then
        chown -R "$ES_USER:" "$ES_CLUSTER_STATE"
        run_as=(setpriv --reuid="$ES_USER" --regid="$ES_USER" --clear-groups)
    fi
    log "starting Elasticsearch node-$node on 127.0.0.1:$((ES_CLUSTER_HTTP_BASE + node)) (state in $dir)"
    setsid --wait "${run_as[@]}" env ES_JAVA_HOME="$java_home" ES_PATH_CONF="$dir/config" \
        ES_JAVA_OPTS="-Xms$ES_CLUSTER_HEAP -Xmx$ES_CLUSTER_HEAP" \
        "$ES_HOME/bin/elasticsearch" -d -p "$dir/logs/es.pid" \
        -Ecluster.name=latechunk-cluster -Enode.name="node-$node" \
        -Ediscovery.seed_hosts="$seeds" -Ecluster.initial_master_nodes="$masters" \
        -Expack.security.enabled=false -Expack.ml.enabled=false \
        -Enetwork.host=127.0.0.1 -Ehttp.port="$((ES_CLUSTER_HTTP_BASE + node))" \
        -Etransport.port="$((ES_CLUSTER_TRANSPORT_BASE + node))" \
        -Epath.data="$dir/data" -Epath.logs="$dir/logs" \
        -Ecluster.routing.allocation.disk.threshold_enabled=false \
        -Eaction.destructive_requires_name=false >"$dir/logs/stdout.log" 2>&1 \
        || { tail -n 30 "$dir/logs/stdout.log" >&2; die "Elasticsearch node-$node failed to start (log: $dir/logs)"; }
}

start_es_cluster() {
    if es_cluster_healthy; then log "Elasticsearch cluster already running on 127.0.0.1:$((ES_CLUSTER_HTTP_BASE + 1))-$((ES_CLUSTER_HTTP_BASE + ES_CLUSTER_NODES))"; return; fi
    local java_home; java_home=$(find_java_home)
    mkdir -p "$ES_HOME_ROOT"
    install_es
    if [[ $(id -u) == 0 ]]; then
        id "$ES_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
        chmod -R a+rX "$ES_HOME"
    fi
    local node pids=()
    for node in $(seq 1 "$ES_CLUSTER_NODES"); do
        es_node_up "$node" && continue
        port_open "$((ES_CLUSTER_HTTP_BASE + node))" && die "port $((ES_CLUSTER_HTTP_BASE + node)) is taken by something that is not a node of the cluster; set LATECHUNK_ES_CLUSTER_HTTP_BASE"
        start_es_node "$node" "$java_home" & pids+=($!)
    done
    for node in "${pids[@]}"; do wait "$node"; done
    for _ in $(seq 1 180); do es_cluster_healthy && break; sleep 1; done
    es_cluster_healthy || die "the Elasticsearch cluster did not form within 180 s (logs: $ES_CLUSTER_STATE/node-*/logs)"
    mkdir -p "$VAR" && ln -sfn "$ES_CLUSTER_STATE" "$VAR/es-cluster"
    log "Elasticsearch cluster is up: http://127.0.0.1:$((ES_CLUSTER_HTTP_BASE + 1)) (and the next $((ES_CLUSTER_NODES - 1)) ports)"
}

stop_es_cluster() {
    local node
    for node in $(seq 1 "$ES_CLUSTER_NODES"); do
        stop_pidfile "Elasticsearch node-$node" "$ES_CLUSTER_STATE/node-$node/logs/es.pid"
    done
}

install_minio() {
    [[ -x $MINIO_BIN ]] && return
    command -v go >/dev/null || die "Go is required to build MinIO from the Go module proxy"
    log "building MinIO $MINIO_VERSION from the Go module proxy (first run only, a few minutes)"
    GOBIN=$(dirname "$MINIO_BIN") GOFLAGS=-mod=mod go install "$MINIO_MODULE@$MINIO_VERSION" >&2 \
        || die "building MinIO failed"
}

start_s3() {
    if s3_healthy; then log "MinIO already running on 127.0.0.1:$S3_PORT"; else
        port_open "$S3_PORT" && die "port $S3_PORT is taken by something that is not MinIO; stop it or set LATECHUNK_S3_PORT"
        install_minio
        mkdir -p "$VAR/minio/data"
        log "starting MinIO on 127.0.0.1:$S3_PORT"
        # No queue_dir: while Kafka is down, notifications are dropped (the daily run reconciles) and writes go on.
        MINIO_ROOT_USER=$S3_USER MINIO_ROOT_PASSWORD=$S3_PASSWORD MINIO_BROWSER=off \
            env "MINIO_NOTIFY_KAFKA_ENABLE_$MINIO_KAFKA_TARGET=on" \
            "MINIO_NOTIFY_KAFKA_BROKERS_$MINIO_KAFKA_TARGET=127.0.0.1:$KAFKA_PORT" \
            "MINIO_NOTIFY_KAFKA_TOPIC_$MINIO_KAFKA_TARGET=$KAFKA_TOPIC" \
            setsid "$MINIO_BIN" server "$VAR/minio/data" --quiet \
            --address "127.0.0.1:$S3_PORT" --console-address "127.0.0.1:$S3_CONSOLE_PORT" \
            >"$VAR/minio/minio.log" 2>&1 </dev/null &
        echo $! >"$VAR/minio/minio.pid"
        for _ in $(seq 1 60); do s3_healthy && break; sleep 0.5; done
        s3_healthy || die "MinIO did not become healthy (log: $VAR/minio/minio.log)"
    fi
    write_env
    "$PWD/.venv/bin/python" - "$S3_BUCKETS" <<'PY' || die "could not create the buckets (is .venv set up? run scripts/setup-env.sh)"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])
existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
for bucket in sys.argv[1].split():
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
PY
    configure_notifications
    log "MinIO is up: http://127.0.0.1:$S3_PORT (buckets: $S3_BUCKETS; $EVENTS_BUCKET/$EVENTS_PREFIX notifies Kafka)"
}

stop_s3() { stop_pidfile MinIO "$VAR/minio/minio.pid"; }

# The document bucket notifies Kafka of every object created or removed under the ingest prefix. A MinIO started
# without the Kafka target (by an older checkout) refuses the ARN: it must be restarted by this script.
configure_notifications() {
    "$PWD/.venv/bin/python" - "$EVENTS_BUCKET" "$EVENTS_PREFIX" "arn:minio:sqs::$MINIO_KAFKA_TARGET:kafka" <<'PY' \
        || die "could not configure $EVENTS_BUCKET's notifications; a MinIO started without the Kafka target needs 'scripts/servers.sh stop s3' then 'start'"
import os, sys, boto3
bucket, prefix, arn = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])
rules = [{"Name": "prefix", "Value": prefix}] if prefix else []
s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
    "Id": "latechunk-events", "QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
    "Filter": {"Key": {"FilterRules": rules}}}]})
PY
}

write_env() {
    mkdir -p "$VAR"
    cat >"$VAR/servers.env" <<EOF
export ES_URL=http://127.0.0.1:$ES_PORT
export S3_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=$S3_USER
export AWS_SECRET_ACCESS_KEY=$S3_PASSWORD
export AWS_DEFAULT_REGION=us-east-1
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export KAFKA_TOPIC=$KAFKA_TOPIC
EOF
    # shellcheck disable=SC1091
    source "$VAR/servers.env"
}

status() {
    if es_healthy; then echo "elasticsearch: up  http://127.0.0.1:$ES_PORT"; else echo "elasticsearch: down"; fi
    if s3_healthy; then echo "s3 (minio):    up  http://127.0.0.1:$S3_PORT"; else echo "s3 (minio):    down"; fi
    if kafka_healthy; then echo "kafka:         up  127.0.0.1:$KAFKA_PORT"; else echo "kafka:         down"; fi
}

status_es_cluster() {
    local node
    for node in $(seq 1 "$ES_CLUSTER_NODES"); do
        if es_node_up "$node"; then echo "es node-$node:    up  http://127.0.0.1:$((ES_CLUSTER_HTTP_BASE + node))"
        else echo "es node-$node:    down"; fi
    done
}

cmd=${1:-}
which=${2:-all}
case "$cmd:$which" in
    start:all) start_es; start_kafka; start_s3 ;;
    start:es) start_es ;;
    start:s3) start_kafka; start_s3 ;;
    start:kafka) start_kafka ;;
    start:es-cluster) start_es_cluster ;;
    stop:es-cluster) stop_es_cluster ;;
    status:es-cluster) status_es_cluster ;;
    stop:all) stop_es; stop_s3; stop_kafka ;;
    stop:es) stop_es ;;
    stop:s3) stop_s3 ;;
    stop:kafka) stop_kafka ;;
    status:*) status ;;
    env:*) write_env; cat "$VAR/servers.env" ;;
    *) die "usage: scripts/servers.sh start|stop|status|env [es|s3|kafka|es-cluster]" ;;
esac
