# Apache Kafka in KRaft combined mode (one process is broker and controller) on loopback, with no Docker: the
# broker's jars and their runtime dependencies resolved from Maven Central into the cache, started with the
# machine's JDK. Sourced by scripts/servers.sh (which provides log, die, port_open, stop_pidfile and $VAR).
# MinIO publishes the document bucket's notifications to KAFKA_TOPIC; the event DAG's asset watcher consumes them.

KAFKA_VERSION=4.1.1
KAFKA_PORT=${LATECHUNK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${LATECHUNK_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${LATECHUNK_KAFKA_HEAP:-512m}
KAFKA_TOPIC=${LATECHUNK_KAFKA_TOPIC:-latechunk-s3-events}
KAFKA_LIBS=$LATECHUNK_CACHE/kafka-$KAFKA_VERSION/libs
KAFKA_STATE=$LATECHUNK_CACHE/kafka-state-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)

kafka_healthy() {
    port_open "$KAFKA_PORT" && "$PWD/.venv/bin/python" - "127.0.0.1:$KAFKA_PORT" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=3)
PY
}

install_kafka() {
    [[ -f $KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar ]] && return
    command -v mvn >/dev/null || die "Maven (mvn) is required to fetch Kafka from Maven Central"
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies from Maven Central"
    local tmp; tmp=$(mktemp -d "${TMPDIR:-/tmp}/kafka-pom.XXXXXX")
    # log4j-slf4j-impl routes the broker's slf4j logging to log4j2 (a log file instead of nothing).
    cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>latechunk</groupId><artifactId>kafka-broker</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
EOF
    mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KAFKA_LIBS.partial" >&2 || die "could not resolve Kafka $KAFKA_VERSION from Maven Central"
    rm -rf "$tmp" "$KAFKA_LIBS" && mv "$KAFKA_LIBS.partial" "$KAFKA_LIBS"
}

# Run a class of the broker's jars: `kafka_java [exec-setsid] CLASS ARGS...`; with exec-setsid the JVM replaces
# the (background) shell in a session of its own, so that $! is its pid and it outlives the caller.
kafka_java() {
    local java_home; java_home=$(find_java_home)
    local -a launch=()
    [[ $1 == exec-setsid ]] && { launch=(exec setsid); shift; }
    "${launch[@]}" "$java_home/bin/java" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -cp "$KAFKA_LIBS/*" \
        -Dlog4j2.configurationFile="$KAFKA_STATE/log4j2.properties" -Dkafka.logs.dir="$KAFKA_STATE/logs" "$@"
}

write_kafka_config() {
    mkdir -p "$KAFKA_STATE/logs"
    # One node, one partition per topic (events keep their order), no replication; a consumer group rebalances at
    # once instead of after the default 3 s, so that the asset watcher, which reconnects after every message, is
    # not held up.
    cat >"$KAFKA_STATE/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_STATE/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
EOF
    cat >"$KAFKA_STATE/log4j2.properties" <<EOF
appender.file.type=File
appender.file.name=file
appender.file.fileName=$KAFKA_STATE/logs/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
EOF
}

start_kafka() {
    if kafka_healthy; then log "Kafka already running on 127.0.0.1:$KAFKA_PORT"; create_kafka_topic; return; fi
    port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by something that is not Kafka; stop it or set LATECHUNK_KAFKA_PORT"
    port_open "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is taken; set LATECHUNK_KAFKA_CONTROLLER_PORT"
    install_kafka
    write_kafka_config
    if [[ ! -f $KAFKA_STATE/data/meta.properties ]]; then
        log "formatting Kafka's storage in $KAFKA_STATE/data"
        kafka_java kafka.tools.StorageTool format --ignore-formatted \
            --cluster-id "$(kafka_java kafka.tools.StorageTool random-uuid)" \
            --config "$KAFKA_STATE/server.properties" >"$KAFKA_STATE/logs/format.log" 2>&1 \
            || { cat "$KAFKA_STATE/logs/format.log" >&2; die "formatting Kafka's storage failed"; }
    fi
    log "starting Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$KAFKA_PORT (state in $KAFKA_STATE)"
    kafka_java exec-setsid kafka.Kafka "$KAFKA_STATE/server.properties" >"$KAFKA_STATE/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$KAFKA_STATE/kafka.pid"
    for _ in $(seq 1 60); do kafka_healthy && break; sleep 1; done
    kafka_healthy || { tail -n 30 "$KAFKA_STATE/logs/server.log" >&2; die "Kafka did not start within 60 s (log: $KAFKA_STATE/logs)"; }
    mkdir -p "$VAR" && ln -sfn "$KAFKA_STATE" "$VAR/kafka"
    create_kafka_topic
    log "Kafka is up: 127.0.0.1:$KAFKA_PORT (topic $KAFKA_TOPIC)"
}

# The notification topic exists before MinIO or a consumer first uses it (one partition: events keep their order).
create_kafka_topic() {
    "$PWD/.venv/bin/python" - "127.0.0.1:$KAFKA_PORT" "$KAFKA_TOPIC" <<'PY' || die "could not create the Kafka topic"
import sys
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
if sys.argv[2] not in admin.list_topics(timeout=10).topics:
    try:
        admin.create_topics([NewTopic(sys.argv[2], num_partitions=1, replication_factor=1)])[sys.argv[2]].result(30)
    except KafkaException as error:
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            raise
PY
}

stop_kafka() { stop_pidfile Kafka "$KAFKA_STATE/kafka.pid"; }
