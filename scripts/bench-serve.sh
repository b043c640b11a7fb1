#!/usr/bin/env bash
# Sustained-ingest benchmark of `otlp2parquet serve` on this machine.
#
# Builds the release binary, starts serve on a loopback port with a fresh
# warehouse, and drives it with wrk (Debian package) for DURATION seconds over
# CONNECTIONS connections, each request the same generated protobuf export of
# RECORDS log records or spans (SIGNAL logs or traces; 81 log records make about
# 38 KB, 19 spans about 10 KB: the sizes the README compares with).
# Reports acknowledged records/s, latency percentiles, the server's peak RSS, and
# then — after a final flush — the rows really in the table and the file counts.
#
# Usage: scripts/bench-serve.sh [DURATION=60] [CONNECTIONS=16] [RECORDS=81] [SIGNAL=logs]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
connections="${2:-16}"
records="${3:-81}"
signal="${4:-logs}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HOME/.cache/otlp2parquet/bench-target}"
cargo build --release --locked -p otlp2parquet >&2
bin="$CARGO_TARGET_DIR/release/otlp2parquet"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_payload "$work" "$bin" "$records" "$signal"
size=$(stat -c %s "$work/body.pb")

port=$((20000 + RANDOM % 20000))
RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --warehouse "$work/wh" --flush-interval 10 >/dev/null &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

bench_watch_rss "$server" "$work/peak"
echo "serve: $records $signal records per request ($size bytes), $connections connections, ${duration}s" >&2
result=$(bench_drive "$port" "$duration" "$connections" "$work" "$signal")
peak=$(cat "$work/peak" 2>/dev/null || echo 0)
curl -sf "http://127.0.0.1:$port/metrics" > "$work/metrics"
kill -INT "$server"; wait "$server" || true
ok=$(bench_ok_requests "$result")
rows=$("$bin" tables --warehouse "$work/wh" | awk -v t="otel.$signal" '$1 == t {print $3}')
raw_left=$(find "$work/wh/otel/$signal/data/raw" -name '*.parquet' 2>/dev/null | wc -l)
files=$(find "$work/wh/otel/$signal/data" -name '*.parquet' -not -path '*/raw/*' | wc -l)
raw_written=$(awk '$1 == "otlp2parquet_raw_files_written_total" {print $2}' "$work/metrics")
echo
echo "acknowledged requests/s: $(( ok / duration )), records/s: $(( ok * records / duration ))"
echo "$result"
echo "server peak RSS: $(( peak / 1024 )) MiB"
echo "rows committed: $rows (acknowledged: $(( ok * records )))"
echo "raw files written: $raw_written, left uncompacted: $raw_left; compacted files in the table: $files"
