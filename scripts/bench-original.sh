#!/usr/bin/env bash
# The same load as scripts/bench-serve.sh against the original project, the
# published otlp2parquet crate 0.12.0, run with its defaults: what it
# acknowledges, and how many of those rows are really on disk afterwards.
#
# Installs it once into ~/.cache/otlp2parquet/original (a release build of about
# ten minutes here). Counting uses PyArrow from the test virtualenv (.venv, made
# by scripts/test.sh).
#
# Usage: scripts/bench-original.sh [DURATION=60] [CONNECTIONS=16] [RECORDS=81] [SIGNAL=logs]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
connections="${2:-16}"
records="${3:-81}"
signal="${4:-logs}"
root="$HOME/.cache/otlp2parquet/original"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "run scripts/test.sh once first (it creates .venv with PyArrow)" >&2; exit 1; }
if [ ! -x "$root/bin/otlp2parquet" ]; then
  cargo install otlp2parquet --version 0.12.0 --locked --root "$root" >&2
fi
ours="${BENCH_TARGET_DIR:-$HOME/.cache/otlp2parquet/bench-target}/release/otlp2parquet"
[ -x "$ours" ] || { echo "build ours first: scripts/bench-serve.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_payload "$work" "$ours" "$records" "$signal"

port=$((20000 + RANDOM % 20000))
mkdir -p "$work/out"
(cd "$work" && RUST_LOG=warn exec "$root/bin/otlp2parquet" --port "$port" --output "$work/out" >/dev/null 2>&1) &
server=$!
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
bench_watch_rss "$server" "$work/peak"
echo "original 0.12.0: $records $signal records per request, $connections connections, ${duration}s" >&2
result=$(bench_drive "$port" "$duration" "$connections" "$work" "$signal")
peak=$(cat "$work/peak" 2>/dev/null || echo 0)
kill -INT "$server" 2>/dev/null || true
# Give it a minute to flush what it buffered, as a graceful shutdown should.
for _ in $(seq 600); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
kill -9 "$server" 2>/dev/null || true
ok=$(bench_ok_requests "$result")
files=$(find "$work/out" -name '*.parquet' | wc -l)
# File by file: a torn file counts as lost rows, not as a failed count.
rows=$(.venv/bin/python - "$work/out" <<'PY'
import pathlib, sys
import pyarrow.parquet as pq
total = unreadable = 0
for path in pathlib.Path(sys.argv[1]).rglob("*.parquet"):
    try:
        total += pq.read_metadata(path).num_rows
    except Exception:
        unreadable += 1
print(f"{total} (unreadable files: {unreadable})")
PY
)
echo
echo "acknowledged requests/s: $(( ok / duration )), records/s: $(( ok * records / duration ))"
echo "$result"
echo "server peak RSS: $(( peak / 1024 )) MiB"
echo "rows on disk: $rows (acknowledged: $(( ok * records ))); parquet files: $files"
