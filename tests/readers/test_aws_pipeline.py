"""The AWS pipeline end to end, on moto: real OTLP clients in, S3 Tables out, read by
tools nobody on this project wrote.

The OpenTelemetry Python SDK (protobuf, gzip) and JavaScript SDK (JSON, chunked)
export to an API Gateway HTTP API stand-in in front of the ingest function; the
compaction queue feeds the compactor function and the FIFO commit queue the
committer function, each through an event source mapping stand-in
(`lambda_stand_in.py`); the three functions are the release's own binaries,
talking to moto's S3, SQS and S3 Tables through the AWS SDK. The tables are then
read by PyIceberg (`StaticTable` on the metadata location S3 Tables reports) and
by DuckDB's iceberg extension over httpfs: every record exactly once, and a second
delivery of every message adds nothing.
"""

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

import duckdb
import pytest
from duckdb_extensions import import_extension
from lambda_stand_in import (Function, HttpApi, aws_clients, drain_queue, free_port, queue_with_dlq, send_again,
                             wait_until)
from otel_sdk import send_with_python_sdk
from pyiceberg.table import StaticTable

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


@pytest.fixture(scope="module")
def moto():
    """The moto server scripts/test.sh started, or one of our own."""
    url = os.environ.get("OTLP2PARQUET_TEST_MOTO_URL")
    if url:
        yield url
        return
    port = free_port()
    launcher = os.path.join(ROOT, "shared", "testkit", "moto_server.py")
    import sys
    proc = subprocess.Popen([sys.executable, launcher, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close(), "moto")
    yield url
    proc.kill()


class Deployment:
    """What infra/ creates, made on moto: buckets, queues with DLQs, a table bucket;
    and the three functions configured as the deployment configures them."""

    def __init__(self, endpoint, max_receives=3, functions_endpoint=None):
        self.endpoint = endpoint
        self.aws = aws_clients(endpoint)
        name = f"p{uuid.uuid4().hex[:10]}"
        self.state = f"{name}-state"
        self.aws["s3"].create_bucket(Bucket=self.state)
        sqs = self.aws["sqs"]
        self.compaction_queue, self.compaction_dlq = queue_with_dlq(sqs, f"{name}-compaction", False, max_receives)
        self.commit_queue, self.commit_dlq = queue_with_dlq(sqs, f"{name}-commit", True, max_receives)
        self.arn = self.aws["s3tables"].create_table_bucket(name=f"{name}-tables")["arn"]
        self.environment = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": functions_endpoint or endpoint,
            "OTLP2PARQUET_CATALOG": "s3tables",
            "OTLP2PARQUET_ICEBERG_WAREHOUSE": self.arn,
            "OTLP2PARQUET_STATE_URI": f"s3://{self.state}/pipeline",
            "OTLP2PARQUET_COMPACTION_QUEUE_URL": self.compaction_queue,
            "OTLP2PARQUET_COMMIT_QUEUE_URL": self.commit_queue,
        }
        self.functions = []

    def function(self, name, **extra):
        f = Function(name, {**self.environment, **extra})
        self.functions.append(f)
        return f

    def stop(self):
        for f in self.functions:
            f.stop()

    def metadata_location(self, table):
        return self.aws["s3tables"].get_table_metadata_location(
            tableBucketARN=self.arn, namespace="otel", name=table)["metadataLocation"]

    def s3_properties(self):
        return {"s3.endpoint": self.endpoint, "s3.access-key-id": "testing", "s3.secret-access-key": "testing",
                "s3.region": "us-east-1", "s3.force-virtual-addressing": "false"}

    def read(self, table):
        """The table's current rows, read by PyIceberg."""
        return StaticTable.from_metadata(self.metadata_location(table), properties=self.s3_properties()).scan().to_arrow()

    def queue_depth(self, url):
        attributes = self.aws["sqs"].get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attributes["Attributes"].values())


