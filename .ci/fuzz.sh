#!/usr/bin/env bash
# Runs every Go fuzz target in the main module for a bounded time each.
# Usage: .ci/fuzz.sh DURATION   (e.g. 5s in make test, 60s in make fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-30s}
mapfile -t targets < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . | grep -v '^./bench/peers/' | sort)
count=0
for file in "${targets[@]}"; do
  pkg=$(dirname "$file")
  for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/'); do
    echo "fuzz $pkg $fn ($dur)"
    if ! go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$dur" -fuzzminimizetime 2s "$pkg" >/tmp/wxpayd-fuzz.log 2>&1; then
      # A finding writes its input under testdata/fuzz and fails; so does a
      # panic or a build error. Go also reports "context deadline exceeded"
      # when the time limit falls while it minimises a new corpus entry:
      # no input failed then, so that alone is not a finding.
      if grep -qE 'Failing input written to|panic:|\[build failed\]' /tmp/wxpayd-fuzz.log ||
         ! grep -q 'context deadline exceeded' /tmp/wxpayd-fuzz.log; then
        cat /tmp/wxpayd-fuzz.log
        exit 1
      fi
      echo "fuzz: $fn hit its time limit while minimising a new input (no failing input)"
    fi
    count=$((count + 1))
  done
done
echo "fuzz: $count targets ran for $dur each"
