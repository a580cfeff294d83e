#!/usr/bin/env bash
# Runs the whole test suite, after installing (with apt-get) the system
# programs the tests drive for real when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
exec cargo test --all-features "$@"
