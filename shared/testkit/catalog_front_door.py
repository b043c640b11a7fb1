"""A REST catalog's front door, for tests: checks every request's credentials,
independently of the Rust client that made them, then forwards it to the real
catalog server behind (rustberg).

--auth sigv4   recomputes each request's SigV4 signature with botocore's own
               signer, from the request as received (method, path, query, the
               headers it says it signed, the body) and the test credentials,
               and answers 403 on any mismatch: a bug in our canonical request
               (path or query encoding, payload hash, scope) cannot pass.
               With --warehouse ARN it also answers /v1/config as S3 Tables
               does: the ARN must be asked for, and comes back as the path
               prefix, URL-encoded.
--auth oauth2  serves the OAuth2 token endpoint (client credentials) at
               /v1/oauth/tokens and admits only bearer tokens it issued;
               POST /_revoke forgets them all (as an expiry would).

Every refusal is also counted: GET /_refused answers the count.
"""

import argparse
import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

args = None
tokens = set()
refused = 0
lock = threading.Lock()


def verify_sigv4(handler, body):
    """The reason the request's signature is wrong, or None."""
    header = handler.headers.get("Authorization", "")
    if not header.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(
        part.strip().split("=", 1) for part in header[len("AWS4-HMAC-SHA256 "):].split(",")
    )
    access_key, date, region, service, terminator = fields["Credential"].split("/")
    if (access_key, region, service, terminator) != (args.access_key, args.region, args.service, "aws4_request"):
        return f"wrong credential scope {fields['Credential']}"
    amz_date = handler.headers.get("X-Amz-Date", "")
    if amz_date[:8] != date:
        return "X-Amz-Date does not match the credential scope"
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        return "host is not signed"
    url = urllib.parse.urlsplit(handler.path)
    request = AWSRequest(
        method=handler.command,
        url=f"http://{handler.headers['Host']}{url.path}",
        data=body,
        params=urllib.parse.parse_qsl(url.query, keep_blank_values=True),
        headers={name: handler.headers.get(name, "") for name in signed},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(args.access_key, args.secret_key), args.service, args.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != fields["Signature"]:
        return f"signature mismatch; botocore's canonical request:\n{canonical}"
    return None


class FrontDoor(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def refuse(self, status, message):
        global refused
        with lock:
            refused += 1
        kind = "NotAuthorizedException" if status == 401 else "ForbiddenException"
        self.answer(status, {"error": {"message": message, "type": kind, "code": status}})

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        if path == "/_refused":
            return self.answer(200, {"refused": refused})
        if args.auth == "oauth2":
            if path == "/_revoke":
                tokens.clear()
                return self.answer(200, {})
            if path.startswith(args.base + "/v1/oauth/tokens"):
                form = dict(urllib.parse.parse_qsl(body.decode()))
                if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
                    "client_credentials", args.client_id, args.client_secret
                ):
                    return self.refuse(401, f"bad client credentials: {form.get('client_id')}")
                token = secrets.token_hex(16)
                tokens.add(token)
                return self.answer(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600,
                                         "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
            given = self.headers.get("Authorization", "")
            if not given.startswith("Bearer ") or given[len("Bearer "):] not in tokens:
                return self.refuse(401, "no valid bearer token")
        else:
            reason = verify_sigv4(self, body)
            if reason:
                return self.refuse(403, reason)
        if not path.startswith(args.base + "/v1/"):
            return self.answer(404, {"error": {"message": f"no route {path}", "type": "NotFound", "code": 404}})
        path = path[len(args.base):]
        url = urllib.parse.urlsplit(path)
        if url.path == "/v1/config" and args.warehouse:
            asked = dict(urllib.parse.parse_qsl(url.query)).get("warehouse")
            if asked != args.warehouse:
                return self.answer(400, {"error": {"message": f"unknown warehouse {asked}", "type": "BadRequestException", "code": 400}})
            prefix = urllib.parse.quote(args.warehouse, safe="")
            return self.answer(200, {"defaults": {}, "overrides": {"prefix": prefix}})
        headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
        if args.upstream_token:
            headers["Authorization"] = f"Bearer {args.upstream_token}"
        request = urllib.request.Request(args.upstream + path, data=body or None, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                status, data, kind = reply.status, reply.read(), reply.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as e:
            status, data, kind = e.code, e.read(), e.headers.get("Content-Type", "application/json")
        self.answer(status, data, kind)

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = handle_any


def main():
    global args
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the catalog server, http://host:port")
    parser.add_argument("--upstream-token", help="bearer token for the catalog server")
    parser.add_argument("--base", default="", help="path before /v1 (S3 Tables: /iceberg)")
    parser.add_argument("--auth", choices=["sigv4", "oauth2"], required=True)
    parser.add_argument("--service", default="s3tables")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--access-key", default="testing")
    parser.add_argument("--secret-key", default="testing")
    parser.add_argument("--warehouse")
    parser.add_argument("--client-id", default="otlp2parquet")
    parser.add_argument("--client-secret", default="secret")
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), FrontDoor).serve_forever()


if __name__ == "__main__":
    main()
