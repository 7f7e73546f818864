"""Request bodies within bounds before the app reads them: their size, and the nesting of JSON.

FastAPI reads and parses a body before any dependency runs, so a limit checked in a route comes too late:
the memory is spent. `BodyLimitMiddleware` reads the body itself, no further than the limit: a declared
`Content-Length` over it is refused at once, unread, and a streamed (chunked) body is refused as soon as
its count passes it. A JSON body nested deeper than `MAX_JSON_DEPTH` is refused here too, so no parser or
validator behind it can hit Python's recursion limit. The app then gets the body from memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import InvalidRequest, PayloadTooLarge, api_error_response, scope_request_id
from ._idempotency import _replaying as replaying

MAX_JSON_DEPTH = 64
"""Arrays and objects inside each other; no request body of this API needs more than a few."""
BODILESS = ("GET", "HEAD", "OPTIONS")
UNREAD_BODY = {"Connection": "close"}
"""On a refusal sent before the body was read: the server closes the connection instead of reading and
discarding the rest of the body to keep it alive."""


def describe_size(size: int) -> str:
    for unit, scale in (("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth + 1)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def json_nesting_problem(body: bytes) -> str | None:
    """Why a JSON body nests too deeply, or None (also for invalid JSON: the route's parser says why)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return None
    try:
        depth = json_depth(json.loads(body))
    except RecursionError:
        depth = MAX_JSON_DEPTH + 1
    except ValueError:
        return None
    if depth <= MAX_JSON_DEPTH:
        return None
    return f"the JSON body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"


def _is_json(headers: Headers) -> bool:
    """FastAPI parses a body as JSON when it says so, or says nothing about its type."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    return not media or media == "application/json" or media.endswith("+json")


def _declared_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


class _Disconnected(Exception):
    """The client went away before sending its whole body: nobody is left to answer."""


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as more than `limit` bytes arrived (the rest stays unread)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _pass_counted(app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """Hand the body to the app as it arrives, counting it: past `limit` the client gets 413 at once,
    the app sees the client go away, and whatever the app answers to that is dropped."""
    size = 0
    refused = False

    async def counted() -> Message:
        nonlocal size, refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        size += len(message.get("body", b""))
        if message["type"] == "http.request" and size > limit:
            refused = True
            too_large = PayloadTooLarge(
                f"the request body is larger than this route's limit of {describe_size(limit)}",
                headers=UNREAD_BODY,
            )
            await api_error_response(scope_request_id(scope), too_large)(scope, receive, send)
            return {"type": "http.disconnect"}
        return message

    async def unless_refused(message: Message) -> None:
        if not refused:
            await send(message)

    await app(scope, counted, unless_refused)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, streamed: Mapping[str, int] | None = None) -> None:
        """`streamed`: paths whose POST body (an upload the route spools to disk) may be larger, up to the
        given size, and is passed on as it arrives instead of being read first."""
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = dict(streamed or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        streamed_limit = self.streamed.get(scope["path"]) if scope["method"] == "POST" else None
        if streamed_limit is not None:
            declared = _declared_length(headers)
            if declared is not None and declared > streamed_limit:
                too_large = PayloadTooLarge(
                    f"the request body is larger than this route's limit of {describe_size(streamed_limit)}",
                    headers=UNREAD_BODY,
                )
                await api_error_response(scope_request_id(scope), too_large)(scope, receive, send)
                return
            await _pass_counted(self.app, scope, receive, send, streamed_limit)
            return
        declared = _declared_length(headers)
        too_large = PayloadTooLarge(
            f"the request body is larger than this server's limit of {describe_size(self.max_bytes)}",
            headers=UNREAD_BODY,
        )
        if declared is not None and declared > self.max_bytes:
            await api_error_response(scope_request_id(scope), too_large)(scope, receive, send)
            return
        try:
            body = await _read_at_most(receive, self.max_bytes)
        except _Disconnected:
            return
        if body is None:
            await api_error_response(scope_request_id(scope), too_large)(scope, receive, send)
            return
        if _is_json(headers) and body:
            problem = await run_in_threadpool(json_nesting_problem, body)
            if problem:
                refused = InvalidRequest(problem, code="json_too_deep")
                await api_error_response(scope_request_id(scope), refused)(scope, receive, send)
                return
        await self.app(scope, replaying(body, receive), send)
