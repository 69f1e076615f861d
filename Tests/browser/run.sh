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
work=$(mktemp -d "${TMPDIR:-/tmp}/cofre-browser-XXXXXX")
shots=${2:-$work/screenshots}
mkdir -p "$shots"
source "$(dirname "$0")/../live-serve.sh"
# The server's files go; the screenshots stay (when they are in $work, so does $work).
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -n "${KEEP:-}" ] || { rm -rf "$work/keys" "$work"/data.sqlite*; [ "${shots#$work}" != "$shots" ] || rm -rf "$work"; }' EXIT
export COFRE_URL="http://127.0.0.1:$port" SCREENSHOTS="$shots"
export KEY_DPO=$(issue_key dpo) KEY_AUDITOR=$(issue_key auditor) KEY_CRM=$(issue_key crm) KEY_BOT=$(issue_key whatsapp-bot)
status=0
"$python" "$repo/Tests/browser/test_console.py" || status=1
if serve_crashed; then echo "cofre serve logged a crash or an unhandled error"; status=1; fi
exit $status
