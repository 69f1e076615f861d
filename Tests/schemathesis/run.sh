#!/usr/bin/env bash
# Schemathesis against a live `cofre serve` (the debug build), over every operation of docs/openapi.yaml,
# once with each role's key (a service, the DPO, an auditor) and once without a key.
#
#   Tests/schemathesis/run.sh ST_BINARY [EXAMPLES]
#
# Checks: every schemathesis check (server errors, status codes, content types, headers, response
# schemas, negative data rejected, unsupported methods, auth...) except positive_data_acceptance (a
# schema-valid body may still name a field the deployment's policy lacks: that is a documented 422),
# plus `no_echoed_value` (hooks.py): no answer repeats a submitted value. Exit status non-zero on any
# failure or error.
set -euo pipefail
st=${1:?usage: run.sh ST_BINARY [EXAMPLES]}
st="$(cd "$(dirname "$st")" && pwd)/$(basename "$st")"   # absolute: the runs start in a work directory
[ -x "$st" ] || { echo "schemathesis not found at $st"; exit 1; }
examples=${2:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/cofre-schemathesis-XXXXXX")
source "$(dirname "$0")/../live-serve.sh"
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
status=0
for role in crm dpo auditor none; do
    headers=()
    if [ "$role" != none ]; then headers=(-H "Authorization: Bearer $(issue_key "$role")"); fi
    echo "--- schemathesis as $role"
    if ! (cd "$work" && PYTHONPATH="$repo/Tests/schemathesis" SCHEMATHESIS_HOOKS=hooks "$st" run "$repo/docs/openapi.yaml" \
            --url "http://127.0.0.1:$port" "${headers[@]}" \
            --checks all --exclude-checks positive_data_acceptance --checks no_echoed_value \
            --max-examples "$examples" --workers 1 --seed 20261129 --no-color 2>&1 | tee "$work/$role.log" | sed -n '/SUMMARY/,$p'); then
        status=1
    fi
    grep -qE '^(=+ )?[0-9]+ (failures?|errors?)' "$work/$role.log" && status=1
done
# The server must not have crashed or logged an unhandled error.
if serve_crashed; then echo "cofre serve logged a crash or an unhandled error"; status=1; fi
exit $status
