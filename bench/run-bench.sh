#!/usr/bin/env bash
# make bench: every benchmark of the project, and docs/benchmarks.md from them.
#
#   1. starts the real Kafka and ClickHouse (deploy/local/services.sh up);
#   2. builds bin/ (wxpayd, wxpaysim, wxpaybench);
#   3. runs the signing micro-benchmarks side by side with the SDKs
#      (bench/peers/run-bench.sh, unchanged);
#   4. for each load scenario starts a fresh stack on loopback ports (a new
#      keygen, a new data dir, wxpaysim with --notify-speedup and, for the
#      notify-storm, its fault flags, wxpayd on the real Kafka and ClickHouse),
#      runs wxpaybench against it (flash-sale, then notify-storm), stops it;
#   5. rewrites only its own sections of docs/benchmarks.md, between
#      <!-- bench/peers:begin --> … end and <!-- wxpaybench:begin --> … end
#      markers; any other section stays as it is.
#
# Reports (results.json, report.html, summary.md) go to bench/out/<scenario>/
# (git-ignored). Knobs, with their defaults:
#   BENCH_PEERS=1            0 skips step 3 (its section is then left as it is)
#   BENCH_LOAD=1             0 skips step 4
#   FLASH_BUYERS=20000 FLASH_STOCK=1000 FLASH_PAY_SHARE=0.8 FLASH_ARRIVAL=burst FLASH_RETRIES=10
#   FLASH_ORDER_TTL=1m       wxpayd's WXPAYD_ORDER_TTL for the flash sale; the audit waits for it (--await-ttl)
#   STORM_BUYERS=3000 STORM_RATE=300 STORM_DUP=0.5 STORM_TAMPER=0.2 STORM_STALE=0.2
#   CONNECTIONS=1024 NOTIFY_SPEEDUP=60 MAX_TIME=8m  (connections per pool: see wxpaybench --help)
#   WXPAYD_PORT=18480 WXPAYSIM_PORT=18490  first ports tried (the next free one is used)
# shellcheck disable=SC2016,SC2317 # backquotes in printf formats are Markdown; cleanup runs from trap
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$root/bin
out=${BENCH_OUT:-$root/bench/out}
doc=$root/docs/benchmarks.md
work=$(mktemp -d "${TMPDIR:-/tmp}/wxpaybench.XXXXXX")
pids=()

log() { printf 'run-bench: %s\n' "$*" >&2; }

# stop_pid PID: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	log "pid $pid did not stop within 30 s of SIGTERM: SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
	pids=()
	if [ -n "${sampler:-}" ]; then kill "$sampler" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port N: the first port from N up that nothing listens on.
free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}

# wait_http URL PID LOG: until URL answers 200, the process dies, or 60 s.
wait_http() {
	local url=$1 pid=$2 logf=$3
	for _ in $(seq 600); do
		curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { log "process $pid exited; $logf:"; tail -30 "$logf" >&2; return 1; }
		sleep 0.1
	done
	log "$url did not answer within 60 s; $logf:"
	tail -30 "$logf" >&2
	return 1
}

