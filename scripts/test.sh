#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, the Rust test
# suite, infra/ (the CDK app: tests, synth, cfn-lint, checkov, shellcheck), and
# the Python tests: our files and tables read by PyArrow, DuckDB and
# PyIceberg, and `otlp2parquet serve` fed by the OpenTelemetry SDK.
# Installs what it needs (a project-local Python virtualenv) and needs nothing
# done by hand; uses cargo-nextest when it is installed, cargo test otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Builds live outside the clone so that repeated runs (and fresh clones) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/otlp2parquet/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "infra/: the CDK app's tests, cdk synth, cfn-lint, checkov, shellcheck (infra/check.sh)"
infra/check.sh

step "Python virtualenv for the reader tests (.venv)"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$stamp"
fi

step "JavaScript OpenTelemetry SDK for the serve tests (tests/js, npm ci)"
if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

step "Iceberg REST catalog server for the serve tests (rustberg, crates.io; built once into ~/.cache)"
# No REST catalog server is on PyPI or npm; rustberg is one. Its release profile
# uses fat LTO, far slower to link here, so it is built without (about 13 minutes
# on 2 cores, once).
rustberg_root="$HOME/.cache/otlp2parquet/rustberg"
if [ ! -x "$rustberg_root/bin/rustberg" ]; then
  CARGO_TARGET_DIR="$HOME/.cache/otlp2parquet/rustberg-target" \
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install rustberg --version 0.3.0 --locked --root "$rustberg_root" \
      --no-default-features --features cli,storage-s3
fi

step "cargo build (the otlp2parquet binary the reader tests run)"
cargo build --workspace --locked

step "moto server (S3, SQS and S3 Tables emulator, from .venv) for the AWS tests"
# One server for the whole run; tests keep apart by naming their own buckets
# and queues. A test run alone starts a server of its own. Started through the
# launcher that fixes two S3 Tables replies the Rust SDK refuses.
moto_port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/python" shared/testkit/moto_server.py -H 127.0.0.1 -p "$moto_port" >"${TMPDIR:-/tmp}/otlp2parquet-moto-$moto_port.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" && break
  kill -0 "$moto_pid" 2>/dev/null || { echo "moto_server exited; see its log" >&2; exit 1; }
  sleep 0.1
done
export OTLP2PARQUET_TEST_MOTO_URL="http://127.0.0.1:$moto_port"

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "Python tests: PyArrow, DuckDB and PyIceberg read our files and tables; serve end to end with the OpenTelemetry SDK"
OTLP2PARQUET_BIN="$CARGO_TARGET_DIR/debug/otlp2parquet" RUSTBERG_BIN="$rustberg_root/bin/rustberg" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/readers