class FaultFront:
    """shared/testkit/aws_fault_front.py in front of moto: the functions' AWS
    endpoint, failing requests at random or by rule."""

    def __init__(self, upstream, rate):
        import sys
        self.port = free_port()
        script = os.path.join(ROOT, "shared", "testkit", "aws_fault_front.py")
        self.proc = subprocess.Popen([sys.executable, script, "--port", str(self.port), "--upstream", upstream,
                                      "--rate", str(rate)], stdout=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        wait_until(self.control, "aws_fault_front.py")

    def control(self, setting=None):
        data = None if setting is None else json.dumps(setting).encode()
        request = urllib.request.Request(f"{self.endpoint}/_faults", data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read())["injected"]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def post_until_accepted(url, body, tries=20):
    """What an OTLP exporter does with 429/502/503/504: retry (here without backoff)."""
    for _ in range(tries):
        status = post(url, body)
        if status == 200:
            return
        assert status in (429, 502, 503, 504), status
    raise AssertionError(f"not accepted after {tries} tries")


def test_otel_sdks_through_the_three_functions_into_s3_tables(moto):
    deployment = Deployment(moto)
    try:
        ingest = deployment.function("otlp2parquet-ingest")
        api = HttpApi(ingest)
        send_with_python_sdk(api.url, "lambda-sdk-test")
        js = os.path.join(ROOT, "tests", "js")
        subprocess.run(["node", "send.mjs", api.url, "40", "30"], cwd=js, check=True, timeout=120)
        api.stop()
        # Every acknowledged request left one message naming its raw files.
        assert deployment.queue_depth(deployment.compaction_queue) > 0

        compactor = deployment.function("otlp2parquet-compactor")
        sqs = deployment.aws["sqs"]
        raw_messages, failed = drain_queue(sqs, deployment.compaction_queue, compactor)
        assert raw_messages and failed == 0, compactor.output()
        committer = deployment.function("otlp2parquet-committer")
        ready_messages, failed = drain_queue(sqs, deployment.commit_queue, committer)
        assert ready_messages and failed == 0, committer.output()

        spans = deployment.read("traces")
        assert spans.num_rows == 160
        assert sorted(set(spans.column("ServiceName").to_pylist())) == ["js-sdk-test", "lambda-sdk-test"]
        assert len(set(spans.column("SpanId").to_pylist())) == 160
        logs = deployment.read("logs")
        assert logs.num_rows == 105
        bodies = logs.column("Body").to_pylist()
        assert len(set(bodies)) == 105 and "record 7 ünïcødé" in bodies and "js record 3" in bodies
        sums = deployment.read("metrics_sum").to_pylist()
        assert sorted(r["IntValue"] for r in sums if r["ServiceName"] == "lambda-sdk-test") == [5, 5]
        # JavaScript counters are doubles; forceFlush and shutdown each export
        # the cumulative points: two times, each point once.
        js_points = [(r["TimeUnix"], str(r["Attributes"])) for r in sums if r["ServiceName"] == "js-sdk-test"]
        assert {r["Value"] for r in sums if r["ServiceName"] == "js-sdk-test"} == {3.0}
        assert len(js_points) % 2 == 0 and len(set(js_points)) == len(js_points) > 0
        assert sum(deployment.read("metrics_histogram").column("Count").to_pylist()) == 10
        assert set(deployment.read("metrics_gauge").column("Value").to_pylist()) == {25.0}

        # DuckDB's iceberg extension reads the same tables from moto's S3.
        con = duckdb.connect()
        import_extension("avro", con=con)  # before iceberg, or it tries to download avro
        import_extension("iceberg", con=con)
        import_extension("httpfs", con=con)
        host = moto.removeprefix("http://")
        con.sql(f"CREATE SECRET (TYPE s3, KEY_ID 'testing', SECRET 'testing', REGION 'us-east-1', "
                f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)")
        location = deployment.metadata_location("logs")
        count, distinct = con.sql(
            f"SELECT count(*), count(DISTINCT Body) FROM iceberg_scan('{location}')").fetchone()
        assert (count, distinct) == (105, 105)
        by_service = dict(con.sql(
            f"SELECT ServiceName, count(*) FROM iceberg_scan('{deployment.metadata_location('traces')}') "
            "GROUP BY ALL").fetchall())
        assert by_service == {"lambda-sdk-test": 120, "js-sdk-test": 40}

        # Every message of both queues delivered a second time: nothing added.
        snapshots = len(StaticTable.from_metadata(location, properties=deployment.s3_properties()).snapshots())
        send_again(sqs, deployment.compaction_queue, raw_messages)
        assert drain_queue(sqs, deployment.compaction_queue, compactor)[1] == 0, compactor.output()
        send_again(sqs, deployment.commit_queue, ready_messages)
        assert drain_queue(sqs, deployment.commit_queue, committer)[1] == 0, committer.output()
        assert deployment.read("logs").num_rows == 105
        assert deployment.read("traces").num_rows == 160
        assert deployment.read("metrics_sum").num_rows == len(sums)
        logs_now = StaticTable.from_metadata(deployment.metadata_location("logs"), properties=deployment.s3_properties())
        assert len(logs_now.snapshots()) == snapshots, "a redelivered message made a commit"

        # Nothing dead-lettered, nothing left behind.
        for url in (deployment.compaction_queue, deployment.compaction_dlq, deployment.commit_queue,
                    deployment.commit_dlq):
            assert deployment.queue_depth(url) == 0, url
    finally:
        deployment.stop()


def test_the_same_stages_outside_lambda_serve_and_workers(moto, tmp_path):
    """The container form of the pipeline: `serve --compaction-queue-url` as the
    ingest stage (concurrent clients share raw files and messages), `worker compact`
    and `worker commit` (staging its commits) draining their queues with the
    functions' own handlers."""
    from cli import BIN
    from concurrent.futures import ThreadPoolExecutor

    deployment = Deployment(moto)
    env = {**os.environ, **deployment.environment, "RUST_LOG": "warn",
           "OTLP2PARQUET_SCRATCH_DIR": str(tmp_path / "scratch")}
    port = free_port()
    server = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: urllib.request.urlopen(f"{url}/health", timeout=1).close(), "serve", timeout=30)
        send_with_python_sdk(url, "lambda-sdk-test")
        body = subprocess.run([BIN, "generate", "--signal", "logs", "--records", "50", "--out", "-"],
                              check=True, capture_output=True, env={**os.environ, "RUST_LOG": "warn"}).stdout

        def post(_):
            request = urllib.request.Request(f"{url}/v1/logs", data=body, method="POST",
                                             headers={"Content-Type": "application/x-protobuf"})
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(16))) == {200}
    finally:
        server.send_signal(2)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "ingest stage of the AWS pipeline (s3tables mode)" in out

    for stage, extra in (("compact", {}), ("commit", {"OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS": "100"})):
        # The committer stages (fewer than 100 compactions: none is due) and
        # commits what is staged when it stops.
        done = subprocess.run([BIN, "worker", stage, "--exit-when-empty"], env={**env, **extra},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    # 75 SDK records and 16 posts of the same 50 records: each post is a delivery of its own.
    assert deployment.read("logs").num_rows == 75 + 16 * 50
    assert deployment.read("traces").num_rows == 120
    assert sorted(deployment.read("metrics_sum").column("IntValue").to_pylist()) == [5, 5]
    for queue_url in (deployment.compaction_queue, deployment.compaction_dlq, deployment.commit_queue,
                      deployment.commit_dlq):
        assert deployment.queue_depth(queue_url) == 0, queue_url


def generate_logs(records, seed):
    from cli import BIN
    return subprocess.run([BIN, "generate", "--signal", "logs", "--records", str(records), "--seed", str(seed),
                           "--out", "-"], check=True, capture_output=True, env={**os.environ, "RUST_LOG": "warn"}).stdout


def post(url, body):
    request = urllib.request.Request(f"{url}/v1/logs", data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("point", [
    "ingest-after-raw-write",
    "ingest-after-enqueue",
    "compact-mid-way",
    "compact-after-write",
    "compact-after-send",
    "commit-before-catalog-commit",
    "commit-after-catalog-commit",
])
def test_a_function_killed_between_side_effects_loses_and_doubles_nothing(moto, point):
    """One function aborts at a boundary between two of its side effects (as a
    crash, a timeout or an out-of-memory kill would); Lambda starts a fresh
    environment, SQS redelivers what was in flight once its visibility timeout
    lapses, the OTLP client retries a request that got no 200. Every record the
    client sent lands exactly once per acknowledged delivery."""
    deployment = Deployment(moto)
    sqs = deployment.aws["sqs"]
    stage = point.split("-")[0]
    crash = {"OTLP2PARQUET_CRASH_AT": point}
    # A pending commit older than this is settled by the next committer; the
    # messages reappear after the visibility timeout, when it has lapsed.
    deployment.environment["OTLP2PARQUET_COMMIT_LEASE_SECS"] = "2"
    body = generate_logs(200, seed=11)
    try:
        ingest = deployment.function("otlp2parquet-ingest", **(crash if stage == "ingest" else {}))
        api = HttpApi(ingest)
        status = post(api.url, body)
        api.stop()
        expected = 200
        if stage == "ingest":
            assert status == 502, "the function died: API Gateway answers 502"
            api = HttpApi(deployment.function("otlp2parquet-ingest"))
            assert post(api.url, body) == 200, "the client's retry"
            api.stop()
            if point == "ingest-after-enqueue":
                # The first attempt was queued before the crash although the client
                # never heard so: its retry is a second delivery of the same records.
                expected = 400
        else:
            assert status == 200

        for name, queue_url, binary in (("compact", deployment.compaction_queue, "otlp2parquet-compactor"),
                                        ("commit", deployment.commit_queue, "otlp2parquet-committer")):
            if stage == name:
                crashing = deployment.function(binary, **crash)
                with pytest.raises(RuntimeError, match="exited"):
                    drain_queue(sqs, queue_url, crashing, visibility_timeout=4)
                assert point in crashing.output()
            # A fresh environment takes what reappears (after the visibility
            # timeout). It may hand a message back once more (a pending commit
            # still inside its lease is left alone).
            drain_queue(sqs, queue_url, deployment.function(binary), visibility_timeout=4,
                        idle_receives=6 if stage == name else 2)

        logs = deployment.read("logs")
        assert logs.num_rows == expected
        assert len(set(logs.column("Body").to_pylist())) == 200
        for queue_url in (deployment.compaction_queue, deployment.compaction_dlq, deployment.commit_queue,
                          deployment.commit_dlq):
            assert deployment.queue_depth(queue_url) == 0, queue_url
    finally:
        deployment.stop()


def test_s3_and_sqs_failing_at_random_lose_and_double_nothing(moto):
    """A fifth of the functions' S3, SQS and S3 Tables requests answered 503
    (before they reach moto); the SDK retries, a stage that still fails hands its
    message back, a function that cannot start is started again, a client whose
    request failed retries it. Every record lands exactly once."""
    front = FaultFront(moto, rate=0.2)
    # Enough receives that bad luck alone does not dead-letter a message.
    deployment = Deployment(moto, max_receives=20, functions_endpoint=front.endpoint)
    try:
        api = HttpApi(deployment.function("otlp2parquet-ingest"))
        for seed in range(8):
            post_until_accepted(api.url, generate_logs(100, seed=seed))
        api.stop()
        sqs = deployment.aws["sqs"]
        for queue_url, binary in ((deployment.compaction_queue, "otlp2parquet-compactor"),
                                  (deployment.commit_queue, "otlp2parquet-committer")):
            drain_queue(sqs, queue_url, deployment.function(binary), visibility_timeout=3, idle_receives=6,
                        restart=True)
        assert front.control() > 0, "no fault was injected"
        logs = deployment.read("logs")
        assert logs.num_rows == 800
        assert len(set(zip(logs.column("Body").to_pylist(), logs.column("Timestamp").to_pylist()))) == 800
        for queue_url in (deployment.compaction_queue, deployment.compaction_dlq, deployment.commit_queue,
                          deployment.commit_dlq):
            assert deployment.queue_depth(queue_url) == 0, queue_url
    finally:
        deployment.stop()
        front.stop()


def test_commits_dead_lettered_while_the_catalog_failed_are_replayed_once(moto):
    """S3 Tables refuses every table load (a missing permission, an outage): the
    committer hands its messages back until SQS moves them to the dead-letter queue.
    Once the cause is gone, `otlp2parquet dlq replay` sends them back, and the
    committer lands each compaction once; a second replay of the same messages adds
    nothing."""
    from cli import BIN

    front = FaultFront(moto, rate=0.0)
    deployment = Deployment(moto, max_receives=2, functions_endpoint=front.endpoint)
    sqs = deployment.aws["sqs"]
    try:
        api = HttpApi(deployment.function("otlp2parquet-ingest"))
        for seed in range(3):
            assert post(api.url, generate_logs(60, seed=seed)) == 200
        api.stop()
        drain_queue(sqs, deployment.compaction_queue, deployment.function("otlp2parquet-compactor"))
        front.control([{"method": "GET", "path": "/metadata-location", "when": "before", "status": 503,
                        "times": 1000}])
        committer = deployment.function("otlp2parquet-committer")
        drain_queue(sqs, deployment.commit_queue, committer, visibility_timeout=2, idle_receives=5)
        dead = deployment.queue_depth(deployment.commit_dlq)
        assert dead > 0 and deployment.queue_depth(deployment.commit_queue) == 0

        front.control([])  # the cause fixed
        env = {**os.environ, "RUST_LOG": "warn", "AWS_ENDPOINT_URL": moto, "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        inspected = subprocess.run([BIN, "dlq", "inspect", deployment.commit_dlq], env=env, capture_output=True,
                                   text=True, check=True).stdout
        assert "logs" in inspected, inspected
        # Keep copies for a second, mistaken replay.
        copies = sqs.receive_message(QueueUrl=deployment.commit_dlq, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                     AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        replay = subprocess.run([BIN, "dlq", "replay", "--from", deployment.commit_dlq, "--to",
                                 deployment.commit_queue], env=env, capture_output=True, text=True)
        assert replay.returncode == 0, replay.stderr
        assert deployment.queue_depth(deployment.commit_dlq) == 0
        drain_queue(sqs, deployment.commit_queue, committer)
        assert deployment.read("logs").num_rows == 180
        snapshots = len(StaticTable.from_metadata(deployment.metadata_location("logs"),
                                                  properties=deployment.s3_properties()).snapshots())

        send_again(sqs, deployment.commit_queue, copies)
        drain_queue(sqs, deployment.commit_queue, committer)
        logs = StaticTable.from_metadata(deployment.metadata_location("logs"), properties=deployment.s3_properties())
        assert logs.scan().to_arrow().num_rows == 180
        assert len(logs.snapshots()) == snapshots
        assert deployment.queue_depth(deployment.commit_dlq) == 0
    finally:
        deployment.stop()
        front.stop()
