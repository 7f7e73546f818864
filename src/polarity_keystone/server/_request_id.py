"""The outermost middleware: every response carries `X-Request-ID` (the client's, or a new one), and
an exception nothing handled becomes a bare 500 error body, its traceback only in the server log."""

from __future__ import annotations

import logging
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import error_response

log = logging.getLogger("polarity_keystone.server")

_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
"""A client's id is echoed only if it is short and printable; anything else is replaced."""


def new_request_id() -> str:
    """96 random bits, as 24 hex digits (a tenth of the cost of formatting a UUID for the same)."""
    return f"req_{os.urandom(12).hex()}"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _ACCEPTABLE.fullmatch(sent) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id)
            if started:
                raise
            response = error_response(
                request_id, 500, "internal_error", f"internal server error (request {request_id})"
            )
            await response(scope, receive, send)
