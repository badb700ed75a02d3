#!/bin/sh
set -eu
: "${SLACK_WEBHOOK_URL:?set SLACK_WEBHOOK_URL}"
payload=$(printf '{"text": "%s"}' "$1")
curl -sS -X POST -H 'Content-type: application/json' --data "$payload" "$SLACK_WEBHOOK_URL"
