#!/usr/bin/env bash
# The whole test suite: what `make test` runs and what the README's quickstart
# names. It starts the local services the integration tests use (when they
# are installed), installs the command-line tools some tests drive (when it
# can), then runs every package's tests with the race detector (and the
# suites built on the transport a second time, on NATS), and ends
# with a summary: packages passed and failed, and how long it took (about
# five minutes on a 2-core machine with a warm build cache; the first run
# also builds everything, a few minutes more).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/services.sh
bash scripts/tools.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -race -count=1 -timeout 20m ./... 2>&1 | tee "$log" || status=$?
# The suites of what is built on the transport, again on NATS (an embedded
# server per cluster: see cluster/clustertest), so that no layer depends on
# the TCP mesh by accident.
echo "== the cluster, RPC, grain, gateway and chaos suites on NATS (GUILD_TEST_TRANSPORT=nats)"
GUILD_TEST_TRANSPORT=nats go test -race -count=1 -timeout 20m \
  ./cluster/... ./rpc/ ./grain/ ./gate/ ./internal/chaos/ ./examples/arena/ 2>&1 | tee -a "$log" || status=$?
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -c '^FAIL	' "$log" || true)
secs=$(( $(date +%s) - start ))
printf '\nmake test: %s packages passed, %s failed, in %dm%02ds\n' "$passed" "$failed" $((secs / 60)) $((secs % 60))
if [ "$failed" -gt 0 ]; then
  grep '^FAIL	' "$log" | sed 's/^/  /'
fi
exit "$status"
