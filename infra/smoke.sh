#!/usr/bin/env bash
# Checks a deployed stack end to end: sends OTLP logs, traces and metrics to its
# endpoint (SigV4 with the current AWS credentials, or the bearer token with
# auth=token), waits for them to be committed, and counts them in the tables
# with DuckDB through the S3 Tables Iceberg endpoint.
#
# Usage: infra/smoke.sh [OUTPUTS_JSON]   (default: infra/outputs.json, written by deploy.sh)
# Needs: curl (7.75+, for --aws-sigv4), python3; AWS credentials in the
# environment (`eval "$(aws configure export-credentials --format env)"` turns a
# profile into variables); with auth=token, OTLP2PARQUET_TOKEN.
set -euo pipefail
infra="$(cd "$(dirname "$0")" && pwd)"
outputs="${1:-$infra/outputs.json}"
[ -f "$outputs" ] || { echo "smoke.sh: $outputs is missing: run infra/deploy.sh first" >&2; exit 2; }

venv="$infra/.venv-smoke"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check duckdb==1.5.5
fi
output() { "$venv/bin/python" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(next(iter(d.values())).get(sys.argv[2], ""))' "$outputs" "$1"; }
endpoint=$(output OtlpEndpoint)
warehouse=$(output TableBucketArn)
namespace=$(output Namespace)
[ -n "$endpoint" ] || { echo "smoke.sh: no OtlpEndpoint in $outputs" >&2; exit 2; }
[ -n "$warehouse" ] || { echo "smoke.sh: no TableBucketArn in $outputs (plain mode: list the bucket instead)" >&2; exit 2; }
region=$(cut -d: -f4 <<<"$warehouse")

if [ -n "${OTLP2PARQUET_TOKEN:-}" ]; then
  auth=(-H "Authorization: Bearer $OTLP2PARQUET_TOKEN")
else
  : "${AWS_ACCESS_KEY_ID:?set AWS credentials (or OTLP2PARQUET_TOKEN for auth=token)}"
  auth=(--aws-sigv4 "aws:amz:$region:execute-api" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
  [ -z "${AWS_SESSION_TOKEN:-}" ] || auth+=(-H "x-amz-security-token: $AWS_SESSION_TOKEN")
fi

# One service name per run, so counts are this run's only.
run="smoke-$(date +%s)-$$"
now=$(date +%s)000000000
records=20
resource="{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"$run\"}}]}"
logs="" spans="" points=""
for i in $(seq 1 "$records"); do
  sep=,
  [ "$i" -gt 1 ] || sep=
  logs+="$sep{\"timeUnixNano\":\"$now\",\"severityText\":\"INFO\",\"body\":{\"stringValue\":\"smoke log $i\"}}"
  spans+="$sep{\"traceId\":\"$(printf '%032x' "$i")\",\"spanId\":\"$(printf '%016x' "$i")\",\"name\":\"smoke $i\",\"kind\":1,\"startTimeUnixNano\":\"$now\",\"endTimeUnixNano\":\"$now\"}"
  points+="$sep{\"timeUnixNano\":\"$now\",\"asDouble\":$i}"
done
send() {
  local path=$1 body=$2 status
  status=$(curl -sS -o /dev/stderr -w '%{http_code}' "${auth[@]}" -H 'Content-Type: application/json' \
    --data "$body" "$endpoint$path")
  echo " <- POST $path: $status"
  [ "$status" = 200 ] || { echo "smoke.sh: $path answered $status" >&2; exit 1; }
}
send /v1/logs "{\"resourceLogs\":[{\"resource\":$resource,\"scopeLogs\":[{\"logRecords\":[$logs]}]}]}"
send /v1/traces "{\"resourceSpans\":[{\"resource\":$resource,\"scopeSpans\":[{\"spans\":[$spans]}]}]}"
send /v1/metrics "{\"resourceMetrics\":[{\"resource\":$resource,\"scopeMetrics\":[{\"metrics\":[{\"name\":\"smoke.gauge\",\"gauge\":{\"dataPoints\":[$points]}}]}]}]}"

echo "waiting for the commit (the compaction window and the commit wait: up to about 10 minutes with the defaults)..."
"$venv/bin/python" - "$warehouse" "$namespace" "$run" "$records" <<'PY'
import sys, time
import duckdb
warehouse, namespace, run, records = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = duckdb.connect()
for statement in ["INSTALL aws", "INSTALL httpfs", "INSTALL iceberg", "LOAD aws", "LOAD httpfs", "LOAD iceberg",
                  "CREATE SECRET (TYPE s3, PROVIDER credential_chain)",
                  f"ATTACH '{warehouse}' AS tables (TYPE iceberg, ENDPOINT_TYPE s3_tables)"]:
    con.execute(statement)
deadline = time.time() + 900
counts = {}
while time.time() < deadline:
    counts = {}
    for table in ("logs", "traces", "metrics_gauge"):
        try:
            counts[table] = con.execute(
                f'SELECT count(*) FROM tables.{namespace}.{table} WHERE "ServiceName" = ?', [run]).fetchone()[0]
        except duckdb.Error:
            counts[table] = 0  # not created yet
    print("  ", counts, flush=True)
    if all(n >= records for n in counts.values()):
        break
    time.sleep(20)
    con.execute("DETACH tables")
    con.execute(f"ATTACH '{warehouse}' AS tables (TYPE iceberg, ENDPOINT_TYPE s3_tables)")
if counts != {t: records for t in counts}:
    sys.exit(f"smoke.sh: expected {records} rows in each table, found {counts}")
print(f"smoke.sh: {records} logs, spans and gauge points sent and read back once each")
PY
