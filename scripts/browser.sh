#!/usr/bin/env bash
# The arena page's browser test (examples/arena/web). It installs Debian's
# Chromium when /usr/bin/chromium is missing (apt-get, as root or through
# sudo), installs the page's packages from its lockfile, checks that the
# committed TypeScript (src/gen) matches arena.proto and that the committed
# build (dist/, which `guild demo` embeds) matches the sources, then runs
# test/browser.spec.mjs: `guild demo`, the page in headless Chromium and a
# Go bot, playing together. It needs Go and Node >= 20.19. With
# UPDATE_SCREENSHOT=1 it also writes docs/arena.png. Used by CI.
#
#   bash scripts/browser.sh
#   GUILD_BIN=/path/to/guild bash scripts/browser.sh   # a prebuilt guild
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
      echo "browser: Chromium is missing and cannot be installed (not root, no sudo):" >&2
      echo "  apt-get install chromium chromium-driver" >&2
      exit 1
    fi
    sudo="sudo -n"
  fi
  echo "browser: installing chromium and chromium-driver"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

cd examples/arena/web
npm ci --no-audit --no-fund

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm run --silent generate -- --output "$tmp"
if ! diff -r "$tmp/src/gen" src/gen; then
  echo "examples/arena/web/src/gen is stale: run 'npm run generate' in examples/arena/web" >&2
  exit 1
fi

npm run build
# dist/ is committed for `guild demo`: once it is tracked, a build of the
# committed sources must reproduce it exactly.
if git -C "$root" ls-files --error-unmatch examples/arena/web/dist/index.html >/dev/null 2>&1; then
  if ! git -C "$root" diff --exit-code --stat -- examples/arena/web/dist ||
    [ -n "$(git -C "$root" status --porcelain -- examples/arena/web/dist)" ]; then
    echo "examples/arena/web/dist is stale: run 'npm run build' in examples/arena/web and commit it" >&2
    exit 1
  fi
fi

npm run test:browser