# start_stack NAME ORDER_TTL [wxpaysim serve flags…]: a fresh identity and
# data dir, wxpaysim, then wxpayd on the real Kafka and ClickHouse. Sets
# sim_pid, wxpayd_pid, sim_url, target, admin_file, stack_desc.
start_stack() {
	local name=$1 ttl=$2
	shift 2
	local dir=$work/$name sim_port wxpayd_port
	sim_port=$(free_port "${WXPAYSIM_PORT:-18490}")
	wxpayd_port=$(free_port "${WXPAYD_PORT:-18480}")
	[ "$sim_port" = "$wxpayd_port" ] && wxpayd_port=$(free_port $((wxpayd_port + 1)))
	mkdir -p "$dir" "$out/$name"
	"$bin/wxpaysim" keygen --dir "$dir/keys" --sim-addr "127.0.0.1:$sim_port" \
		--notify-url "http://127.0.0.1:$wxpayd_port/wxpay/v3/notify" >/dev/null
	admin_file=$dir/admin_token
	(umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n=+/' >"$admin_file")
	(umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n=+/' >"$dir/session_secret")
	local sim_args=(serve --keys-dir "$dir/keys" --listen "127.0.0.1:$sim_port" --notify-speedup "${NOTIFY_SPEEDUP:-60}" --log-level warn "$@")
	"$bin/wxpaysim" "${sim_args[@]}" >"$out/$name/wxpaysim.log" 2>&1 &
	sim_pid=$!
	pids+=("$sim_pid")
	sim_url=http://127.0.0.1:$sim_port
	wait_http "$sim_url/sim/v1/health" "$sim_pid" "$out/$name/wxpaysim.log"
	(
		set -a
		# shellcheck disable=SC1091
		. "$dir/keys/wxpay.env"
		set +a
		export WXPAYD_LISTEN=127.0.0.1:$wxpayd_port WXPAYD_DATA_DIR=$dir/data WXPAYD_ORDER_TTL=$ttl \
			WXPAYD_ADMIN_TOKEN_FILE=$admin_file WXPAYD_SESSION_SECRET_FILE=$dir/session_secret WXPAYD_LOG_LEVEL=warn \
			WXPAYD_KAFKA_BROKERS=$KAFKA_ADDR WXPAYD_CLICKHOUSE_ADDR=$CLICKHOUSE_ADDR
		exec "$bin/wxpayd"
	) >"$out/$name/wxpayd.log" 2>&1 &
	wxpayd_pid=$!
	pids+=("$wxpayd_pid")
	target=http://127.0.0.1:$wxpayd_port
	wait_http "$target/readyz" "$wxpayd_pid" "$out/$name/wxpayd.log"
	stack_desc="wxpaysim \`${sim_args[*]/#$dir/…}\`; wxpayd with WXPAYD_ORDER_TTL=$ttl, WXPAYD_PREPAY_QPS=600 (default), Kafka $KAFKA_ADDR, ClickHouse $CLICKHOUSE_ADDR, a fresh data dir"
	stack_desc=${stack_desc//$dir/…}
	log "$name: wxpaysim $sim_url (pid $sim_pid), wxpayd $target (pid $wxpayd_pid)"
}

stop_stack() {
	stop_pid "$wxpayd_pid"
	stop_pid "$sim_pid"
	pids=()
}

# bench NAME ARGS…: runs wxpaybench against the current stack; appends its
# summary to $work/load.md. A failed audit fails make bench (after the docs
# are written).
status=0
bench() {
	local name=$1
	shift
	local args=(--target "$target" --sim "$sim_url" --admin-token-file "$admin_file" --clickhouse "$CLICKHOUSE_ADDR"
		--out "$out/$name" --max-time "${MAX_TIME:-8m}" --connections "${CONNECTIONS:-1024}" "$@")
	log "$name: wxpaybench ${args[*]}"
	local rc=0
	"$bin/wxpaybench" "${args[@]}" --watch-pid "wxpayd=$wxpayd_pid" --watch-pid "wxpaysim=$sim_pid" \
		>"$out/$name/stdout.txt" || rc=$?
	cat "$out/$name/stdout.txt"
	[ "$rc" -eq 0 ] || { log "$name: wxpaybench exited $rc"; status=1; }
	{
		# The command as an operator would type it against a stack on the default ports.
		printf '\nStack: %s.\n\nCommand:\n\n```sh\nwxpaybench --target http://127.0.0.1:8080 --sim http://127.0.0.1:9090 --admin-token-file ADMIN_TOKEN_FILE --clickhouse %s --out bench/out/%s --max-time %s --connections %s %s\n```\n\n' \
			"$stack_desc" "$CLICKHOUSE_ADDR" "$name" "${MAX_TIME:-8m}" "${CONNECTIONS:-1024}" "$*"
		if [ -f "$out/$name/summary.md" ]; then cat "$out/$name/summary.md"; else printf 'No summary: wxpaybench exited %s before writing it.\n' "$rc"; fi
		printf '\nFull report: `bench/out/%s/report.html` (not committed; rerun `make bench` to get it).\n' "$name"
	} >>"$work/load.md"
}

# replace_section BEGIN END FILE: replaces the marked section of $doc with
# FILE's content (appending it when the markers are missing).
replace_section() {
	local begin=$1 end=$2 file=$3 tmp=$doc.tmp
	[ -f "$doc" ] || printf '# Benchmarks\n\nWritten by `make bench` (bench/run-bench.sh). Each section is rewritten only by the tool named in its markers.\n' >"$doc"
	if grep -qF "$begin" "$doc" && grep -qF "$end" "$doc"; then
		awk -v b="$begin" -v e="$end" -v f="$file" '
			$0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
			$0 == e { skip = 0 }
			!skip { print }' "$doc" >"$tmp"
	else
		{ cat "$doc"; printf '\n%s\n' "$begin"; cat "$file"; printf '%s\n' "$end"; } >"$tmp"
	fi
	mv "$tmp" "$doc"
}

log "services up"
bash deploy/local/services.sh up >&2
eval "$(bash deploy/local/services.sh env)"
log "build"
go build -o "$bin/" ./cmd/...

if [ "${BENCH_PEERS:-1}" = 1 ]; then
	log "micro-benchmarks (bench/peers/run-bench.sh)"
	bash bench/peers/run-bench.sh "$work/peers.md"
	replace_section '<!-- bench/peers:begin -->' '<!-- bench/peers:end -->' "$work/peers.md"
fi

if [ "${BENCH_LOAD:-1}" = 1 ]; then
	: >"$work/load.md"
	: >"$work/loadavg.txt"
	( for _ in $(seq 720); do cat /proc/loadavg >>"$work/loadavg.txt"; sleep 5; done ) &
	sampler=$!
	started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

	start_stack flash-sale "${FLASH_ORDER_TTL:-1m}"
	bench flash-sale --scenario flash-sale --buyers "${FLASH_BUYERS:-20000}" --stock "${FLASH_STOCK:-1000}" \
		--pay-share "${FLASH_PAY_SHARE:-0.8}" --arrival "${FLASH_ARRIVAL:-burst}" --retries "${FLASH_RETRIES:-10}" --await-ttl --seed 1
	stop_stack

	start_stack notify-storm 15m --dup-rate "${STORM_DUP:-0.5}" --tamper-rate "${STORM_TAMPER:-0.2}" --stale-rate "${STORM_STALE:-0.2}"
	bench notify-storm --scenario notify-storm --buyers "${STORM_BUYERS:-3000}" --rate "${STORM_RATE:-300}" --seed 2
	stop_stack

	kill "$sampler" 2>/dev/null || true
	load=$(awk '{print $1}' "$work/loadavg.txt" | sort -n | awk '{a[NR]=$1} END {if (NR) printf "min %s, median %s, max %s over %d samples", a[1], a[int((NR+1)/2)], a[NR], NR}')
	{
		printf '## Load tests: flash sale and notification storm (wxpaybench)\n\n'
		printf 'Run by `make bench` on %s: %s, %s cores, %s GiB, %s, %s. ' "$started" \
			"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" \
			"$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)" "$(go version | awk '{print $3}')" "$(uname -sr)"
		printf 'Everything (the generator, wxpayd, wxpaysim, Kafka, ClickHouse) shares these cores, and the machine is shared with other work: 1-minute load average %s. Read the numbers as lower bounds.\n\n' "$load"
		printf 'Each scenario gets a fresh stack: `wxpaysim keygen`, wxpaysim, and wxpayd writing through the real Kafka to the real ClickHouse. '
		printf 'wxpaybench (`cmd/wxpaybench`, `bench/load`) plays the Mini Program: log in, prepay, pay through wxpaysim, poll until PAID, then audits the end state (no oversell; wxpaysim paid = wxpayd PAID = ClickHouse order.paid; no order PREPAID past its TTL; every tampered or stale notification rejected; every acknowledged payment durable). '
		printf 'Latencies are from HDR histograms; the first request of each arrival is measured from its intended time (no coordinated omission). '
		printf 'The prepay rate is bounded by design at WeChat'"'"'s per-merchant 600/s (`WXPAYD_PREPAY_QPS`; beyond it buyers get 429 with Retry-After and retry), so a burst sells its stock at that rate.\n\n'
		printf 'How to read them: in the flash sale every buyer taps "buy" at the same instant and each prepay is timed from that instant, so prepay'"'"'s p50 is mostly the crowd'"'"'s wait in the queue (tens of thousands of requests on two shared cores), not the cost of one request; "paid" is the time from paying to the buyer'"'"'s poll reading PAID (poll resolution 20–80 ms), which includes wxpaysim signing and delivering the notification and wxpayd verifying and fsyncing it; "checkout" is a paying buyer'"'"'s whole journey. The notify-storm arrives at a steady rate below the prepay limit, so its latencies are per-request costs under a notification load with extra duplicated, tampered and stale copies. The generator'"'"'s own CPU share is in each CPU line. Commands are shown against a stack on the default ports; make bench picks free ones.\n'
		cat "$work/load.md"
	} >"$work/load-section.md"
	replace_section '<!-- wxpaybench:begin -->' '<!-- wxpaybench:end -->' "$work/load-section.md"
fi
log "wrote $doc"
exit "$status"
