#!/usr/bin/env bash
# Deploys otlp2parquet into the AWS account and region of the current
# credentials (the AWS CLI's and SDKs' usual variables and profiles):
# builds the three functions for arm64, bootstraps CDK if needed, deploys the
# stack and writes its outputs to infra/outputs.json.
#
# Usage: infra/deploy.sh [--dry-run] [-c name=value ...]
#   --dry-run       print what would be run; needs no AWS credentials
#   -c name=value   a CDK context setting (infra/cdk.json lists them), e.g.
#                   -c auth=token  -c mode=plain  -c alarmEmail=ops@example.com
#
# Needs: cargo (rustup), node and npm, python3 (cargo-lambda and zig come from
# PyPI into infra/.venv-build on first use).
set -euo pipefail
infra="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$infra")"

dry_run=false
context=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=true ;;
    -c) [ $# -ge 2 ] || { echo "deploy.sh: -c needs name=value" >&2; exit 2; }
        context+=(-c "$2"); shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Each step is printed; with --dry-run only printed.
run() {
  printf '+ %s\n' "$*"
  if [ "$dry_run" = false ]; then "$@"; fi
}

lambda_dir="$infra/build/arm64"
venv="$infra/.venv-build"

echo "==> tools: cargo-lambda and zig (PyPI) in $venv, the Rust target for arm64"
if [ "$dry_run" = true ] || [ ! -x "$venv/bin/cargo-lambda" ]; then
  run python3 -m venv "$venv"
  run "$venv/bin/pip" install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.15.2
fi
run rustup target add aarch64-unknown-linux-gnu
export PATH="$venv/bin:$PATH"

echo "==> build the three functions (arm64 zips in $lambda_dir)"
# The ingest function has a profile of its own (smaller, see Cargo.toml) and is
# built alone so that its dependencies' features are its own.
run cargo lambda build --manifest-path "$root/Cargo.toml" --locked --profile lambda-ingest --arm64 \
  --output-format zip --lambda-dir "$lambda_dir" -p otlp2parquet-ingest-lambda
run cargo lambda build --manifest-path "$root/Cargo.toml" --locked --profile lambda --arm64 \
  --output-format zip --lambda-dir "$lambda_dir" -p otlp2parquet-compactor-lambda -p otlp2parquet-committer-lambda

echo "==> the CDK app"
run npm --prefix "$infra" ci --no-audit --no-fund --loglevel=error
run npm --prefix "$infra" run build

cdk() { (cd "$infra" && run npx cdk "$@"); }
echo "==> CDK bootstrap (creates nothing when the account and region already have it)"
cdk bootstrap "${context[@]}" -c "lambdaDir=$lambda_dir"

echo "==> deploy"
cdk deploy Otlp2Parquet --require-approval never --outputs-file "$infra/outputs.json" \
  "${context[@]}" -c "lambdaDir=$lambda_dir"

if [ "$dry_run" = false ]; then
  echo
  echo "Deployed. Outputs in $infra/outputs.json; try it with infra/smoke.sh."
fi
