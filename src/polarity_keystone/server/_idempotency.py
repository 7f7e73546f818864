"""`Idempotency-Key` on POST: the first request with a key runs and its response is stored for 24 h;
a retry with the same key and body gets that response again (`Idempotent-Replayed: true`) without
running anything; the same key with another body (or path) is 409 `idempotency_conflict`. A duplicate
arriving while the first still runs waits for the first's response, so concurrent duplicates create
one resource.

Uploads streamed to disk (`unkeyed` paths: agent snapshots) are passed through without a record: storing
one would mean holding the whole body in memory to hash it, and they are content-addressed, so running
one again answers the same resource.

Keys are scoped to the caller's credential. What is stored is the outcome of the operation: 2xx and
4xx responses, except 401/403/429, which say nothing about the operation and must not stick to the key.
A 5xx drops the claim, so the client's retry runs the request again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Collection
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store import IdempotencyRecord, Store
from ._errors import error_response
from ._keys import hash_key
from ._sessions import is_dashboard_path

HEADER = b"idempotency-key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
WAIT_STEP_S = 0.05
_NOT_STORED = {401, 403, 429}


def _storable(status: int) -> bool:
    return status < 500 and status not in _NOT_STORED


def _owner(headers: dict[bytes, bytes]) -> str:
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return hash_key(token.strip()) if scheme.lower() == "bearer" and token.strip() else "anonymous"


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, store: Store, wait_s: float, unkeyed: Collection[str] = ()) -> None:
        self.app = app
        self.store = store
        self.wait_s = wait_s
        self.unkeyed = frozenset(unkeyed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"]) if scope["type"] == "http" else {}
        key = headers.get(HEADER, b"").decode("latin-1").strip()
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not key
            or scope["path"] in self.unkeyed
            or is_dashboard_path(scope["path"])  # a browser's form: never stored (sign-in sets a cookie)
        ):
            await self.app(scope, receive, send)
            return
        request_id = str(scope.get("state", {}).get("request_id", ""))
        if len(key) > MAX_KEY_LENGTH:
            message = f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters"
            await error_response(request_id, 400, "invalid_request", message)(scope, receive, send)
            return
        body = await _read_body(receive)
        owner = _owner(headers)
        path = scope["path"] + (
            "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
        )
        body_hash = hashlib.sha256(body).hexdigest()
        deadline = time.monotonic() + self.wait_s
        while True:
            existing = await run_in_threadpool(
                self.store.begin_idempotent, owner, key, "POST", path, body_hash
            )
            if existing is None:
                break
            if (existing.method, existing.path, existing.body_hash) != ("POST", path, body_hash):
                message = (
                    "this Idempotency-Key was used with a different request; use a new key for a new request"
                )
                await error_response(request_id, 409, "idempotency_conflict", message)(scope, receive, send)
                return
            if existing.state == "done":
                await _replay(existing, request_id, send)
                return
            if time.monotonic() > deadline:
                message = "a request with this Idempotency-Key is still in progress; retry later"
                response = error_response(
                    request_id, 409, "idempotency_in_progress", message, headers={"Retry-After": "5"}
                )
                await response(scope, receive, send)
                return
            await asyncio.sleep(WAIT_STEP_S)
        await self._run_and_store(scope, _replaying(body, receive), send, owner, key)

    async def _run_and_store(self, scope: Scope, receive: Receive, send: Send, owner: str, key: str) -> None:
        status = 0
        content_type = "application/json"
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        finished = False
        try:
            await self.app(scope, receive, capture)
            if _storable(status):
                await run_in_threadpool(
                    self.store.finish_idempotent, owner, key, status, b"".join(chunks), content_type
                )
                finished = True
        finally:
            if not finished:
                await run_in_threadpool(self.store.abandon_idempotent, owner, key)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body to the app, then passes on what the client sends."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _replay(record: IdempotencyRecord, request_id: str, send: Send) -> None:
    body = record.response_body or b""
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", (record.content_type or "application/json").encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        (REPLAYED.lower().encode(), b"true"),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": record.status_code or 200,
        "headers": headers,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
