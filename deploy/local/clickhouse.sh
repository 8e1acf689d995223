#!/usr/bin/env bash
# Install (when missing) and run our own ClickHouse server: Debian's clickhouse-server package,
# our own config.xml/users.xml and data folder, never the system service. See README.md here.
#
#   clickhouse.sh install        apt-get install clickhouse-server clickhouse-client if missing
#   clickhouse.sh start          install if needed, write the config, start, wait for SELECT 1
#   clickhouse.sh stop           SIGTERM, wait up to WXPAYD_STOP_TIMEOUT s, then SIGKILL
#   clickhouse.sh status         "running ..." (exit 0) or "not running" (exit 1)
#   clickhouse.sh logs [-f]      last 100 lines of the server log (or follow it)
#   clickhouse.sh client [ARGS]  clickhouse-client connected to our server
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_PREFIX=clickhouse

check_port_var CLICKHOUSE_PORT "$CLICKHOUSE_PORT"
check_port_var CLICKHOUSE_HTTP_PORT "$CLICKHOUSE_HTTP_PORT"

CONFIG="$CLICKHOUSE_DIR/config.xml"
USERS="$CLICKHOUSE_DIR/users.xml"
DATA="$CLICKHOUSE_DIR/data"
LOGS="$CLICKHOUSE_DIR/logs"
PIDFILE="$CLICKHOUSE_DIR/clickhouse.pid"
SERVER_LOG="$LOGS/clickhouse-server.log"
ERROR_LOG="$LOGS/clickhouse-server.err.log"
CONSOLE_LOG="$LOGS/console.log"
MARKER="--config-file=$CONFIG"
SERVER_BIN=/usr/sbin/clickhouse-server
CLIENT_BIN=/usr/bin/clickhouse-client

installed() { [[ -x $SERVER_BIN && -x $CLIENT_BIN ]]; }

do_install() {
  installed && return 0
  # The package's postinst starts the system service through invoke-rc.d. We never use that
  # service; where no policy-rc.d already forbids service starts (containers ship one), put a
  # temporary one in place so the install neither starts it nor fails when it cannot.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
    added_policy=1
  fi
  local rc=0
  (apt_install clickhouse-server clickhouse-client) || rc=$?
  if ((added_policy)); then
    as_root rm -f "$policy"
  fi
  ((rc == 0)) || die "could not install clickhouse-server/clickhouse-client with apt-get"
  installed || die "apt-get succeeded but $SERVER_BIN or $CLIENT_BIN is missing"
  log "installed $(dpkg-query -W -f='clickhouse-server ${Version}' clickhouse-server)"
}

install() {
  mkdir -p "$CLICKHOUSE_DIR"
  with_lock "$CLICKHOUSE_DIR" do_install
}

write_config() {
  mkdir -p "$DATA" "$DATA/tmp" "$DATA/user_files" "$DATA/format_schemas" "$LOGS"
  # Rewritten on every start so that changed ports take effect.
  cat >"$CONFIG" <<EOF
<?xml version="1.0"?>
<!-- Written by deploy/local/clickhouse.sh on every start: edit the script, not this file. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$SERVER_LOG</log>
        <errorlog>$ERROR_LOG</errorlog>
        <size>50M</size>
        <count>3</count>
    </logger>

    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$CLICKHOUSE_PORT</tcp_port>
    <http_port>$CLICKHOUSE_HTTP_PORT</http_port>
    <!-- no interserver_http_port: no replication here, so no third port is opened -->

    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>

    <path>$DATA/</path>
    <tmp_path>$DATA/tmp/</tmp_path>
    <user_files_path>$DATA/user_files/</user_files_path>
    <format_schema_path>$DATA/format_schemas/</format_schema_path>
    <users_config>$USERS</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>

    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>

    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>

    <!-- a development server: allow dropping tables and partitions of any size -->
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
  cat >"$USERS" <<'EOF'
<?xml version="1.0"?>
<!-- Written by deploy/local/clickhouse.sh on every start: edit the script, not this file. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>

    <users>
        <!-- user "default", no password, from this machine only -->
        <default>
            <password></password>
            <networks replace="replace">
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>

    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

client() {
  "$CLIENT_BIN" --host 127.0.0.1 --port "$CLICKHOUSE_PORT" "$@"
}

# The client itself is the probe (a bare TCP connect makes the server log a warning).
ready() {
  [[ "$(timeout 10 "$CLIENT_BIN" --host 127.0.0.1 --port "$CLICKHOUSE_PORT" --query 'SELECT 1' 2>>"$LOGS/readiness.log")" == 1 ]]
}

port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1
}

