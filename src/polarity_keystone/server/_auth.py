"""Authentication before anything reads the body.

FastAPI reads and parses a request's body before it runs the route's dependencies, so a key checked in a
dependency is checked too late: a caller without a key could make the server parse 300 MB, and learn
from a parse error that it did. `AuthenticationMiddleware` identifies the caller and charges its rate
limit before the body is touched, on every path but the public ones (the health probe, the OpenAPI
document and its pages); the routes' `Authenticated` dependency hands on who it admitted. A path that
matches no route needs a key too, so a caller without one learns nothing about which routes exist.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ._context import ServerContext
from ._deps import bearer, charge, identify, identify_remembered
from ._errors import ApiError, api_error_response, scope_request_id
from ._limits import BODILESS, UNREAD_BODY


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, context: ServerContext, public_paths: Collection[str]) -> None:
        self.app = app
        self.context = context
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        try:
            credentials = await bearer(Request(scope))
            principal = identify_remembered(self.context, credentials)
            if principal is None:
                principal = await run_in_threadpool(identify, self.context, credentials)
            charge(self.context, principal, scope["method"])
        except ApiError as exc:
            if scope["method"] not in BODILESS:
                exc.headers = {**exc.headers, **UNREAD_BODY}
            await api_error_response(scope_request_id(scope), exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
