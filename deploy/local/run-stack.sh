#!/usr/bin/env bash
# Runs the whole stack in the foreground: wxpaysim (playing WeChat Pay) in
# the background and wxpayd against the real Kafka and ClickHouse that
# services.sh started. Creates a development identity and secrets on first
# use under .run/. Ctrl-C (or SIGTERM) stops wxpayd cleanly, then wxpaysim.
# Usually called by `make run`, which builds bin/ and starts the services.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
run="$root/.run"
bin="$root/bin"
sim_addr=${WXPAYSIM_LISTEN:-127.0.0.1:9090}
listen=${WXPAYD_LISTEN:-127.0.0.1:8080}
mkdir -p "$run/logs" "$run/secrets"
chmod 700 "$run/secrets"

for b in wxpayd wxpaysim; do
  [ -x "$bin/$b" ] || { echo "run-stack: $bin/$b missing: run 'make build' first" >&2; exit 1; }
done

if [ ! -f "$run/keys/wxpay.env" ]; then
  echo "run-stack: creating a development identity in $run/keys"
  "$bin/wxpaysim" keygen --dir "$run/keys" --sim-addr "$sim_addr" --notify-url "http://$listen/wxpay/v3/notify" >/dev/null
fi
for s in admin_token session_secret shop_token; do
  if [ ! -s "$run/secrets/$s" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n=+/' > "$run/secrets/$s")
  fi
done

eval "$(bash deploy/local/services.sh env)"
bash deploy/local/services.sh status >/dev/null || { echo "run-stack: Kafka/ClickHouse not running: run 'make services-up'" >&2; exit 1; }

"$bin/wxpaysim" serve --keys-dir "$run/keys" --listen "$sim_addr" --notify-speedup "${WXPAYSIM_NOTIFY_SPEEDUP:-1}" \
  >>"$run/logs/wxpaysim.log" 2>&1 &
sim_pid=$!
cleanup() { kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fsS "http://$sim_addr/sim/v1/stats" >/dev/null 2>&1 && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "run-stack: wxpaysim exited; see $run/logs/wxpaysim.log" >&2; tail -20 "$run/logs/wxpaysim.log" >&2; exit 1; }
  sleep 0.1
done

set -a
# shellcheck disable=SC1091
. "$run/keys/wxpay.env"
set +a
export WXPAYD_LISTEN="$listen" WXPAYD_DATA_DIR="$run/data" \
  WXPAYD_ADMIN_TOKEN_FILE="$run/secrets/admin_token" WXPAYD_SESSION_SECRET_FILE="$run/secrets/session_secret" \
  WXPAYD_SHOP_TOKEN_FILE="$run/secrets/shop_token" \
  WXPAYD_KAFKA_BROKERS="$KAFKA_ADDR" WXPAYD_CLICKHOUSE_ADDR="$CLICKHOUSE_ADDR"
# The Mini Program simulator page is served by wxpaysim, another origin than wxpayd's:
# wxpayd must allow it to call /api/v1/ (ingress/cors.go).
export WXPAYD_CORS_ORIGINS="${WXPAYD_CORS_ORIGINS:-http://$sim_addr}"
page="http://$sim_addr/sim/miniprogram/?api=http://$listen&sku=tea"

cat <<MSG
run-stack: wxpaysim on http://$sim_addr (log $run/logs/wxpaysim.log)
run-stack: wxpayd on http://$listen, Kafka $KAFKA_ADDR, ClickHouse $CLICKHOUSE_ADDR
run-stack: admin token in $run/secrets/admin_token, the shop's token in $run/secrets/shop_token; try:
  curl -X PUT -H "Authorization: Bearer \$(cat $run/secrets/admin_token)" http://$listen/admin/v1/skus/tea \\
       -d '{"description":"tea","price":888,"stock":100,"per_buyer_limit":2}'
  curl -X POST http://$listen/api/v1/login -d '{"code":"code-alice"}'
run-stack: the Mini Program simulator (log in, buy, pay as a buyer) once wxpayd is ready:
  $page
MSG
"$bin/wxpayd" &
wxpayd_pid=$!
# Once wxpayd is ready: a demo SKU for the page (only when there is none), then the page's URL.
(
  ready=0
  for _ in $(seq 300); do
    curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && { ready=1; break; }
    sleep 0.1
  done
  [ "$ready" = 1 ] || exit 0
  auth="Authorization: Bearer $(cat "$run/secrets/admin_token")"
  if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "http://$listen/admin/v1/skus/tea")" = 404 ]; then
    curl -fsS -o /dev/null -X PUT -H "$auth" "http://$listen/admin/v1/skus/tea" \
      -d '{"description":"tea","price":888,"stock":100,"per_buyer_limit":2}' &&
      echo "run-stack: created the demo SKU tea (100 at ¥8.88, 2 per buyer)"
  fi
  echo "run-stack: buy as a Mini Program buyer in your browser: $page"
) &
trap 'kill -TERM "$wxpayd_pid" 2>/dev/null || true' INT TERM
set +e
wait "$wxpayd_pid"
status=$?
# wait returns early when a trapped signal arrives: wait for the exit itself.
while kill -0 "$wxpayd_pid" 2>/dev/null; do wait "$wxpayd_pid"; status=$?; done
exit "$status"
