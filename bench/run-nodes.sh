#!/usr/bin/env bash
# Usage: bash bench/run-nodes.sh N   (N = 1, 2 or 3)
# Runs one wxpaybench flash sale (20,000 buyers, 1,000 units, burst) through N
# wxpayd nodes on loopback: cluster mode for N > 1, real Kafka (one topic for
# all nodes) and ClickHouse (the sink in node 01), wxpaysim as WeChat Pay. Needs
# `make build` and `make services-up`. Work files go to /tmp/nodes-N. It prints
# the summary and the SKU as each node sees it, then stops everything.
set -euo pipefail
N=$1
cd /work/main
eval "$(bash deploy/local/services.sh env)"
W=/tmp/nodes-$N; rm -rf $W; mkdir -p $W
SIM=127.0.0.1:$((19600+N))
./bin/wxpaysim keygen --dir $W/keys --sim-addr $SIM --notify-url http://127.0.0.1:19701/wxpay/v3/notify >/dev/null
./bin/wxpaysim serve --keys-dir $W/keys --listen $SIM --notify-speedup 60 --log-level warn > $W/sim.log 2>&1 &
PIDS=($!)
head -c 24 /dev/urandom | base64 > $W/admin; head -c 48 /dev/urandom | base64 > $W/session
RUN=$(date +%s%N)
shards=(01 02 03); targets=(); members=()
for i in $(seq 0 $((N-1))); do members+=(127.0.0.1:$((19800+i))); done
for i in $(seq 0 $((N-1))); do
  s=${shards[$i]}
  env_extra=()
  if [ "$N" -gt 1 ]; then
    env_extra=(WXPAYD_CLUSTER_SHARDS=$(IFS=,; echo "${shards[*]:0:$N}") WXPAYD_CLUSTER_MEMBERS=$(IFS=,; echo "${members[*]}")
               WXPAYD_CLUSTER_LISTEN=127.0.0.1:$((19900+i)) WXPAYD_CLUSTER_HEALTH_PORT=$((19800+i)))
  fi
  ch=(); [ $i -eq 0 ] && ch=(WXPAYD_CLICKHOUSE_ADDR=$CLICKHOUSE_ADDR)
  ( set -a; . $W/keys/wxpay.env; set +a
    exec env WXPAYD_SHARD=$s WXPAYD_LISTEN=127.0.0.1:$((19701+i)) WXPAYD_DATA_DIR=$W/data$s WXPAYD_ADMIN_TOKEN_FILE=$W/admin \
      WXPAYD_SESSION_SECRET_FILE=$W/session WXPAYD_KAFKA_BROKERS=$KAFKA_ADDR WXPAYD_KAFKA_TOPIC=wxpayd.nodes.$RUN \
      WXPAYD_LOG_LEVEL=warn "${env_extra[@]}" "${ch[@]}" ./bin/wxpayd > $W/wxpayd$s.log 2>&1 ) &
  PIDS+=($!)
  targets+=(http://127.0.0.1:$((19701+i)))
done
trap 'kill -TERM "${PIDS[@]}" 2>/dev/null; sleep 2; kill -9 "${PIDS[@]}" 2>/dev/null || true' EXIT
# /readyz turns 200 once every shard has joined (WXPAYD_CLUSTER_FORM_TIMEOUT, 30 s, at most).
for t in "${targets[@]}"; do for k in $(seq 400); do curl -fsS $t/readyz >/dev/null 2>&1 && break; sleep 0.1; done; done
./bin/wxpaybench --target "$(IFS=,; echo "${targets[*]}")" --sim http://$SIM --admin-token-file $W/admin \
  --clickhouse $CLICKHOUSE_ADDR --out $W/out --scenario flash-sale --buyers 20000 --stock 1000 --pay-share 0.8 \
  --arrival burst --retries 10 --connections 512 --max-time 3m --quiet > $W/bench.log 2>&1 || echo "bench exit $?"
grep -E "prepay \||paid \||checkout|Audit|window|^- FAIL" $W/bench.log | head -14
SKU=$(grep -oE "wb[0-9a-f]+-flash" $W/bench.log | head -1)
for w in 0 5 20; do sleep $w; for t in "${targets[@]}"; do echo "after +${w}s via $t: $(curl -s -H "Authorization: Bearer $(cat $W/admin)" $t/admin/v1/skus/$SKU)"; done; done
