#!/usr/bin/env bash
# Install (when missing) and run a one-node Apache Kafka 4.x broker in KRaft combined mode,
# from the official jars on Maven Central and the machine's JDK 17. See README.md here.
#
#   kafka.sh install                 fetch the broker's jars (Maven) and a JDK/Maven if missing
#   kafka.sh start                   install if needed, format storage once, start, wait until ready
#   kafka.sh stop                    SIGTERM, wait up to WXPAYD_STOP_TIMEOUT s, then SIGKILL
#   kafka.sh status                  "running ..." (exit 0) or "not running" (exit 1)
#   kafka.sh logs [-f]               last 100 lines of the broker log (or follow it)
#   kafka.sh tool CLASS [ARGS...]    run a Kafka tool class with the broker's classpath, e.g.
#                                    kafka.sh tool org.apache.kafka.tools.TopicCommand --list \
#                                      --bootstrap-server 127.0.0.1:19092
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_PREFIX=kafka

check_port_var KAFKA_PORT "$KAFKA_PORT"
check_port_var KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
[[ -n $KAFKA_VERSION ]] || die "could not read kafka.version from $KAFKA_POM"

PROPS="$KAFKA_DIR/server.properties"
LOG4J="$KAFKA_DIR/log4j2.xml"
TOOLS_LOG4J="$KAFKA_DIR/tools-log4j2.xml"
CLIENT_PROPS="$KAFKA_DIR/client.properties"
DATA="$KAFKA_DIR/data"
LOGS="$KAFKA_DIR/logs"
PIDFILE="$KAFKA_DIR/kafka.pid"
SERVER_LOG="$LOGS/server.log"
CONSOLE_LOG="$LOGS/console.log"
# Part of the broker's command line: tells our broker from any other java process.
MARKER="kafka.Kafka $PROPS"

java_major() {
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  printf '%s\n' "${v%%.*}"
}

