#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer and AddressSanitizer, then runs each for SECONDS (default 60)
# on a copy of its seed corpus. Exits non-zero on any crash or sanitizer report; the crashing input is
# left in Fuzz/crashes/ (turn it into a regression test). The long form: `bash Fuzz/run.sh 3600`.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
export SWIFT_BACKTRACE=enable=no
swift build -c release --sanitize=fuzzer --sanitize=address >build.log 2>&1 || { grep -E 'error:' build.log | head -20; tail -20 build.log; exit 1; }
mkdir -p crashes
status=0
for target in policy envelope fields audit requests; do
  work=$(mktemp -d)
  cp -r "Corpus/$target/." "$work/"
  out=$(./.build/release/fuzz-$target -max_total_time="$seconds" -rss_limit_mb=2048 -artifact_prefix=crashes/$target- "$work" 2>&1)
  code=$?
  runs=$(grep -oE 'Done [0-9]+ runs' <<<"$out" | grep -oE '[0-9]+' | tail -n 1)
  echo "fuzz-$target: ${runs:-?} executions in ${seconds}s, exit $code"
  if [ "$code" -ne 0 ]; then status=1; grep -E 'ERROR|SUMMARY|Fatal|panic' <<<"$out" | head -10; fi
  rm -rf "$work"
done
exit $status
