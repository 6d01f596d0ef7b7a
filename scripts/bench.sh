#!/usr/bin/env bash
# Runs the benchmarks named in docs/PERFORMANCE.md and summarises them with
# benchstat (installed from the Go module proxy). Peers and baselines run in
# the same invocation, interleaved round by round, so that their ratios are
# measured under the same machine conditions. Output: bench-results/*.txt.
#
#   bash scripts/bench.sh            # 6 rounds
#   ROUNDS=10 bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-6}
out=bench-results
mkdir -p "$out"
: >"$out/actor.txt"; : >"$out/timer.txt"; : >"$out/peers.txt"; : >"$out/idle.txt"
GOFLAGS= go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
benchstat="$(go env GOPATH)/bin/benchstat"

go test -c -o "$out/actor.test" ./actor/
go test -c -o "$out/timer.test" ./timer/
(cd bench && for p in guildbench hollywood protoactor; do go test -c -o "../$out/$p.test" "./$p/"; done)

for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds" >&2
  "$out/actor.test" -test.run '^$' -test.bench '^Benchmark(Mailbox|Chan)$' -test.benchtime 200x >>"$out/actor.txt"
  "$out/actor.test" -test.run '^$' -test.bench '^Benchmark(Send|Call)$' -test.benchtime 1s -test.benchmem >>"$out/actor.txt"
  "$out/timer.test" -test.run '^$' -test.bench '^Benchmark(Wheel|TimeAfterFunc)$' -test.benchtime 2000000x -test.benchmem >>"$out/timer.txt"
  for p in guildbench hollywood protoactor; do
    "$out/$p.test" -test.run '^$' -test.bench '^BenchmarkLocal' -test.benchtime 1s -test.benchmem >>"$out/peers.txt"
  done
done
"$out/actor.test" -test.run '^$' -test.bench '^BenchmarkIdleActors$' -test.benchtime 1000000x >>"$out/idle.txt"

for f in actor timer peers idle; do
  echo "== $f"
  "$benchstat" "$out/$f.txt"
done | tee "$out/summary.txt"