ensure_jdk_and_maven() {
  local pkgs=()
  if ! command -v java >/dev/null 2>&1 || (($(java_major) < 17)); then
    pkgs+=(openjdk-17-jre-headless)
  fi
  command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  if ((${#pkgs[@]})); then
    apt_install "${pkgs[@]}"
  fi
  (($(java_major) >= 17)) || die "Kafka $KAFKA_VERSION needs Java 17+, 'java' is $(java_major)"
}

libs_stamp() { sha256sum "$KAFKA_POM" | cut -d' ' -f1; }

libs_ready() {
  [[ -f $KAFKA_LIBS_DIR/.complete && "$(<"$KAFKA_LIBS_DIR/.complete")" == "$(libs_stamp)" ]]
}

do_install() {
  ensure_jdk_and_maven
  if libs_ready; then
    return 0
  fi
  local tmp
  tmp="$(dirname "$KAFKA_LIBS_DIR")/libs.tmp.$$"
  rm -rf "$tmp"
  log "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS_DIR"
  # Maven 3.8 prints bare colour-reset codes even in batch mode: strip them (and empty lines).
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 \
    | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; then
    rm -rf "$tmp"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see the Maven output above)"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar "$tmp"/kafka-tools-"$KAFKA_VERSION".jar >/dev/null \
    || die "Maven did not copy the Kafka jars into $tmp"
  libs_stamp >"$tmp/.complete"
  rm -rf "$KAFKA_LIBS_DIR"
  mv "$tmp" "$KAFKA_LIBS_DIR"
  log "installed $(find "$KAFKA_LIBS_DIR" -name '*.jar' | wc -l) jars"
}

install() {
  mkdir -p "$(dirname "$KAFKA_LIBS_DIR")"
  with_lock "$(dirname "$KAFKA_LIBS_DIR")" do_install
}

# kjava LOG4J_CONFIG ARGS...: java with the broker's classpath.
kjava() {
  local log4j=$1
  shift
  java -Djava.awt.headless=true -Dlog4j2.configurationFile="$log4j" -cp "$KAFKA_LIBS_DIR/*" "$@"
}

tool() {
  libs_ready || install
  mkdir -p "$KAFKA_DIR"
  write_tools_config
  kjava "$TOOLS_LOG4J" "$@"
}

write_tools_config() {
  cat >"$TOOLS_LOG4J" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="error">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
EOF
  cat >"$CLIENT_PROPS" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
reconnect.backoff.max.ms=1000
EOF
}

write_config() {
  mkdir -p "$DATA" "$LOGS"
  # Rewritten on every start so that changed ports take effect.
  cat >"$PROPS" <<EOF
# Written by deploy/local/kafka.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
EOF
  cat >"$LOG4J" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="$SERVER_LOG" filePattern="$SERVER_LOG.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="WARN"/>
  </Loggers>
</Configuration>
EOF
  write_tools_config
}

format_storage() {
  [[ -f $DATA/meta.properties ]] && return 0
  local id
  id="$(kjava "$TOOLS_LOG4J" kafka.tools.StorageTool random-uuid)"
  log "formatting $DATA (cluster id $id)"
  mark_logs "$CONSOLE_LOG"
  kjava "$TOOLS_LOG4J" kafka.tools.StorageTool format --ignore-formatted \
    -t "$id" -c "$PROPS" >>"$CONSOLE_LOG" 2>&1 \
    || { show_log_tail "$CONSOLE_LOG"; die "kafka-storage format failed"; }
}

# A real Metadata round trip: list topics through the PLAINTEXT listener.
ready() {
  port_open "$KAFKA_PORT" || return 1
  timeout 30 java -Djava.awt.headless=true -Dlog4j2.configurationFile="$TOOLS_LOG4J" \
    -cp "$KAFKA_LIBS_DIR/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --command-config "$CLIENT_PROPS" --list \
    >/dev/null 2>>"$LOGS/readiness.log"
}

port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1
}

do_start() {
  local pid start elapsed
  mkdir -p "$LOGS"
  if pid="$(pid_alive "$PIDFILE" "$MARKER")"; then
    if ! grep -qxF "listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT" "$PROPS"; then
      die "already running (pid $pid) with other ports ($(grep '^listeners=' "$PROPS")); run '$0 stop' first"
    fi
    write_tools_config
    if ready; then
      log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    log "running (pid $pid) but not answering yet; waiting"
  else
    rm -f "$PIDFILE"
    write_config
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      if port_open "$p"; then
        die "127.0.0.1:$p is already in use by another process ($(port_owner "$p")); set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
      fi
    done
    format_storage
    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), data in $DATA"
    : >"$LOGS/readiness.log"
    mark_logs "$SERVER_LOG" "$CONSOLE_LOG"
    # setsid: the broker outlives the caller's process group (CI steps, terminals).
    # The inner bash writes its own pid, moves to our folder and execs java, so the pid file
    # names the JVM. 9>&-: the broker must not inherit the start/stop lock.
    # shellcheck disable=SC2086,SC2016 # KAFKA_HEAP_OPTS is a list of JVM flags; $$ is the inner shell's
    nohup setsid bash -c 'echo $$ >"$0"; cd "${0%/*}" && exec "$@"' "$PIDFILE" \
      java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J" -Dkafka.logs.dir="$LOGS" \
      -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$PROPS" >>"$CONSOLE_LOG" 2>&1 </dev/null 9>&- &
    for _ in $(seq 1 50); do
      [[ -s $PIDFILE ]] && break
      sleep 0.1
    done
  fi
  start=$SECONDS
  while true; do
    elapsed=$((SECONDS - start))
    if ! pid="$(pid_alive "$PIDFILE" "$MARKER")"; then
      show_log_tail "$SERVER_LOG" "$CONSOLE_LOG"
      die "the Kafka broker exited during start-up (logs above; all logs in $LOGS)"
    fi
    if ready; then
      log "ready on 127.0.0.1:$KAFKA_PORT (pid $pid) after ${elapsed}s"
      return 0
    fi
    if ((elapsed >= WXPAYD_START_TIMEOUT)); then
      show_log_tail "$SERVER_LOG" "$CONSOLE_LOG" "$LOGS/readiness.log"
      die "Kafka (pid $pid) did not answer a Metadata request on 127.0.0.1:$KAFKA_PORT within ${WXPAYD_START_TIMEOUT}s; it is left running, stop it with: $0 stop"
    fi
    sleep 1
  done
}

start() {
  install
  with_lock "$KAFKA_DIR" do_start
}

stop() {
  with_lock "$KAFKA_DIR" stop_pid "$PIDFILE" "$MARKER" Kafka
}

status() {
  local pid
  if pid="$(pid_alive "$PIDFILE" "$MARKER")"; then
    if port_open "$KAFKA_PORT"; then
      echo "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT, data in $DATA"
      return 0
    fi
    echo "kafka: process running (pid $pid) but 127.0.0.1:$KAFKA_PORT is not accepting connections"
    return 1
  fi
  echo "kafka: not running"
  return 1
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) logs "$@" ;;
  tool) [[ $# -gt 0 ]] || usage; tool "$@" ;;
  *) usage ;;
esac
