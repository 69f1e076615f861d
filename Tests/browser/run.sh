#!/usr/bin/env bash
# The console's browser suite (CONTRACT §11): headless Chromium (Debian's `chromium` and
# `chromium-driver`), driven by Selenium, against a live `cofre serve` from the debug build.
#
#   Tests/browser/run.sh PYTHON [SCREENSHOT_DIR]
#
# PYTHON is a Python with `selenium` installed (.ci/run makes a virtualenv). Screenshots of each page
# go to SCREENSHOT_DIR (default: a temporary directory), and their paths are printed.
set -euo pipefail
python=${1:?usage: run.sh PYTHON [SCREENSHOT_DIR]}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cofre="$repo/.build/debug/cofre"
work=$(mktemp -d "${TMPDIR:-/tmp}/cofre-browser-XXXXXX")
shots=${2:-$work/screenshots}
mkdir -p "$shots"
port=$((20000 + RANDOM % 20000))
opts=(--policy "$repo/deploy/policy.example.yaml" --database "sqlite:$work/data.sqlite" --keys "$work/keys")
"$cofre" serve "${opts[@]}" --port "$port" >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work/keys" "$work"/data.sqlite*' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "cofre serve did not start:"; cat "$work/serve.log"; exit 1; }
key() { "$cofre" service issue "$1" "${opts[@]}" --json | "$python" -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
export COFRE_URL="http://127.0.0.1:$port" SCREENSHOTS="$shots"
export KEY_DPO=$(key dpo) KEY_AUDITOR=$(key auditor) KEY_CRM=$(key crm) KEY_BOT=$(key whatsapp-bot)
status=0
"$python" "$repo/Tests/browser/test_console.py" || status=1
if grep -q -iE 'fatal|panic|unhandled error' "$work/serve.log"; then echo "cofre serve logged a crash or an unhandled error"; status=1; fi
exit $status
