#!/usr/bin/env bash
# The admin dashboard's page (admin/web): installs its packages from its
# lockfile, checks that the committed build (dist/, which package admin
# embeds) matches the sources, then runs test/browser.spec.mjs: `guild
# demo -nodes 3` with bots, the dashboard in headless Chromium, and the
# real `guild status`. It needs Go, Node >= 20.19 and Chromium
# (scripts/browser.sh installs it). With UPDATE_SCREENSHOT=1 it also
# writes docs/admin.png. Used by CI.
#
#   bash scripts/admin-web.sh
#   GUILD_BIN=/path/to/guild bash scripts/admin-web.sh   # a prebuilt guild
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cd admin/web
npm ci --no-audit --no-fund
npm run build
# dist/ is committed for package admin's go:embed: a build of the
# committed sources must reproduce it exactly.
if ! git -C "$root" diff --exit-code --stat -- admin/web/dist ||
  [ -n "$(git -C "$root" status --porcelain -- admin/web/dist)" ]; then
  echo "admin/web/dist is stale: run 'npm run build' in admin/web and commit it" >&2
  exit 1
fi

npm run test:browser
