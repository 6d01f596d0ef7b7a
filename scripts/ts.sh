#!/usr/bin/env bash
# Installs, type-checks, tests and builds the TypeScript client SDK
# (clients/ts, "@guildkit/client") from its lockfile, and fails when the
# committed src/gen no longer matches gate/gatepb/gate.proto and
# propsync/propsyncpb/propsync.proto, or test/gen the test state
# propsync/internal/testpb/test.proto. Used by CI.
# The tests need Go too: test/resume.test.ts runs a real gateway
# (test/gateway, with go run), test/propsync-cross.test.ts and
# test/propsync-e2e.test.ts the Go side of property sync
# (propsync/internal/tsfixture).
#
#   bash scripts/ts.sh
set -euo pipefail
cd "$(dirname "$0")/../clients/ts"
npm ci --no-audit --no-fund
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm run --silent generate:sdk -- --output "$tmp"
npm run --silent generate:test -- --output "$tmp"
for dir in src/gen test/gen; do
  if ! diff -r "$tmp/$dir" "$dir"; then
    echo "clients/ts/$dir is stale: run 'npm run generate' in clients/ts" >&2
    exit 1
  fi
done
npm run typecheck
npm test
npm run build