do_start() {
  local pid start elapsed
  mkdir -p "$LOGS"
  if pid="$(pid_alive "$PIDFILE" "$MARKER")"; then
    if ! grep -qF "<tcp_port>$CLICKHOUSE_PORT</tcp_port>" "$CONFIG" \
      || ! grep -qF "<http_port>$CLICKHOUSE_HTTP_PORT</http_port>" "$CONFIG"; then
      die "already running (pid $pid) with other ports (see $CONFIG); run '$0 stop' first"
    fi
    if ready; then
      log "already running (pid $pid) on 127.0.0.1:$CLICKHOUSE_PORT"
      return 0
    fi
    log "running (pid $pid) but not answering yet; waiting"
  else
    rm -f "$PIDFILE"
    local p
    for p in "$CLICKHOUSE_PORT" "$CLICKHOUSE_HTTP_PORT"; do
      if port_open "$p"; then
        die "127.0.0.1:$p is already in use by another process ($(port_owner "$p")); set CLICKHOUSE_PORT / CLICKHOUSE_HTTP_PORT"
      fi
    done
    write_config
    log "starting clickhouse-server $(dpkg-query -W -f='${Version}' clickhouse-server 2>/dev/null || true) on 127.0.0.1:$CLICKHOUSE_PORT (http $CLICKHOUSE_HTTP_PORT), data in $DATA"
    : >"$LOGS/readiness.log"
    mark_logs "$SERVER_LOG" "$ERROR_LOG" "$CONSOLE_LOG"
    # setsid: the server outlives the caller's process group (CI steps, terminals).
    # The inner bash writes its own pid, moves to our folder and execs the server, so the
    # pid file names the server. 9>&-: the server must not inherit the start/stop lock.
    # shellcheck disable=SC2016 # $$ is the inner shell's pid
    nohup setsid bash -c 'echo $$ >"$0"; cd "${0%/*}" && exec "$@"' "$PIDFILE" \
      "$SERVER_BIN" "$MARKER" >>"$CONSOLE_LOG" 2>&1 </dev/null 9>&- &
    for _ in $(seq 1 50); do
      [[ -s $PIDFILE ]] && break
      sleep 0.1
    done
  fi
  start=$SECONDS
  while true; do
    elapsed=$((SECONDS - start))
    if ! pid="$(pid_alive "$PIDFILE" "$MARKER")"; then
      show_log_tail "$ERROR_LOG" "$SERVER_LOG" "$CONSOLE_LOG"
      die "clickhouse-server exited during start-up (logs above; all logs in $LOGS)"
    fi
    if ready; then
      log "ready on 127.0.0.1:$CLICKHOUSE_PORT (pid $pid) after ${elapsed}s"
      return 0
    fi
    if ((elapsed >= WXPAYD_START_TIMEOUT)); then
      show_log_tail "$ERROR_LOG" "$SERVER_LOG" "$CONSOLE_LOG" "$LOGS/readiness.log"
      die "clickhouse-server (pid $pid) did not answer 'SELECT 1' on 127.0.0.1:$CLICKHOUSE_PORT within ${WXPAYD_START_TIMEOUT}s; it is left running, stop it with: $0 stop"
    fi
    sleep 0.5
  done
}

start() {
  install
  with_lock "$CLICKHOUSE_DIR" do_start
}

stop() {
  with_lock "$CLICKHOUSE_DIR" stop_pid "$PIDFILE" "$MARKER" ClickHouse
}

status() {
  local pid
  if pid="$(pid_alive "$PIDFILE" "$MARKER")"; then
    if ready; then
      echo "clickhouse: running (pid $pid) on 127.0.0.1:$CLICKHOUSE_PORT (http $CLICKHOUSE_HTTP_PORT), data in $DATA"
      return 0
    fi
    echo "clickhouse: process running (pid $pid) but not answering on 127.0.0.1:$CLICKHOUSE_PORT"
    return 1
  fi
  echo "clickhouse: not running"
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
  client) installed || die "clickhouse-client is not installed; run: $0 install"; client "$@" ;;
  *) usage ;;
esac
