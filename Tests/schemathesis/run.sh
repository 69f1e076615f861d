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
repo=$(cd "$(dirname "$0")/../.." && pwd)
cofre="$repo/.build/debug/cofre"
work=$(mktemp -d "${TMPDIR:-/tmp}/cofre-schemathesis-XXXXXX")
port=$((20000 + RANDOM % 20000))
opts=(--policy "$repo/deploy/policy.example.yaml" --database "sqlite:$work/data.sqlite" --keys "$work/keys")
"$cofre" serve "${opts[@]}" --port "$port" >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "cofre serve did not start:"; cat "$work/serve.log"; exit 1; }
key() { "$cofre" service issue "$1" "${opts[@]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
status=0
for role in crm dpo auditor none; do
    headers=()
    if [ "$role" != none ]; then headers=(-H "Authorization: Bearer $(key "$role")"); fi
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
if grep -q -iE 'fatal|panic|unhandled error' "$work/serve.log"; then echo "cofre serve logged a crash or an unhandled error"; status=1; fi
exit $status
