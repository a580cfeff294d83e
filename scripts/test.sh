#!/usr/bin/env bash
# Runs the whole test suite. Installs the system programs the tests drive for
# real (redis-server) when they are missing, using apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

install_pkgs() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing for the tests: ${missing[*]}"
  install_pkgs "${missing[@]}"
fi

exec cargo test --all-features "$@"
