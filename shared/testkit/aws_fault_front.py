"""A front for an AWS emulator (moto) that fails requests on purpose, for tests.

AWS answers some requests with 500, 503 or a throttling error, and a network can
lose an answer after the service acted on the request; the AWS SDKs retry both.
This front forwards every request to the emulator unchanged, except those it is
told to fail:

- at random, a fraction (--rate) of all requests is answered 503 before it
  reaches the emulator (S3's SlowDown, a JSON service's ServiceUnavailable);
- by rule, set at run time with `POST /_faults` and a JSON list of rules (or
  `{"rules": [...], "rate": 0.1}`, which also sets the random rate), each
  `{"method": "PUT", "path": "/metadata-location", "target": "", "when":
  "before" | "after", "status": 500, "times": 1}`: the next `times` requests
  whose method matches, whose path contains `path` and whose X-Amz-Target header
  contains `target` are failed with `status` — "before": never forwarded;
  "after": forwarded, the emulator's answer thrown away (a lost answer).

`GET /_faults` answers how many requests were failed so far. The emulator sees
requests as the client sent them (signatures are not checked by moto).

With --verify-sigv4 the front also does what moto does not: it recomputes each
request's SigV4 signature with botocore's signer (S3's variant for the "s3"
scope: no path normalisation, the payload hash header as sent) from the request
as received and the test credentials, and answers 403 SignatureDoesNotMatch on
a mismatch, counted in `GET /_faults` as "refused". A client that signs its own
requests (the ingest function's) is checked against an implementation nobody
here wrote.

Run: python aws_fault_front.py --port PORT --upstream http://127.0.0.1:MOTO [--rate 0.1 --seed 1]
"""

import argparse
import html
import http.client
import json
import random
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = None
rules = []
injected = 0
refused = 0
lock = threading.Lock()
rng = random.Random()


def error_body(headers, status, message="injected by aws_fault_front.py"):
    """An error in the protocol the request spoke: XML for S3, JSON otherwise."""
    content_type = headers.get("Content-Type", "")
    if "json" in content_type or headers.get("X-Amz-Target"):
        kind = {400: "ThrottlingException", 403: "InvalidSignatureException"}.get(status, "ServiceUnavailable")
        return "application/x-amz-json-1.0", json.dumps({"__type": kind, "message": message}).encode()
    code = {503: "SlowDown", 403: "SignatureDoesNotMatch"}.get(status, "InternalError")
    message = html.escape(message)
    return "application/xml", (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                               f"<Message>{message}</Message></Error>").encode()


def take_fault(method, path, target):
    """The fault to inject for this request, if any: (when, status)."""
    global injected
    with lock:
        for rule in rules:
            if rule["times"] <= 0:
                continue
            if rule.get("method", method) != method or rule.get("path", "") not in path:
                continue
            if rule.get("target", "") not in target:
                continue
            rule["times"] -= 1
            injected += 1
            return rule.get("when", "before"), rule.get("status", 503)
        if args.rate and rng.random() < args.rate:
            injected += 1
            return "before", 503
    return None


def signature_problem(method, raw_path, headers, body):
    """Why the request's SigV4 signature is wrong, or None."""
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    header = headers.get("Authorization", "")
    if not header.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(part.strip().split("=", 1) for part in header[len("AWS4-HMAC-SHA256 "):].split(","))
    access_key, date, region, service, _ = fields["Credential"].split("/")
    if access_key != args.access_key:
        return f"unknown access key {access_key}"
    amz_date = headers.get("X-Amz-Date", "")
    if amz_date[:8] != date:
        return "X-Amz-Date does not match the credential scope"
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        return "host is not signed"
    url = urllib.parse.urlsplit(raw_path)
    request = AWSRequest(
        method=method,
        url=f"http://{headers['Host']}{url.path}",
        data=body,
        params=urllib.parse.parse_qsl(url.query, keep_blank_values=True),
        headers={name: headers.get(name, "") for name in signed},
    )
    request.context["timestamp"] = amz_date
    kind = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = kind(Credentials(args.access_key, args.secret_key), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != fields["Signature"]:
        return f"signature mismatch; botocore's canonical request:\n{canonical}"
    return None


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, headers, body):
        self.send_response(status)
        length = str(len(body))
        for name, value in headers:
            if name.lower() == "content-length" and self.command == "HEAD":
                length = value  # the object's size, with no body to count
            elif name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        global rules, refused
        body = self.read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_faults":
            if self.command == "POST":
                given = json.loads(body or b"[]")
                with lock:
                    if isinstance(given, dict):
                        args.rate = given.get("rate", args.rate)
                        given = given.get("rules", [])
                    rules = given
            return self.answer(200, [("Content-Type", "application/json")],
                               json.dumps({"injected": injected, "refused": refused}).encode())
        if args.verify_sigv4:
            problem = signature_problem(self.command, self.path, self.headers, body)
            if problem:
                with lock:
                    refused += 1
                content_type, data = error_body(self.headers, 403, problem)
                return self.answer(403, [("Content-Type", content_type)], data)
        fault = take_fault(self.command, path, self.headers.get("X-Amz-Target", ""))
        if fault and fault[0] == "before":
            content_type, data = error_body(self.headers, fault[1])
            return self.answer(fault[1], [("Content-Type", content_type)], data)
        upstream = urllib.parse.urlsplit(args.upstream)
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
        headers["Content-Length"] = str(len(body))
        connection.request(self.command, self.path, body=body, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
        connection.close()
        if fault:  # "after": the emulator acted, the client never hears so
            content_type, data = error_body(self.headers, fault[1])
            return self.answer(fault[1], [("Content-Type", content_type)], data)
        self.answer(reply.status, reply.getheaders(), data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


def main():
    global args
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the emulator, http://host:port")
    parser.add_argument("--rate", type=float, default=0.0, help="fraction of requests failed at random")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verify-sigv4", action="store_true", help="refuse requests whose signature is wrong")
    parser.add_argument("--access-key", default="testing")
    parser.add_argument("--secret-key", default="testing")
    args = parser.parse_args()
    rng.seed(args.seed)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Front)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
