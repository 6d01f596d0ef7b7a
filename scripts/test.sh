#!/usr/bin/env bash
# The whole test suite: what `make test` runs and what the README's quickstart
# names. It starts the local services the integration tests use (when they
# are installed), installs the command-line tools some tests drive (when it
# can), then runs every package's tests with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/tools.sh
go test -race -count=1 -timeout 20m ./...
