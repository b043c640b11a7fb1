#!/usr/bin/env bash
# `serve` and the original otlp2parquet 0.12.0 under the same loads, one after
# the other in one run: 38 KB protobuf logs requests (81 records) and 10 KB
# trace requests (19 spans), CONNECTIONS connections, DURATION seconds each.
# Prints one Markdown table: acknowledged requests/s and records/s, latency,
# peak RSS, and how many acknowledged records were really stored. Requests
# refused (any non-2xx: a server whose background work falls behind answers 503
# once its backlog limit is reached) are counted apart, not as acknowledged.
#
# Needs what scripts/bench-serve.sh and scripts/bench-original.sh need (wrk; the
# test virtualenv for counting the original's files).
#
# Usage: scripts/bench-compare.sh [DURATION=30] [CONNECTIONS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-30}"
connections="${2:-16}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# field FILE PATTERN: the first number after PATTERN in FILE.
field() { grep -o "$2[ =]*[0-9.]*" "$1" | head -1 | grep -o '[0-9.]*$'; }

echo "| payload | server | acknowledged requests/s | records/s | refused requests | p50 ms | p99 ms | peak RSS MiB | records stored / acknowledged |"
echo "|---|---|---|---|---|---|---|---|---|"
for payload in "logs 81" "traces 19"; do
  read -r signal records <<<"$payload"
  scripts/bench-serve.sh "$duration" "$connections" "$records" "$signal" > "$out/ours" 2>"$out/ours.err"
  scripts/bench-original.sh "$duration" "$connections" "$records" "$signal" > "$out/original" 2>"$out/original.err"
  for server in ours original; do
    f="$out/$server"
    if [ "$server" = ours ]; then stored=$(field "$f" "rows committed:"); else stored=$(field "$f" "rows on disk:"); fi
    printf '| %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' \
      "$signal" "$records" "$( [ "$server" = ours ] && echo "serve" || echo "original 0.12.0")" \
      "$(field "$f" "requests/s:")" "$(field "$f" "records/s:")" "$(field "$f" "errors=")" \
      "$(field "$f" "p50_ms")" "$(field "$f" "p99_ms")" "$(field "$f" "peak RSS:")" \
      "$stored" "$(field "$f" "acknowledged:")"
  done
done
