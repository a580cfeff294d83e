#!/usr/bin/env bash
# Load test of the receiver stack over real HTTP on loopback.
#
# 1. The Rust load generator (benches/load.rs): plain vs verify vs
#    verify+dedup, every request a distinct, validly signed event, ratios
#    from one run. This is the measurement that counts.
# 2. A cross-check with wrk (Debian package `wrk`) for `plain` and `verify`,
#    where repeating one signed request is valid (the server's clock is
#    fixed). wrk cannot sign per request, so it cannot drive the dedup mode
#    with distinct events; see benches/load.rs.
#
# Everything binds 127.0.0.1 only and each run is bounded in time.
# Usage: benches/load.sh            (LOAD_SECS, LOAD_ROUNDS, LOAD_CONNS, WRK_SECS)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq wrk
    else
        echo "wrk is missing: sudo apt-get install -y wrk" >&2
        exit 1
    fi
fi

: "${LOAD_SECS:=3}" "${LOAD_ROUNDS:=2}" "${LOAD_CONNS:=32}" "${WRK_SECS:=5}"
export LOAD_SECS LOAD_ROUNDS LOAD_CONNS

echo "== Rust load generator (${LOAD_ROUNDS} rounds x ${LOAD_SECS} s per mode)"
cargo bench --bench load

bin=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "cannot find the load bench binary" >&2; exit 1; }

port=18088
headers=()
while IFS= read -r line; do headers+=(-H "$line"); done < <(LOAD_PRINT_HEADERS=1 "$bin")
body=$(mktemp)
trap 'rm -f "$body"; [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true' EXIT
cat >"$body" <<'LUA'
wrk.method = "POST"
wrk.body = '{"event":"ingestion.completed","timestamp":"2023-11-14T22:13:20Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}'
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("non-2xx or socket errors: %d\n", errors))
end
LUA

for mode in plain verify; do
    LOAD_SERVE=$mode LOAD_PORT=$port "$bin" &
    server=$!
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
        sleep 0.1
    done
    echo "== wrk, $mode, ${WRK_SECS} s, 1 thread, ${LOAD_CONNS} connections"
    wrk -t1 -c"$LOAD_CONNS" -d"${WRK_SECS}s" -s "$body" "${headers[@]}" "http://127.0.0.1:$port/webhooks" |
        grep -E "Requests/sec|Latency|errors"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
done
