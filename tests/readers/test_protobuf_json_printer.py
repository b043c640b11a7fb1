"""Bodies written by protobuf's own JSON printer are accepted, ids and all.

The proto3 JSON mapping writes `bytes` fields as base64, so a producer that
serializes the OTLP messages with protobuf's `json_format` (rather than an OTLP
exporter) sends `"traceId": "W47/95gDgQPSabYzgT/GDA=="`. The request here is
built with the OpenTelemetry protobuf classes and printed by
`google.protobuf.json_format`; the ids read back from the Parquet file must be
the bytes that were set, in hex.
"""

import json

import pyarrow.parquet as pq
from cli import run, run_unchecked
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("0102030405060708")
START = 1_767_225_600_000_000_000


def printed(message):
    body = json_format.MessageToJson(message)
    # The printer's own choice, not ours: base64 ids.
    assert '"traceId": "W47/95gDgQPSabYzgT/GDA=="' in body
    return body


def test_spans_printed_by_protobuf_keep_their_ids(tmp_path):
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    span = scope.spans.add()
    span.trace_id, span.span_id, span.parent_span_id = TRACE_ID, SPAN_ID, PARENT_ID
    span.name = "GET /"
    span.start_time_unix_nano, span.end_time_unix_nano = START, START + 1_000
    link = span.links.add()
    link.trace_id, link.span_id = TRACE_ID, PARENT_ID
    (tmp_path / "spans.json").write_text(printed(request))
    run("convert", "--signal", "traces", "spans.json", "--out", "out", cwd=tmp_path)
    row = pq.read_table(tmp_path / "out" / "traces.parquet").to_pylist()[0]
    assert row["TraceId"] == TRACE_ID.hex()
    assert row["SpanId"] == SPAN_ID.hex()
    assert row["ParentSpanId"] == PARENT_ID.hex()
    assert [(l["TraceId"], l["SpanId"]) for l in row["Links"]] == [
        (TRACE_ID.hex(), PARENT_ID.hex())]


def test_log_records_printed_by_protobuf_keep_their_ids(tmp_path):
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.trace_id, record.span_id = TRACE_ID, SPAN_ID
    record.time_unix_nano = START
    record.body.string_value = "hello"
    (tmp_path / "logs.json").write_text(printed(request))
    run("convert", "--signal", "logs", "logs.json", "--out", "out", cwd=tmp_path)
    row = pq.read_table(tmp_path / "out" / "logs.parquet").to_pylist()[0]
    assert (row["TraceId"], row["SpanId"]) == (TRACE_ID.hex(), SPAN_ID.hex())


def test_ids_of_other_lengths_are_still_refused(tmp_path):
    # 20 base64 characters decode to 15 bytes: no id has that length, and a
    # guess would corrupt data, so the request is refused with the path.
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "W47/95gDgQPSabYzgT/G", "spanId": "7uGbfsPBsXQ=",
        "startTimeUnixNano": str(START), "endTimeUnixNano": str(START + 1)}]}]}]}
    (tmp_path / "bad.json").write_text(json.dumps(body))
    result = run_unchecked("convert", "--signal", "traces", "bad.json", "--out", "out",
                           cwd=tmp_path)
    assert result.returncode != 0
    assert not (tmp_path / "out" / "traces.parquet").exists()
    assert "traceId" in result.stderr
