#!/bin/sh
# Signs a webhook body the way a sender does and POSTs it with curl.
#
#   cargo run --example receiver &                        # in one shell
#   echo '{"event":"kpi.alert"}' | examples/sign-and-send.sh -
#   examples/sign-and-send.sh payload.json
#
# The body is read from FILE (or stdin for `-`) and sent byte for byte.
#
#   WEBHOOK_URL        default http://127.0.0.1:3000/webhooks
#   WEBHOOK_SECRET     default: the receiver example's demo secret
#   WEBHOOK_SCHEME     native (default) or native-body-only
#   WEBHOOK_ID         default: evt_ followed by 16 random hex digits
#   WEBHOOK_TIMESTAMP  unix seconds, default: now (set an old one to see a replay refused)
#
# native:           X-Webhook-Signature: sha256=hex(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))
#                   plus X-Webhook-Id and X-Webhook-Timestamp
# native-body-only: X-Webhook-Signature: sha256=hex(HMAC-SHA256(secret, body))
#
# Needs openssl and curl. `openssl dgst -hmac` takes the secret as an argument,
# which other users of the machine can see in the process list: fine for a
# demo secret, not for a production one.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 FILE   (the body; - reads it from stdin)" >&2
    exit 2
fi

url=${WEBHOOK_URL:-http://127.0.0.1:3000/webhooks}
secret=${WEBHOOK_SECRET:-demo-secret-do-not-use-in-production}
scheme=${WEBHOOK_SCHEME:-native}
id=${WEBHOOK_ID:-evt_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}
ts=${WEBHOOK_TIMESTAMP:-$(date +%s)}

body=$(mktemp)
trap 'rm -f "$body"' EXIT
if [ "$1" = - ]; then cat >"$body"; else cat -- "$1" >"$body"; fi

case $scheme in
native)
    sig=$({ printf '%s.%s.' "$id" "$ts"; cat "$body"; } |
        openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')
    curl -sS -i "$url" \
        -H "X-Webhook-Id: $id" \
        -H "X-Webhook-Timestamp: $ts" \
        -H "X-Webhook-Signature: sha256=$sig" \
        -H 'Content-Type: application/json' \
        --data-binary @"$body"
    ;;
native-body-only)
    sig=$(openssl dgst -sha256 -hmac "$secret" <"$body" | awk '{print $NF}')
    curl -sS -i "$url" \
        -H "X-Webhook-Signature: sha256=$sig" \
        -H 'Content-Type: application/json' \
        --data-binary @"$body"
    ;;
*)
    echo "$0: WEBHOOK_SCHEME=$scheme: this script signs native and native-body-only only" >&2
    exit 2
    ;;
esac
