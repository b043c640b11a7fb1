"""Parquet files written by `otlp2parquet convert`, read by PyArrow and DuckDB.

The expected values come from the OTLP JSON input itself (parsed here with the
standard library), not from our code, so these tests check our files against
two independent readers and an independent reading of the input.
"""

import json

import duckdb
import pyarrow.parquet as pq
import pytest
from cli import run


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Generates JSON input for every signal and converts it; returns (dir, inputs)."""
    d = tmp_path_factory.mktemp("readers")
    inputs = {}
    for signal, records in [("logs", 500), ("traces", 400), ("metrics", 1000)]:
        run("generate", "--signal", signal, "--records", str(records), "--format", "json",
            "--out", f"{signal}.json", cwd=d)
        run("convert", "--signal", signal, f"{signal}.json", "--out", "out", cwd=d)
        inputs[signal] = json.loads((d / f"{signal}.json").read_text())
    return d / "out", inputs


def log_records(request):
    for rl in request["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for rec in sl["logRecords"]:
                yield rl, rec


def spans(request):
    for rs in request["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            yield from ss["spans"]


def service_name(resource):
    for kv in resource["resource"]["attributes"]:
        if kv["key"] == "service.name":
            return kv["value"]["stringValue"]
    return ""


def test_pyarrow_reads_logs(tables):
    out, inputs = tables
    table = pq.read_table(out / "logs.parquet")
    records = list(log_records(inputs["logs"]))
    assert table.num_rows == len(records)
    assert table.column_names[:4] == ["Timestamp", "ObservedTimestamp", "TraceId", "SpanId"]
    assert "ServiceName" in table.column_names and "LogAttributes" in table.column_names
    # Every column carries an Iceberg field id.
    for field in table.schema:
        assert b"PARQUET:field_id" in (field.metadata or {}), field.name
    rows = table.to_pylist()
    for (resource, rec), row in zip(records, rows):
        assert row["Body"] == rec["body"]["stringValue"]
        assert row["TraceId"] == rec.get("traceId", "")
        assert row["ServiceName"] == service_name(resource)
        assert int(row["Timestamp"].timestamp() * 1_000_000) == int(rec["timeUnixNano"]) // 1000
        attrs = dict(row["LogAttributes"])
        assert attrs["http.route"] == next(
            kv["value"]["stringValue"] for kv in rec["attributes"] if kv["key"] == "http.route")


def test_duckdb_reads_every_table(tables):
    out, inputs = tables
    con = duckdb.connect()
    expected_logs = len(list(log_records(inputs["logs"])))
    expected_spans = len(list(spans(inputs["traces"])))
    assert con.sql(f"SELECT count(*) FROM '{out}/logs.parquet'").fetchone()[0] == expected_logs
    assert con.sql(f"SELECT count(*) FROM '{out}/traces.parquet'").fetchone()[0] == expected_spans

    # Map lookups and nested lists work as users will write them.
    first = next(spans(inputs["traces"]))
    row = con.sql(
        f"SELECT SpanName, Duration, len(Events), SpanAttributes['http.request.method'] "
        f"FROM '{out}/traces.parquet' WHERE SpanId = '{first['spanId']}'").fetchone()
    method = next(kv["value"]["stringValue"] for kv in first["attributes"]
                  if kv["key"] == "http.request.method")
    assert row == (first["name"],
                   int(first["endTimeUnixNano"]) - int(first["startTimeUnixNano"]),
                   len(first.get("events", [])), method)

    # Every metric data point is in exactly one of the five metric tables.
    counts = {}
    for rm in inputs["metrics"]["resourceMetrics"]:
        for sm in rm["scopeMetrics"]:
            for m in sm["metrics"]:
                kind = next(k for k in ("gauge", "sum", "histogram", "exponentialHistogram", "summary") if k in m)
                counts[kind] = counts.get(kind, 0) + len(m[kind]["dataPoints"])
    names = {"gauge": "metrics_gauge", "sum": "metrics_sum", "histogram": "metrics_histogram",
             "exponentialHistogram": "metrics_exponential_histogram", "summary": "metrics_summary"}
    for kind, n in counts.items():
        got = con.sql(f"SELECT count(*) FROM '{out}/{names[kind]}.parquet'").fetchone()[0]
        assert got == n, kind
    total = con.sql(
        f"SELECT sum(list_sum(BucketCounts)) = sum(Count) FROM '{out}/metrics_histogram.parquet'").fetchone()[0]
    assert total is True


def test_duckdb_sees_types_users_query_with(tables):
    out, _ = tables
    con = duckdb.connect()
    types = {r[0]: r[1] for r in con.sql(f"DESCRIBE SELECT * FROM '{out}/logs.parquet'").fetchall()}
    assert types["Timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert types["LogAttributes"] == "MAP(VARCHAR, VARCHAR)"
    assert types["TraceId"] == "VARCHAR"
    assert types["SeverityNumber"] == "INTEGER"
