#!/usr/bin/env bash
# Freshness benchmark of `otlp2parquet serve`: 2xx -> rows visible through the
# catalog, p50/p99 (goal: at most the flush interval + 2 s).
#
# Builds the release binary, starts serve with its defaults on a fresh
# warehouse (flush interval FLUSH, default 10 s), and runs
# scripts/bench_freshness.py in the project virtualenv (created by
# scripts/test.sh): one client posting a generated 81-record logs request RATE
# times a second for DURATION seconds while PyIceberg polls the catalog.
#
# Usage: scripts/bench-freshness.sh [DURATION=60] [RATE=20] [FLUSH=10]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
rate="${2:-20}"
flush="${3:-10}"
[ -x .venv/bin/python ] || { echo "run scripts/test.sh once first: it creates .venv" >&2; exit 1; }
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HOME/.cache/otlp2parquet/bench-target}"
cargo build --release --locked -p otlp2parquet >&2
bin="$CARGO_TARGET_DIR/release/otlp2parquet"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" generate --signal logs --records 81 --services 3 --out "$work/logs.pb" 2>/dev/null

port=$((20000 + RANDOM % 20000))
RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --warehouse "$work/wh" --flush-interval "$flush" >/dev/null &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
echo "freshness: $rate requests/s of 81 records for ${duration}s, flush interval ${flush}s" >&2
.venv/bin/python scripts/bench_freshness.py "$port" "$work/wh" "$work/logs.pb" 81 "$duration" "$rate"
