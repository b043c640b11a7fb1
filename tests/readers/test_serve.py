"""`otlp2parquet serve` end to end: real OTLP clients in, Iceberg tables out.

Starts the real binary on a free loopback port, sends data with the OpenTelemetry
Python SDK's OTLP/HTTP exporters (protobuf, also gzip) and with plain HTTP posts
of generated payloads, then reads the tables back with PyIceberg and checks that
every acknowledged record is there exactly once — also across a shutdown.
"""

import gzip
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from cli import BIN
from otel_sdk import send_with_python_sdk
from pyiceberg.catalog.sql import SqlCatalog


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, warehouse, flush="0.5", extra=()):
        self.port = free_port()
        self.warehouse = warehouse
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--warehouse", str(warehouse),
             "--flush-interval", flush, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RUST_LOG": "warn"})
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start: " + self.proc.stderr.read())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path, body, content_type, gz=False):
        headers = {"Content-Type": content_type}
        if gz:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        req = urllib.request.Request(self.url(path), data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


def catalog(wh):
    return SqlCatalog("otlp2parquet", uri=f"sqlite:///{wh}/catalog.db", warehouse=f"file://{wh}")


def rows(wh, table):
    cat = catalog(wh)
    try:
        return cat.load_table(f"otel.{table}").scan().to_arrow()
    except Exception:  # table not created yet
        return None


def wait_for_rows(wh, table, expected, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = rows(wh, table)
        if got is not None and got.num_rows >= expected:
            return got
        time.sleep(0.3)
    got = rows(wh, table)
    raise AssertionError(f"{table}: {0 if got is None else got.num_rows} rows, expected {expected}")


def generate(tmp_path, signal_name, records, fmt):
    out = tmp_path / f"{signal_name}.{fmt}"
    subprocess.run([BIN, "generate", "--signal", signal_name, "--records", str(records),
                    "--format", fmt, "--out", str(out)], check=True,
                   env={**os.environ, "RUST_LOG": "warn"})
    return out.read_bytes()


def test_python_sdk_exporters(tmp_path):
    wh = tmp_path / "wh"
    server = Server(wh)
    try:
        send_with_python_sdk(server.url(""), "sdk-test")

        spans = wait_for_rows(wh, "traces", 120)
        assert spans.num_rows == 120
        assert set(spans.column("ServiceName").to_pylist()) == {"sdk-test"}
        assert sorted(set(spans.column("SpanName").to_pylist())) == ["op-0", "op-1", "op-2"]
        assert all(len(e) == 1 for e in spans.column("Events").to_pylist())
        logs = wait_for_rows(wh, "logs", 75)
        assert logs.num_rows == 75
        bodies = set(logs.column("Body").to_pylist())
        assert "record 7 ünïcødé" in bodies and len(bodies) == 75
        assert {dict(a).get("request.id") for a in logs.column("LogAttributes").to_pylist()} == {f"r{i}" for i in range(75)}
        sums = wait_for_rows(wh, "metrics_sum", 2)
        assert sorted(sums.column("IntValue").to_pylist()) == [5, 5]
        hist = wait_for_rows(wh, "metrics_histogram", 2)
        assert sum(hist.column("Count").to_pylist()) == 10
    finally:
        code, _, err = server.stop()
    assert code == 0, err


def test_generated_payloads_and_shutdown_flush(tmp_path):
    wh = tmp_path / "wh"
    # A long flush interval: only the shutdown commit can make these rows visible.
    server = Server(wh, flush="3600")
    try:
        status, body = server.post("/v1/logs", generate(tmp_path, "logs", 400, "pb"), "application/x-protobuf", gz=True)
        assert status == 200
        status, body = server.post("/v1/traces", generate(tmp_path, "traces", 300, "json"), "application/json")
        assert (status, body) == (200, b"{}")
        status, _ = server.post("/v1/metrics", generate(tmp_path, "metrics", 500, "pb"), "application/x-protobuf")
        assert status == 200
        assert rows(wh, "logs") is None, "committed before the flush interval"
    finally:
        code, out, err = server.stop()
    assert code == 0, err
    assert "listening on" in out
    assert rows(wh, "logs").num_rows == 400
    assert rows(wh, "traces").num_rows == 300
    metric_rows = sum(rows(wh, t).num_rows for t in (
        "metrics_gauge", "metrics_sum", "metrics_histogram", "metrics_exponential_histogram", "metrics_summary"))
    assert metric_rows == 500
    listing = subprocess.run([BIN, "tables", "--warehouse", str(wh)], capture_output=True, text=True, check=True).stdout
    assert "otel.logs" in listing and " 400 " in listing


def start_and_wait_for_crash(wh, point, body, content_type):
    """Starts a server set to abort at `point`, sends one request, waits for the abort.
    Returns the HTTP status the client saw (None when the connection died)."""
    port = free_port()
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--warehouse", str(wh), "--flush-interval", "0.3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "RUST_LOG": "warn", "OTLP2PARQUET_CRASH_AT": point})
    server = Server.__new__(Server)
    server.port, server.proc, server.warehouse = port, proc, wh
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(server.url("/health"), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    status = None
    try:
        status, _ = server.post("/v1/logs", body, content_type)
    except OSError:
        pass  # the server died mid-request: the client saw no answer
    proc.wait(timeout=30)
    assert proc.returncode != 0, f"{point}: the server did not crash"
    assert point in proc.stderr.read()
    return status


@pytest.mark.parametrize("point", [
    "ingest-after-wal-append",
    "ingest-after-raw-write",
    "ingest-after-enqueue",
    "compact-mid-way",
    "compact-after-write",
    "compact-after-send",
    "commit-before-catalog-commit",
    "commit-after-catalog-commit",
])
def test_crash_at_every_stage_boundary(tmp_path, point):
    """Kill the server at a stage boundary, restart it: every acknowledged record is
    committed exactly once; unacknowledged ones are committed at most once without a
    client retry, and exactly once with it. After the restart new data arrives with
    the redelivered messages, so the retried work is grouped differently than the
    first attempt's."""
    wh = tmp_path / "wh"
    body = generate(tmp_path, "logs", 250, "pb")
    status = start_and_wait_for_crash(wh, point, body, "application/x-protobuf")
    more = tmp_path / "more.pb"
    subprocess.run([BIN, "generate", "--signal", "logs", "--records", "100", "--seed", "7",
                    "--out", str(more)], check=True, env={**os.environ, "RUST_LOG": "warn"})
    server = Server(wh, flush="0.3")
    try:
        assert server.post("/v1/logs", more.read_bytes(), "application/x-protobuf")[0] == 200
        if status != 200:
            # Not acknowledged: an OTLP client retries, as this one does now.
            retry_status, _ = server.post("/v1/logs", body, "application/x-protobuf")
            assert retry_status == 200
        expected = 350
        if status != 200 and point in ("ingest-after-wal-append", "ingest-after-enqueue"):
            # The first attempt was durable before the crash although the client
            # never heard so: its retry is a second, distinct delivery.
            expected = 600
        table = wait_for_rows(wh, "logs", expected)
        time.sleep(1.0)  # a few more flushes: nothing may be added twice
        table = rows(wh, "logs")
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert table.num_rows == expected, point
    if point != "ingest-after-wal-append":
        # The crash came after the client had its answer.
        assert status == 200
        # Redelivered messages did not add their files again.
        keys = list(zip(table.column("Timestamp").to_pylist(), table.column("Body").to_pylist()))
        assert len(set(keys)) == len(keys)


def test_concurrent_clients_lose_and_double_nothing(tmp_path):
    """Many concurrent clients for a bounded time: every acknowledged record is in the
    table exactly once, and commits never conflict (one committer)."""
    import concurrent.futures

    wh = tmp_path / "wh"
    server = Server(wh, flush="0.5")
    payloads = []
    for seed in range(8):
        out = tmp_path / f"logs-{seed}.pb"
        subprocess.run([BIN, "generate", "--signal", "logs", "--records", "200", "--seed", str(seed),
                        "--out", str(out)], check=True, env={**os.environ, "RUST_LOG": "warn"})
        payloads.append(out.read_bytes())
    acknowledged = 0
    deadline = time.time() + 5

    def client(i):
        sent = 0
        while time.time() < deadline:
            status, _ = server.post("/v1/logs", payloads[i % len(payloads)], "application/x-protobuf")
            assert status == 200
            sent += 200
        return sent

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            acknowledged = sum(pool.map(client, range(16)))
        wait_for_rows(wh, "logs", acknowledged, timeout=60)
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert acknowledged > 0
    assert rows(wh, "logs").num_rows == acknowledged


def test_dead_letter_queue_show_and_replay(tmp_path):
    """A raw-file message that keeps failing ends in the DLQ after five receives;
    `dlq show` lists it and `dlq replay` puts it back in line."""
    import json
    import sqlite3

    wh = tmp_path / "wh"
    server = Server(wh, flush="0.2")
    try:
        status, _ = server.post("/v1/logs", generate(tmp_path, "logs", 50, "pb"), "application/x-protobuf")
        assert status == 200
        wait_for_rows(wh, "logs", 50)
    finally:
        server.stop()
    # A message for a table this version does not know: every compaction of it fails.
    con = sqlite3.connect(wh / "queues.db")
    con.execute(
        "INSERT INTO queue_messages (queue, id, body, visible_at_ms) VALUES ('raw-files', 'm-missing', ?, 0)",
        (json.dumps({"files": [{"table": "profiles", "key": "otel/profiles/data/raw/Timestamp_day=2026-01-01/missing.parquet",
                                "day": 20454, "rows": 30, "bytes": 1}]}),))
    con.commit()
    con.close()
    server = Server(wh, flush="0.1")
    try:
        deadline = time.time() + 60
        out = ""
        while time.time() < deadline and "m-missing" not in out:
            time.sleep(0.3)
            out = subprocess.run([BIN, "dlq", "show", "--warehouse", str(wh)],
                                 capture_output=True, text=True, check=True).stdout
        assert "1 message(s) in raw-files-dlq" in out and "missing.parquet" in out, out
    finally:
        server.stop()
    assert rows(wh, "logs").num_rows == 50, "the failing message changed nothing"
    out = subprocess.run([BIN, "dlq", "replay", "--warehouse", str(wh)], capture_output=True, text=True, check=True).stdout
    assert "moved 1 message(s) from raw-files-dlq" in out
    out = subprocess.run([BIN, "dlq", "show", "--warehouse", str(wh)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("0 message(s)")


def test_javascript_sdk_json_exporters(tmp_path):
    """The JavaScript SDK sends OTLP/HTTP JSON (chunked); every record arrives once."""
    js = os.path.join(os.path.dirname(__file__), "..", "js")
    if not os.path.isdir(os.path.join(js, "node_modules")):
        pytest.fail("tests/js/node_modules is missing: scripts/test.sh installs it with `npm ci`")
    wh = tmp_path / "wh"
    server = Server(wh, flush="0.3")
    try:
        subprocess.run(["node", "send.mjs", server.url(""), "90", "40"], cwd=js, check=True, timeout=120)
        spans = wait_for_rows(wh, "traces", 90)
        logs = wait_for_rows(wh, "logs", 40)
        sums = wait_for_rows(wh, "metrics_sum", 2)
        gauges = wait_for_rows(wh, "metrics_gauge", 1)
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert spans.num_rows == 90 and logs.num_rows == 40
    assert set(spans.column("ServiceName").to_pylist()) == {"js-sdk-test"}
    assert sorted(logs.column("Body").to_pylist()) == sorted(f"js record {i}" for i in range(40))
    attrs = dict(logs.column("LogAttributes")[0].as_py())
    assert attrs["nested"] == '{"k":"v"}'
    # JavaScript counters are doubles (asDouble). forceFlush and shutdown each
    # export a collection: cumulative points at two times, each point once.
    assert set(sums.column("Value").to_pylist()) == {3.0}
    points = list(zip(sums.column("TimeUnix").to_pylist(), [str(a) for a in sums.column("Attributes").to_pylist()]))
    assert len(points) % 2 == 0 and len(set(points)) == len(points)
    assert set(gauges.column("Value").to_pylist()) == {25.0}


def test_the_printed_curl_command_works_as_written(tmp_path):
    """The start-up banner's curl example, run by a shell exactly as printed, lands a log record."""
    wh = tmp_path / "wh"
    server = Server(wh, flush="0.2")
    try:
        lines = []
        while not any(line.startswith("  curl") for line in lines):
            lines.append(server.proc.stdout.readline())
        start = next(i for i, line in enumerate(lines) if line.startswith("  curl"))
        command = lines[start].rstrip("\n")
        while command.endswith("\\"):
            start += 1
            lines.append(server.proc.stdout.readline())
            command = command[:-1] + lines[start].rstrip("\n")
        done = subprocess.run(["bash", "-c", command + " --fail --silent"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "{}"
        table = wait_for_rows(wh, "logs", 1)
        assert table.column("Body").to_pylist() == ["hello"]
        assert table.column("ServiceName").to_pylist() == ["demo"]
    finally:
        code, _, err = server.stop()
    assert code == 0, err


def duckdb_with_iceberg():
    import duckdb
    from duckdb_extensions import import_extension
    con = duckdb.connect()
    import_extension("avro", con=con)  # before iceberg, or it tries to download avro
    import_extension("iceberg", con=con)
    return con


def query(wh, sql):
    return subprocess.run([BIN, "query", "--warehouse", str(wh), sql],
                          capture_output=True, text=True, check=True).stdout


def test_serve_tables_read_by_duckdb_pyiceberg_and_query(tmp_path):
    """Generated payloads (the SDKs send no summary points) through serve: DuckDB's
    iceberg_scan, PyIceberg and `otlp2parquet query` all see every record once, in
    compacted files only."""
    wh = tmp_path / "wh"
    server = Server(wh, flush="0.3")
    try:
        for seed in range(3):
            out = tmp_path / f"metrics-{seed}.pb"
            subprocess.run([BIN, "generate", "--signal", "metrics", "--records", "500", "--seed", str(seed),
                            "--out", str(out)], check=True, env={**os.environ, "RUST_LOG": "warn"})
            assert server.post("/v1/metrics", out.read_bytes(), "application/x-protobuf")[0] == 200
        assert server.post("/v1/logs", generate(tmp_path, "logs", 700, "pb"), "application/x-protobuf")[0] == 200
        wait_for_rows(wh, "logs", 700)
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    con = duckdb_with_iceberg()
    cat = catalog(wh)
    total = 0
    for table in ("metrics_gauge", "metrics_sum", "metrics_histogram", "metrics_exponential_histogram",
                  "metrics_summary", "logs"):
        t = cat.load_table(f"otel.{table}")
        py = t.scan().to_arrow().num_rows
        duck = con.sql(f"SELECT count(*) FROM iceberg_scan('{t.metadata_location}')").fetchone()[0]
        ours = int(query(wh, f"SELECT count(*) AS n FROM {table}").split("|")[-2].strip())
        assert py == duck == ours > 0, table
        for task in t.scan().plan_files():
            path = task.file.file_path
            assert "/data/raw/" not in path, f"{table}: a raw file was committed: {path}"
        if table != "logs":
            total += py
    assert total == 1500
    summary = cat.load_table("otel.metrics_summary").metadata_location
    quantiles = con.sql(
        f"SELECT min(len(ValueAtQuantiles)), max(ValueAtQuantiles[1].Quantile) "
        f"FROM iceberg_scan('{summary}')").fetchone()
    assert quantiles[0] > 0 and 0.0 <= quantiles[1] <= 1.0, quantiles
    # Every raw file was compacted and deleted.
    assert not list(wh.glob("otel/*/data/raw/**/*.parquet"))
    # The query command reads map values and sorts like SQL users expect.
    by_service = query(wh, "SELECT ServiceName, count(*) AS n FROM logs GROUP BY ServiceName ORDER BY ServiceName")
    assert "service-00" in by_service


def test_plain_parquet_mode(tmp_path):
    """--catalog none: compacted Parquet files and no catalog; DuckDB reads them all once."""
    import duckdb
    wh = tmp_path / "wh"
    server = Server(wh, flush="0.3", extra=("--catalog", "none"))
    try:
        assert server.post("/v1/logs", generate(tmp_path, "logs", 600, "pb"), "application/x-protobuf")[0] == 200
        assert server.post("/v1/traces", generate(tmp_path, "traces", 200, "json"), "application/json")[0] == 200
    finally:
        code, out, err = server.stop()
    assert code == 0, err
    assert "plain Parquet" in out
    assert not (wh / "catalog.db").exists()
    assert not list(wh.glob("otel/*/data/raw/**/*.parquet")), "raw files left behind"
    con = duckdb.connect()
    logs = con.sql(f"SELECT count(*) FROM read_parquet('{wh}/otel/logs/data/*/*.parquet')").fetchone()[0]
    assert logs == 600
    spans = con.sql(f"SELECT count(*) FROM read_parquet('{wh}/otel/traces/data/*/*.parquet')").fetchone()[0]
    assert spans == 200


def test_slow_bodies_time_out_over_a_real_socket(tmp_path):
    """Slowloris: clients that send headers and part of a body, then stall, get 408
    once the body timeout passes, leave nothing behind, and do not keep an ordinary
    client from being served meanwhile."""
    wh = tmp_path / "wh"
    server = Server(wh, flush="0.2", extra=("--body-timeout", "1"))
    slow = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                      b"Content-Length: 100000\r\n\r\n" + b"\x0a" * 10)
            slow.append(s)
        started = time.time()
        status, _ = server.post("/v1/logs", generate(tmp_path, "logs", 20, "pb"), "application/x-protobuf")
        assert status == 200
        assert time.time() - started < 1.0, "an ordinary request waited for the slow ones"
        for s in slow:
            answer = s.recv(4096).decode("latin-1")
            assert answer.startswith("HTTP/1.1 408"), answer
        elapsed = time.time() - started
        assert elapsed < 5, f"slow bodies were cut after {elapsed:.1f} s, expected about 1 s"
        wait_for_rows(wh, "logs", 20)
    finally:
        for s in slow:
            s.close()
        code, _, err = server.stop()
    assert code == 0, err
    assert rows(wh, "logs").num_rows == 20, "a cut-off body wrote nothing"


def test_serve_commits_to_an_iceberg_rest_catalog(tmp_path):
    """OTLP2PARQUET_ICEBERG_REST_URI: serve creates its tables in and commits to a REST
    catalog (rustberg, started here); PyIceberg's RestCatalog reads every record once."""
    from pyiceberg.catalog.rest import RestCatalog
    rustberg = os.environ.get("RUSTBERG_BIN", os.path.expanduser("~/.cache/otlp2parquet/rustberg/bin/rustberg"))
    wh = tmp_path / "wh"
    wh.mkdir()
    port = free_port()
    catalog_proc = subprocess.Popen(
        [rustberg, "--dev", "--no-auth", "--insecure-http", "--host", "127.0.0.1", "--port", str(port),
         "--catalog-url", "memory://", "--warehouse", f"file://{wh}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{uri}/v1/config", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        os.environ["OTLP2PARQUET_ICEBERG_REST_URI"] = uri
        try:
            server = Server(wh, flush="0.3")
        finally:
            del os.environ["OTLP2PARQUET_ICEBERG_REST_URI"]
        try:
            assert server.post("/v1/logs", generate(tmp_path, "logs", 300, "pb"), "application/x-protobuf")[0] == 200
            assert server.post("/v1/traces", generate(tmp_path, "traces", 120, "json"), "application/json")[0] == 200
        finally:
            code, out, err = server.stop()
        assert code == 0, err
        assert f"REST {uri}" in out
        assert not (wh / "catalog.db").exists(), "the embedded catalog was used"
        rest = RestCatalog("rest", uri=uri)
        logs = rest.load_table("otel.logs").scan().to_arrow()
        assert logs.num_rows == 300
        keys = list(zip(logs.column("Timestamp").to_pylist(), logs.column("Body").to_pylist()))
        assert len(set(keys)) == len(keys)
        assert rest.load_table("otel.traces").scan().to_arrow().num_rows == 120
    finally:
        catalog_proc.terminate()
        catalog_proc.wait(timeout=30)


def test_the_readme_curl_and_query_commands_work(tmp_path):
    """The README's curl line, run by a shell as written (only the port differs), lands its
    record; the README's `query` example then sees it."""
    import pathlib
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    curl = next(line for line in readme.splitlines() if line.startswith("curl -X POST http://127.0.0.1:4318/"))
    wh = tmp_path / "wh"
    server = Server(wh, flush="0.2")
    try:
        command = curl.replace("127.0.0.1:4318", f"127.0.0.1:{server.port}")
        done = subprocess.run(["bash", "-c", command + " --fail --silent"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        wait_for_rows(wh, "logs", 1)
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    example = next(line for line in readme.splitlines() if line.startswith("cargo run --release -- query "))
    sql = example.split("query ", 1)[1].strip().strip('"')
    out = query(wh, sql)
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines() if line.startswith("|")]
    assert ["readme", "1"] in cells, out
