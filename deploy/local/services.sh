#!/usr/bin/env bash
# Drive the local Kafka broker and ClickHouse server together. See README.md here.
#
#   services.sh up       install what is missing, start both (in parallel), wait until both answer
#   services.sh down     stop both
#   services.sh status   one line each; exit 0 only when both run
#   services.sh env      export lines for eval: eval "$(bash deploy/local/services.sh env)"
#   services.sh reset    stop both and delete their data (the installed software stays)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_PREFIX=services

KAFKA_SH="$LOCAL_DIR/kafka.sh"
CLICKHOUSE_SH="$LOCAL_DIR/clickhouse.sh"

# both CMD: run "kafka.sh CMD" and "clickhouse.sh CMD" in parallel; fail if either fails.
both() {
  local kpid cpid rc=0
  bash "$KAFKA_SH" "$1" &
  kpid=$!
  bash "$CLICKHOUSE_SH" "$1" &
  cpid=$!
  wait "$kpid" || rc=1
  wait "$cpid" || rc=1
  return "$rc"
}

up() {
  local t0=$SECONDS
  if ! both start; then
    die "could not start the services (messages above); 'bash $0 status' shows what runs"
  fi
  log "Kafka on 127.0.0.1:$KAFKA_PORT and ClickHouse on 127.0.0.1:$CLICKHOUSE_PORT are up ($((SECONDS - t0))s)"
}

down() {
  both stop
}

status() {
  local rc=0
  bash "$KAFKA_SH" status || rc=1
  bash "$CLICKHOUSE_SH" status || rc=1
  return "$rc"
}

env_lines() {
  printf 'export KAFKA_ADDR=127.0.0.1:%s\n' "$KAFKA_PORT"
  printf 'export CLICKHOUSE_ADDR=127.0.0.1:%s\n' "$CLICKHOUSE_PORT"
  printf 'export CLICKHOUSE_HTTP_ADDR=127.0.0.1:%s\n' "$CLICKHOUSE_HTTP_PORT"
}

reset() {
  down
  log "deleting data in $KAFKA_DIR and $CLICKHOUSE_DIR"
  rm -rf "$KAFKA_DIR" "$CLICKHOUSE_DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_lines ;;
  reset) reset ;;
  *) usage ;;
esac
