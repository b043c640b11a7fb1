"""The three Lambda binaries run as Lambda runs them, on this machine, for the tests.

Lambda itself cannot run here, so this module stands in for the three pieces of
AWS around a function, each small and each doing what AWS documents:

- `Function`: the Lambda Runtime API (`GET /2018-06-01/runtime/invocation/next`,
  `POST …/{id}/response`, `…/{id}/error`, `…/init/error`) on a loopback port, and
  the function's own binary started against it with the variables Lambda sets.
  One event at a time, as one Lambda execution environment takes them.
- `HttpApi`: an API Gateway HTTP API (payload format 2.0) in front of a function:
  each HTTP request becomes a v2 event (body base64-encoded), the function's
  proxy response becomes the HTTP answer. Real OTLP clients post to it.
- `drain_queue`: an SQS event source mapping with `ReportBatchItemFailures`:
  receives up to 10 messages, hands them to the function as one SQS event,
  deletes the messages the function did not report as failed, and leaves the
  failed ones to become visible again; repeats until the queue is empty.

The binaries are the ones `cargo build` made, beside `OTLP2PARQUET_BIN`.
"""

import base64
import http.server
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3

from cli import BIN


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuietServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client goes
    away mid-request: a function stopped (or killed on purpose) while it waits
    for its next event."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def wait_until(ready, what, timeout=60):
    """Polls `ready()` (a call that raises OSError until a server answers) until it
    returns, for at most `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        try:
            return ready()
        except OSError:
            if time.time() > deadline:
                raise TimeoutError(f"{what} did not answer within {timeout} s")
            time.sleep(0.1)


def binary(name):
    """A binary built beside the otlp2parquet one (`otlp2parquet-ingest`, …)."""
    path = os.path.join(os.path.dirname(os.path.abspath(BIN)), name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: run `cargo build --workspace` (scripts/test.sh does)")
    return path


class Function:
    """A function binary under a Runtime API stand-in; `invoke` runs one event."""

    def __init__(self, name, environment, timeout=60, path=None):
        self.name = name
        self.path = path or binary(name)
        self.timeout = timeout
        self.results = {}
        self.init_error = None
        self.changed = threading.Condition()
        self.lock = threading.Lock()  # one event at a time, as one environment
        function = self

        class RuntimeApi(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.reply(404)
                if function.first_poll is None:
                    function.first_poll = time.perf_counter()
                request_id, event = function.events.get()
                deadline = int((time.time() + function.timeout) * 1000)
                self.reply(200, json.dumps(event).encode(), [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     f"arn:aws:lambda:us-east-1:123456789012:function:{function.name}"),
                ])

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = self.path.strip("/").split("/")
                with function.changed:
                    if parts[-2:] == ["init", "error"]:
                        function.init_error = body.decode(errors="replace")
                    elif parts[-1] in ("response", "error"):
                        function.results[parts[-2]] = (parts[-1], body)
                    else:
                        return self.reply(404)
                    function.changed.notify_all()
                self.reply(202)

        self.api = QuietServer(("127.0.0.1", free_port()), RuntimeApi)
        self.api.daemon_threads = True
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.api.server_address[1]}"
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"{name}-{uuid.uuid4().hex[:8]}.log"), "w+")
        self.environment = environment
        self.start()

    def start(self):
        """Starts the binary: a new execution environment (a cold start)."""
        self.init_error = None
        self.first_poll = None  # when the runtime first asked for an event: its init done
        # A queue per environment: a dead one's pending `next` call must not
        # take the new one's events.
        self.events = queue.Queue()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": self.address,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": "stream",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "RUST_LOG": "warn",
            **self.environment,
        }
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([self.path], env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def restart(self):
        """What Lambda does after an environment died or failed to start: a new one."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.start()

    def invoke(self, event):
        """Runs `event`; returns the function's response (parsed JSON).
        Raises on a function error, an init error or a timeout."""
        with self.lock:
            request_id = uuid.uuid4().hex
            self.events.put((request_id, event))
            deadline = time.time() + self.timeout
            with self.changed:
                while request_id not in self.results:
                    if self.init_error is not None:
                        raise RuntimeError(f"{self.name} failed to start: {self.init_error}\n{self.output()}")
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
                    if time.time() > deadline:
                        raise TimeoutError(f"{self.name} did not answer within {self.timeout} s")
                    self.changed.wait(0.2)
                kind, body = self.results.pop(request_id)
        if kind == "error":
            raise RuntimeError(f"{self.name} failed: {body.decode(errors='replace')}")
        return json.loads(body)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.api.shutdown()
        self.log.close()


