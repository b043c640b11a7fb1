"""Iceberg tables committed by `otlp2parquet convert --warehouse`, read by PyIceberg and DuckDB.

The tables are created and committed by the `iceberg` crate through the embedded
SQLite catalog; PyIceberg opens that same catalog file, DuckDB's iceberg extension
scans the metadata files. Expected values come from the OTLP JSON input.
"""

import json

import duckdb
import pytest
from cli import run
from duckdb_extensions import import_extension
from pyiceberg.catalog.sql import SqlCatalog


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    d = tmp_path_factory.mktemp("iceberg")
    inputs = {}
    for signal, records in [("logs", 3000), ("traces", 500), ("metrics", 1000)]:
        run("generate", "--signal", signal, "--records", str(records), "--format", "json",
            "--out", f"{signal}.json", cwd=d)
        run("convert", "--signal", signal, f"{signal}.json", "--warehouse", "wh", cwd=d)
        inputs[signal] = json.loads((d / f"{signal}.json").read_text())
    return d, d / "wh", inputs


def catalog(wh):
    # The catalog name must be the one otlp2parquet stores in the SQLite rows.
    return SqlCatalog("otlp2parquet", uri=f"sqlite:///{wh}/catalog.db", warehouse=f"file://{wh}")


def log_records(request):
    for rl in request["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            yield from sl["logRecords"]


def test_pyiceberg_reads_every_record_once(warehouse):
    _, wh, inputs = warehouse
    cat = catalog(wh)
    names = sorted(t[1] for t in cat.list_tables("otel"))
    assert names == ["logs", "metrics_exponential_histogram", "metrics_gauge", "metrics_histogram",
                     "metrics_sum", "metrics_summary", "traces"]
    table = cat.load_table("otel.logs")
    rows = table.scan().to_arrow()
    records = list(log_records(inputs["logs"]))
    assert rows.num_rows == len(records)
    # No record twice, every record's body present.
    keys = list(zip(rows.column("Timestamp").to_pylist(), rows.column("Body").to_pylist()))
    assert len(set(keys)) == len(keys)
    assert sorted(rows.column("Body").to_pylist()) == sorted(r["body"]["stringValue"] for r in records)
    # Partition pruning and filters work on our columns.
    service = rows.column("ServiceName")[0].as_py()
    filtered = table.scan(row_filter=f"ServiceName == '{service}'").to_arrow()
    assert filtered.num_rows == sum(1 for s in rows.column("ServiceName").to_pylist() if s == service)
    spec = table.spec()
    assert [f.name for f in spec.fields] == ["Timestamp_day"]
    assert [str(f.transform) for f in spec.fields] == ["day"]


def test_pyiceberg_sees_the_schema_and_sort_order(warehouse):
    _, wh, _ = warehouse
    table = catalog(wh).load_table("otel.traces")
    schema = table.schema()
    assert schema.find_field("TraceId").field_type.__class__.__name__ == "StringType"
    assert schema.find_field("Timestamp").field_type.__class__.__name__ == "TimestamptzType"
    assert [schema.find_column_name(f.source_id) for f in table.sort_order().fields] == ["ServiceName", "Timestamp"]


def test_duckdb_scans_the_tables(warehouse):
    d, wh, inputs = warehouse
    cat = catalog(wh)
    con = duckdb.connect()
    import_extension("avro", con=con)  # before iceberg, or it tries to download avro
    import_extension("iceberg", con=con)
    logs = cat.load_table("otel.logs").metadata_location
    count = con.sql(f"SELECT count(*) FROM iceberg_scan('{logs}')").fetchone()[0]
    assert count == len(list(log_records(inputs["logs"])))
    first = next(log_records(inputs["logs"]))
    route = next(kv["value"]["stringValue"] for kv in first["attributes"] if kv["key"] == "http.route")
    got = con.sql(
        f"SELECT LogAttributes['http.route'] FROM iceberg_scan('{logs}') "
        f"WHERE Timestamp = make_timestamptz({int(first['timeUnixNano']) // 1000}::BIGINT) "
        f"AND Body = ?", params=[first["body"]["stringValue"]]).fetchone()[0]
    assert got == route
    hist = cat.load_table("otel.metrics_histogram").metadata_location
    ok = con.sql(f"SELECT bool_and(list_sum(BucketCounts) = Count) FROM iceberg_scan('{hist}')").fetchone()[0]
    assert ok is True

    listing = run("tables", "--warehouse", str(wh), cwd=d)
    assert "otel.logs" in listing and str(count) in listing
