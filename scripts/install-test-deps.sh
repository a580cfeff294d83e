#!/usr/bin/env bash
# Installs, with apt-get, the system programs and libraries the tests drive
# for real, when they are missing:
#   redis-server      the Redis idempotency store tests start their own server
#   postgresql        the PostgreSQL store tests run initdb and start their own server
#   openssl, curl     independent signers and the shell example
#   libssl-dev, pkg-config   the svix crate (an interoperability dev-dependency)
#   nodejs            independent ed25519 signer, when python's cryptography is absent
#   chromium, chromium-driver   the operator console's headless browser test
#   prometheus        promtool checks and unit-tests the alerting rules in docs/alerts/
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if ! command -v node >/dev/null 2>&1 && ! python3 -c 'import cryptography' 2>/dev/null; then
  missing+=(nodejs)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing for the tests: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
