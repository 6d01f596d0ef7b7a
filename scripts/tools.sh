#!/usr/bin/env bash
# Installs, from Debian's packages, the command-line tools that some tests
# drive, when they are missing and apt-get can be used (as root or through
# sudo): mosquitto's clients (mosquitto_pub, mosquitto_sub). A test whose
# tool is missing fails on CI (CI=true) and skips elsewhere, saying how to
# install it. Safe to run repeatedly.
set -u

need=()
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    echo "tools: cannot install ${need[*]} (not root, no sudo); tests that need them will skip"
    exit 0
  fi
  sudo="sudo -n"
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tools: no apt-get to install ${need[*]}; tests that need them will skip"
  exit 0
fi
echo "tools: installing ${need[*]}"
$sudo apt-get update -qq >/dev/null 2>&1 || true
$sudo apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || echo "tools: installing ${need[*]} failed"
exit 0
