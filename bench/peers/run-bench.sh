#!/usr/bin/env bash
# Runs the side-by-side benchmarks of bench/peers and writes RESULTS.md:
#   bash bench/peers/run-bench.sh [out.md]
# It samples /proc/loadavg every 5 s during the run (the machine is shared),
# records `openssl speed -seconds 3 rsa2048` pinned to one core, and feeds
# everything to cmd/benchtable. Raw output stays in $TMPDIR for inspection.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-RESULTS.md}
tmp=${TMPDIR:-/tmp}
bench_txt=$tmp/peers-bench.txt
load_txt=$tmp/peers-load.txt
speed_txt=$tmp/peers-openssl-speed.txt
cmd="go test -run '^\$' -bench . -count 6 -benchtime 1s ./..."

# The code measured: HEAD, and whether wxpay/ or bench/peers differ from it.
rev="commit $(git rev-parse --short HEAD)"
if [ -n "$(git status --porcelain -- ../../wxpay . 2>/dev/null | grep -v -e "^?? .*testdata/" -e "RESULTS.md" || true)" ]; then
	rev="$rev with uncommitted changes in wxpay/ or bench/peers/"
fi

: >"$load_txt"
(
	# Bounded: at most one hour of samples.
	for _ in $(seq 720); do
		cat /proc/loadavg >>"$load_txt"
		sleep 5
	done
) &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

go test -run '^$' -bench . -count 6 -benchtime 1s ./... | tee "$bench_txt"

speed_cmd="openssl speed -seconds 3 rsa2048"
if command -v taskset >/dev/null; then
	speed_cmd="taskset -c 0 $speed_cmd"
fi
$speed_cmd >"$speed_txt" 2>&1
kill "$sampler" 2>/dev/null || true

go run ./cmd/benchtable -cmd "$cmd" -rev "$rev" -openssl-speed "$speed_txt" -openssl-cmd "$speed_cmd" \
	-load "$load_txt" <"$bench_txt" >"$out"
echo "wrote $out"