class HttpApi:
    """An API Gateway HTTP API (payload 2.0) in front of `function`, on a loopback port."""

    def __init__(self, function):
        class Gateway(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_POST(self):
                # API Gateway reads the whole body first, chunked or not.
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path, _, query = self.path.partition("?")
                event = {
                    "version": "2.0",
                    "routeKey": "$default",
                    "rawPath": path,
                    "rawQueryString": query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "requestContext": {
                        "accountId": "123456789012", "apiId": "local", "stage": "$default",
                        "domainName": self.headers.get("Host", "localhost"), "domainPrefix": "local",
                        "requestId": uuid.uuid4().hex, "routeKey": "$default",
                        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
                        "timeEpoch": int(time.time() * 1000),
                        "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                                 "sourceIp": "127.0.0.1", "userAgent": self.headers.get("User-Agent", "")},
                    },
                    "body": base64.b64encode(body).decode(),
                    "isBase64Encoded": True,
                }
                try:
                    answer = function.invoke(event)
                except Exception as e:  # what API Gateway answers when the function fails
                    return self.reply(502, {}, json.dumps({"message": f"Internal Server Error: {e}"}).encode())
                data = answer.get("body") or ""
                data = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
                self.reply(answer.get("statusCode", 200), answer.get("headers") or {}, data)

            def reply(self, status, headers, data):
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = QuietServer(("127.0.0.1", free_port()), Gateway)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()


def sqs_record(message, queue_url):
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "stringListValues": [], "binaryListValues": [],
                   "dataType": value["DataType"]}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_url.rsplit('/', 1)[-1]}",
        "awsRegion": "us-east-1",
    }


def drain_queue(sqs, queue_url, function, visibility_timeout=30, idle_receives=2, restart=False):
    """Feeds `queue_url` to `function` as an event source mapping with
    ReportBatchItemFailures does, until `idle_receives` receives in a row come back
    empty. Returns (every message handed over, how many were reported failed).
    A function error or a dead environment fails the whole batch (its messages
    reappear after the visibility timeout); with `restart` the function is then
    started afresh, as Lambda would, else the error is raised."""
    handed, failed = [], 0
    idle = 0
    while idle < idle_receives:
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            VisibilityTimeout=visibility_timeout, AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            idle += 1
            continue
        idle = 0
        try:
            answer = function.invoke({"Records": [sqs_record(m, queue_url) for m in received]})
        except (RuntimeError, TimeoutError):
            if not restart:
                raise
            function.restart()
            handed.extend(received)
            failed += len(received)
            continue
        reported = {f["itemIdentifier"] for f in answer.get("batchItemFailures") or []}
        done = [m for m in received if m["MessageId"] not in reported]
        if done:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
            ])
        handed.extend(received)
        failed += len(reported)
    return handed, failed


def send_again(sqs, queue_url, messages):
    """Sends copies of `messages` (as received) to `queue_url`: SQS's at-least-once
    delivery, or a replay, made on purpose. FIFO copies keep their group and get a
    deduplication id of their own, so that SQS does not drop them as duplicates."""
    for m in messages:
        kwargs = {}
        group = m.get("Attributes", {}).get("MessageGroupId")
        if group:
            kwargs = {"MessageGroupId": group, "MessageDeduplicationId": uuid.uuid4().hex}
        attributes = {
            name: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
            for name, v in m.get("MessageAttributes", {}).items() if "StringValue" in v
        }
        sqs.send_message(QueueUrl=queue_url, MessageBody=m["Body"], MessageAttributes=attributes, **kwargs)


def aws_clients(endpoint):
    kwargs = dict(endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
    return {name: boto3.client(name, **kwargs) for name in ("s3", "sqs", "s3tables")}


def queue_with_dlq(sqs, name, fifo, max_receives):
    """A queue whose redrive policy moves a message to its own dead-letter queue
    after `max_receives` receives, as the deployment's queues are made."""
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=attributes)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {**attributes, "MaximumMessageSize": "262144",
                  "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})}
    return sqs.create_queue(QueueName=f"{name}{suffix}", Attributes=attributes)["QueueUrl"], dlq
