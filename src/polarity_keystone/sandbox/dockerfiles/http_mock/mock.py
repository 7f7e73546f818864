"""Keystone's built-in HTTP mock server (standard library only).

Configuration is one JSON document in the KEYSTONE_MOCK_CONFIG environment variable:

    {"port": 80, "default_response": 404, "record": true, "record_path": "...",
     "routes": [{"method": "POST", "path": "/v1/charges", "status": 200,
                 "response": "{\"id\": \"ch_1\"}", "headers": {}}]}

Matching: the first route (in declaration order) whose method and path match wins. The method is
compared case-insensitively; `*` or `ANY` matches every method. The path is compared without its query
string: a literal segment must be equal, `{name}` matches exactly one non-empty segment, and `*` matches
any run of characters, slashes included (`/v1/*` matches `/v1/charges/ch_1`). An unmatched request
gets `default_response` with an empty JSON error body.

The body is returned as given; a body that parses as a JSON object or array is sent with
`Content-Type: application/json`, anything else as text/plain, unless the route's `headers` say otherwise.

With `record`, every request is appended as one JSON line to `record_path`:
{"ts", "method", "path", "query", "headers", "body", "body_truncated", "route", "status"}.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

READY_MARKER = "keystone: http_mock ready"
RECORD_PATH = "/var/lib/keystone-mock/requests.jsonl"
BODY_LIMIT = 256 * 1024


def compile_path(pattern: str) -> re.Pattern[str]:
    """`{name}` is one non-empty segment, `*` any characters (slashes too), the rest literal."""
    parts = []
    for token in re.split(r"(\{[^/{}]+\}|\*)", pattern):
        if token == "*":
            parts.append(".*")
        elif token.startswith("{") and token.endswith("}"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


class Route:
    def __init__(self, index: int, raw: dict[str, Any]) -> None:
        self.index = index
        self.method = str(raw.get("method") or "GET").upper()
        self.path = str(raw["path"])
        self.pattern = compile_path(self.path)
        self.status = int(raw.get("status", 200))
        self.body = str(raw.get("response") or "").encode()
        self.headers = {str(k): str(v) for k, v in (raw.get("headers") or {}).items()}
        if not any(name.lower() == "content-type" for name in self.headers):
            self.headers["Content-Type"] = content_type(self.body)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", "ANY", method) and self.pattern.fullmatch(path) is not None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def content_type(body: bytes) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json" if isinstance(value, dict | list) else "text/plain; charset=utf-8"


class Mock:
    def __init__(self, config: dict[str, Any]) -> None:
        self.routes = [Route(i, raw) for i, raw in enumerate(config.get("routes") or [])]
        self.default_status = int(config.get("default_response", 404))
        self.record_path = config.get("record_path", RECORD_PATH) if config.get("record") else None
        self.lock = threading.Lock()
        if self.record_path:
            os.makedirs(os.path.dirname(self.record_path), exist_ok=True)
            open(self.record_path, "a").close()

    def route(self, method: str, path: str) -> Route | None:
        return next((route for route in self.routes if route.matches(method, path)), None)

    def record(self, entry: dict[str, Any]) -> None:
        if not self.record_path:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.lock, open(self.record_path, "a", encoding="utf-8") as out:
            out.write(line)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keystone-http-mock"
    mock: Mock

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self.respond
        raise AttributeError(name)

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def respond(self) -> None:
        body = self.read_body()
        target = urlsplit(self.path)
        path = target.path or "/"
        method = self.command.upper()
        route = self.mock.route(method, path)
        if route is not None:
            status, payload, response_headers = route.status, route.body, route.headers
        else:
            status = self.mock.default_status
            payload = json.dumps({"error": "no mock route", "method": method, "path": path}).encode()
            response_headers = {"Content-Type": "application/json"}
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.mock.record(
            {
                "ts": time.time(),
                "method": method,
                "path": path,
                "query": target.query,
                "headers": headers,
                "body": body[:BODY_LIMIT].decode("utf-8", errors="replace"),
                "body_truncated": len(body) > BODY_LIMIT,
                "route": route.label if route else None,
                "status": status,
            }
        )
        self.send_response(status)
        for name, value in response_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")


def main() -> None:
    config = json.loads(os.environ.get("KEYSTONE_MOCK_CONFIG") or "{}")
    Handler.mock = Mock(config)
    port = int(config.get("port", 80))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    print(f"{READY_MARKER} on port {port} ({len(Handler.mock.routes)} routes)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
