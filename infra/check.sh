#!/usr/bin/env bash
# Offline checks of infra/ (run by scripts/test.sh): the CDK app's tests, `cdk
# synth` of each mode, cfn-lint and checkov on every synthesised template and on
# the committed one, bash -n and shellcheck on the scripts, and deploy.sh
# --dry-run with no AWS credentials. Installs what it needs: npm packages
# (infra/node_modules), the linters (.venv-infra), shellcheck (Debian).
set -euo pipefail
infra="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$infra")"
cd "$infra"

step() { printf '\n==> infra: %s\n' "$*"; }

step "npm ci"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

step "linters (cfn-lint, checkov) in .venv-infra"
venv="$root/.venv-infra"
stamp="$venv/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
if ! command -v shellcheck >/dev/null; then
  step "shellcheck (Debian)"
  apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null
fi

step "tests of the CDK app (node --test)"
npm test --silent

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
templates=("$infra/cloudformation/otlp2parquet.template.json")
for variant in "mode=s3tables auth=iam" "mode=s3tables auth=token" "mode=plain auth=iam"; do
  step "cdk synth ($variant), offline"
  dir="$out/${variant// /-}"
  args=(-c codeSource=parameters)
  for setting in $variant; do args+=(-c "$setting"); done
  npx cdk synth --quiet --no-notices --no-version-reporting -o "$dir" "${args[@]}"
  templates+=("$dir/Otlp2Parquet.template.json")
done

step "cfn-lint (no errors; W3005, CDK's own DependsOn beside a GetAtt, is harmless)"
for t in "${templates[@]}"; do
  rc=0
  "$venv/bin/cfn-lint" --ignore-checks W3005 -- "$t" || rc=$?
  # cfn-lint: 0 clean, 4 warnings only, 2 errors (and combinations thereof).
  if [ $((rc & 3)) -ne 0 ]; then echo "cfn-lint found errors in $t" >&2; exit 1; fi
done

step "checkov (every failed check is skipped with its reason in lib/checkov.ts)"
# BC_SKIP_MAPPING: checkov would fetch its guidelines from the network (none here).
for t in "${templates[@]}"; do
  BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --quiet --compact --framework cloudformation -f "$t"
done

step "bash -n and shellcheck on the scripts"
for s in "$infra"/*.sh "$root"/scripts/*.sh; do bash -n "$s"; done
(cd "$root" && shellcheck -x infra/*.sh scripts/*.sh)

step "deploy.sh --dry-run, with no AWS credentials"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
  "$infra/deploy.sh" --dry-run -c auth=token > "$out/dry-run.txt"
grep -q 'cdk deploy Otlp2Parquet' "$out/dry-run.txt"
grep -q 'cargo lambda build .*--arm64 --output-format zip' "$out/dry-run.txt"
echo "infra: all checks passed"
