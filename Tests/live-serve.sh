# Sourced by Tests/schemathesis/run.sh and Tests/browser/run.sh: a live `cofre serve` from the debug
# build on a random loopback port, with the example policy and its own SQLite files and key ring in
# $work. Sets cofre, opts, port and pid; `issue_key NAME` prints a fresh key of that service;
# `serve_crashed` says whether the server logged a crash or an unhandled error.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cofre="$repo/.build/debug/cofre"
port=$((20000 + RANDOM % 20000))
opts=(--policy "$repo/deploy/policy.example.yaml" --database "sqlite:$work/data.sqlite" --keys "$work/keys")
"$cofre" serve "${opts[@]}" --port "$port" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "cofre serve did not start:"; cat "$work/serve.log"; kill $pid 2>/dev/null; exit 1; }
issue_key() { "$cofre" service issue "$1" "${opts[@]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
serve_crashed() { grep -q -iE 'fatal|panic|unhandled error' "$work/serve.log"; }
