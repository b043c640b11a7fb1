"""Figures of the three Lambda binaries, measured on this machine against moto.

- size: each stripped binary built with the `lambda` profile (given as arguments);
- cold start: from exec of the ingest binary (its S3 and SQS clients built at
  start-up) to its answer to a first event, under the Runtime API stand-in of
  tests/readers/lambda_stand_in.py: a `GET /health` (no AWS call: the start-up
  itself) and a small logs request (one raw file to S3, one SQS message);
- warm ingest: records/s of one environment answering ~1 MB protobuf logs
  requests one after the other (each: decode, convert, Parquet, S3 put, SQS send);
- committer: N "data files ready" messages (copies of one the compactor sent,
  each a compaction of its own) on the FIFO commit queue, drained by the
  committer binary in S3 Tables mode through the event source mapping stand-in:
  invocations, commits (snapshots), latency per invocation; once committing
  every batch, once staging 100 compactions a commit.

moto is a Python server: its answers take milliseconds that AWS's would not, so
the warm figure is a floor. Usage (scripts/bench-lambda.sh runs it):
  python scripts/bench_lambda.py MOTO_URL OTLP2PARQUET_BIN INGEST COMPACTOR COMMITTER [MESSAGES]
"""

import base64
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "readers"))

from lambda_stand_in import Function, aws_clients, drain_queue, queue_with_dlq  # noqa: E402


def event(method, path, body=b"", content_type="application/x-protobuf"):
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "bench"},
                           "accountId": "123456789012", "apiId": "bench", "requestId": uuid.uuid4().hex,
                           "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0,
                           "domainName": "bench", "domainPrefix": "bench"},
        "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
    }


def generate(records, seed):
    return subprocess.run([sys.argv[2], "generate", "--signal", "logs", "--records",
                           str(records), "--seed", str(seed), "--out", "-"],
                          check=True, capture_output=True, env={**os.environ, "RUST_LOG": "warn"}).stdout


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))]


def bench_committer(moto, ingest, compactor, committer, messages, staged):
    aws = aws_clients(moto)
    name = f"bench{uuid.uuid4().hex[:8]}"
    aws["s3"].create_bucket(Bucket=name)
    compaction_queue, _ = queue_with_dlq(aws["sqs"], f"{name}-compaction", False, 5)
    commit_queue, _ = queue_with_dlq(aws["sqs"], f"{name}-commit", True, 5)
    arn = aws["s3tables"].create_table_bucket(name=f"{name}-tables")["arn"]
    environment = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto, "OTLP2PARQUET_CATALOG": "s3tables", "OTLP2PARQUET_ICEBERG_WAREHOUSE": arn,
        "OTLP2PARQUET_STATE_URI": f"s3://{name}/pipeline", "OTLP2PARQUET_COMPACTION_QUEUE_URL": compaction_queue,
        "OTLP2PARQUET_COMMIT_QUEUE_URL": commit_queue,
    }
    if staged:
        environment["OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS"] = str(staged)
    # One real "data files ready" message: a request through ingest and compactor.
    setup = [Function("otlp2parquet-ingest", environment, path=ingest),
             Function("otlp2parquet-compactor", environment, path=compactor)]
    assert setup[0].invoke(event("POST", "/v1/logs", generate(100, 3)))["statusCode"] == 200
    drain_queue(aws["sqs"], compaction_queue, setup[1])
    for function in setup:
        function.stop()
    sample = aws["sqs"].receive_message(QueueUrl=commit_queue, MaxNumberOfMessages=1)["Messages"][0]
    aws["sqs"].delete_message(QueueUrl=commit_queue, ReceiptHandle=sample["ReceiptHandle"])
    template = json.loads(sample["Body"])
    for start in range(0, messages, 10):
        entries = []
        for i in range(start, min(messages, start + 10)):
            compaction = str(uuid.uuid4())
            entries.append({"Id": str(i - start), "MessageBody": json.dumps({**template, "compaction": compaction}),
                            "MessageGroupId": template["table"], "MessageDeduplicationId": compaction})
        aws["sqs"].send_message_batch(QueueUrl=commit_queue, Entries=entries)

    function = Function("otlp2parquet-committer", environment, path=committer)
    latencies = []
    invoke = function.invoke

    def timed(event):
        started = time.perf_counter()
        answer = invoke(event)
        latencies.append(time.perf_counter() - started)
        return answer

    function.invoke = timed
    started = time.perf_counter()
    handed, failed = drain_queue(aws["sqs"], commit_queue, function, visibility_timeout=120)
    elapsed = time.perf_counter() - started
    function.stop()
    location = aws["s3tables"].get_table_metadata_location(
        tableBucketARN=arn, namespace="otel", name=template["table"])["metadataLocation"]
    bucket, key = location.removeprefix("s3://").split("/", 1)
    metadata = json.loads(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
    mode = f"staged, {staged} compactions a commit" if staged else "a commit per batch"
    print(f"committer ({mode}): {messages} messages in {len(latencies)} invocations ({len(handed)} handed over, "
          f"{failed} handed back), {len(metadata['snapshots'])} commits, {elapsed:.0f} s; per invocation "
          f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms")


def main():
    moto, _, ingest, compactor, committer = sys.argv[1:6]
    messages = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    for path in (ingest, compactor, committer):
        print(f"size {os.path.basename(path)}: {os.path.getsize(path) / 1e6:.1f} MB "
              f"({os.path.getsize(path) / 2**20:.1f} MiB)")
    aws = aws_clients(moto)
    name = f"bench{uuid.uuid4().hex[:8]}"
    aws["s3"].create_bucket(Bucket=name)
    queue, _ = queue_with_dlq(aws["sqs"], name, False, 5)
    environment = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto, "OTLP2PARQUET_CATALOG": "none", "OTLP2PARQUET_S3_BUCKET": name,
        "OTLP2PARQUET_COMPACTION_QUEUE_URL": queue,
    }
    small = generate(1, 1)
    for label, first in (("GET /health", lambda: event("GET", "/health")),
                         ("POST /v1/logs, 1 record", lambda: event("POST", "/v1/logs", small))):
        times, inits = [], []
        for _ in range(20):
            function = Function("otlp2parquet-ingest", environment, path=ingest)
            answer = function.invoke(first())
            times.append((time.perf_counter() - function.started) * 1000)
            inits.append((function.first_poll - function.started) * 1000)
            assert answer["statusCode"] == 200, answer
            function.stop()
        times.sort()
        print(f"cold start to first answer ({label}), 20 runs: p50 {statistics.median(times):.1f} ms, "
              f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms; of which init (exec to the first "
              f"`next` call) p50 {statistics.median(inits):.1f} ms")

    records = 2000
    body = generate(records, 2)  # about 1 MB of protobuf
    function = Function("otlp2parquet-ingest", environment, path=ingest)
    function.invoke(event("GET", "/health"))
    times = []
    for _ in range(20):
        started = time.perf_counter()
        answer = function.invoke(event("POST", "/v1/logs", body))
        times.append(time.perf_counter() - started)
        assert answer["statusCode"] == 200, answer
    function.stop()
    p50 = statistics.median(times)
    print(f"warm ingest, {len(body) / 1e6:.2f} MB requests of {records} records, 20 in a row: "
          f"p50 {p50 * 1000:.0f} ms per invocation, {records / p50:,.0f} records/s "
          f"({len(body) / p50 / 1e6:.1f} MB/s)")
    bench_committer(moto, ingest, compactor, committer, messages, None)
    bench_committer(moto, ingest, compactor, committer, messages, 100)


if __name__ == "__main__":
    main()
