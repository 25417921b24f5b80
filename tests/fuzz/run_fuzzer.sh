#!/usr/bin/env bash
# run_fuzzer.sh BINARY CORPUS SECONDS - run a libFuzzer harness for a bounded
# time on a scratch copy of its seed corpus (the repo's corpus is not grown),
# with leak detection. Non-zero exit on any crash, leak or timeout.
set -euo pipefail
bin=$1; corpus=$2; secs=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work"/
exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 "$work"
