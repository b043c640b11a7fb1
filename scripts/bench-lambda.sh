#!/usr/bin/env bash
# Figures of the three Lambda functions on this machine (README, "The Lambda
# binaries"): stripped sizes with the `lambda` and `lambda-ingest` profiles
# (thin LTO, one codegen unit, as `cargo lambda build --release`), cold start of the ingest function
# to its first answer, and warm ingest throughput, against moto.
#
# Needs the .venv that scripts/test.sh creates (moto, boto3). The first build
# takes a while (LTO over DataFusion for the compactor).
# MESSAGES "data files ready" messages go to the committer (moto's FIFO queue
# slows with depth: 10,000 take many minutes to send).
# Usage: scripts/bench-lambda.sh [MESSAGES=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv"
[ -x "$venv/bin/python" ] || { echo "run scripts/test.sh once first (it creates .venv)" >&2; exit 1; }
bench_target="${BENCH_TARGET_DIR:-$HOME/.cache/otlp2parquet/bench-target}"
# The ingest function alone, with its own profile: built beside the others,
# Cargo would unify its features with theirs (iceberg's Parquet codecs, ...)
# and the size measured would not be the function's.
CARGO_TARGET_DIR="$bench_target" cargo build --profile lambda-ingest --locked -p otlp2parquet-ingest-lambda >&2
CARGO_TARGET_DIR="$bench_target" cargo build --profile lambda --locked \
  -p otlp2parquet-compactor-lambda -p otlp2parquet-committer-lambda >&2
out="$bench_target/lambda"
# `otlp2parquet generate` makes the requests: the test build will do.
test_target="${CARGO_TARGET_DIR:-$HOME/.cache/otlp2parquet/target}"
CARGO_TARGET_DIR="$test_target" cargo build --locked -p otlp2parquet >&2

port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/python" shared/testkit/moto_server.py -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/" && break; sleep 0.1; done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
"$venv/bin/python" scripts/bench_lambda.py "http://127.0.0.1:$port" "$test_target/debug/otlp2parquet" \
  "$bench_target/lambda-ingest/otlp2parquet-ingest" "$out/otlp2parquet-compactor" "$out/otlp2parquet-committer" "${1:-1000}"
