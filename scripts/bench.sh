#!/usr/bin/env bash
# Runs the benchmarks named in docs/PERFORMANCE.md and summarises them with
# benchstat (installed from the Go module proxy). Peers and baselines run in
# the same invocation, interleaved round by round, so that their ratios are
# measured under the same machine conditions. Output: bench-results/*.txt.
#
#   bash scripts/bench.sh            # 6 rounds of every set
#   ROUNDS=10 bash scripts/bench.sh
#   SETS=remote bash scripts/bench.sh   # only some sets: actor timer peers remote transports idle streams
#
# The transports set needs the machine's NATS, RabbitMQ and Redis
# (scripts/services.sh); a broker that does not answer is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-6}
out=bench-results
mkdir -p "$out"
sets=" ${SETS:-actor timer peers remote transports idle streams} "
want() { [[ "$sets" == *" $1 "* ]]; }
for f in actor timer peers remote transports idle streams; do if want "$f"; then : >"$out/$f.txt"; fi; done
GOFLAGS= go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
benchstat="$(go env GOPATH)/bin/benchstat"

go test -c -o "$out/actor.test" ./actor/
go test -c -o "$out/timer.test" ./timer/
go test -c -o "$out/stream.test" ./stream/
(cd bench && for p in guildbench hollywood protoactor; do go test -c -o "../$out/$p.test" "./$p/"; done)

for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds" >&2
  if want actor; then
    "$out/actor.test" -test.run '^$' -test.bench '^Benchmark(Mailbox|Chan)$' -test.benchtime 200x >>"$out/actor.txt"
    "$out/actor.test" -test.run '^$' -test.bench '^Benchmark(Send|Call)$' -test.benchtime 1s -test.benchmem >>"$out/actor.txt"
  fi
  if want timer; then
    "$out/timer.test" -test.run '^$' -test.bench '^Benchmark(Wheel|TimeAfterFunc)$' -test.benchtime 2000000x -test.benchmem >>"$out/timer.txt"
  fi
  for p in guildbench hollywood protoactor; do
    if want peers; then
      "$out/$p.test" -test.run '^$' -test.bench '^BenchmarkLocal' -test.benchtime 1s -test.benchmem >>"$out/peers.txt"
    fi
    if want remote; then
      "$out/$p.test" -test.run '^$' -test.bench '^Benchmark(TCPPingPong|Remote|RPC)' -test.benchtime 2s -test.benchmem >>"$out/remote.txt"
    fi
  done
  if want streams; then
    "$out/stream.test" -test.run '^$' -test.bench '^BenchmarkStream(Throughput|ActorLatency)$' -test.benchtime 5000x >>"$out/streams.txt"
  fi
  if want transports; then
    "$out/guildbench.test" -test.run '^$' -test.bench '^Benchmark(TCPPingPong|Transport)' -test.benchtime 2s -test.benchmem >>"$out/transports.txt"
  fi
done
if want idle; then
  "$out/actor.test" -test.run '^$' -test.bench '^BenchmarkIdleActors$' -test.benchtime 1000000x >>"$out/idle.txt"
fi

for f in actor timer peers remote transports idle streams; do
  if want "$f"; then
    echo "== $f"
    "$benchstat" "$out/$f.txt"
  fi
done | tee "$out/summary.txt"
