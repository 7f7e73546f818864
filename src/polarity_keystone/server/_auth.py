"""Authentication before anything reads the body.

FastAPI reads and parses a request's body before it runs the route's dependencies, so a key checked in a
dependency is checked too late: a caller without a key could make the server parse 300 MB, and learn
from a parse error that it did. `AuthenticationMiddleware` identifies the caller and charges its rate
limit before the body is touched, on every path but the public ones (the health probe, the OpenAPI
document and its pages); the routes' `Authenticated` dependency hands on who it admitted. A path that
matches no route needs a key too, so a caller without one learns nothing about which routes exist.

The dashboard's pages (`/ui/...`) are the exception: a browser sends no bearer key, so they admit the
session cookie that signing in with a key set (see `_sessions`), and only there; an API route never
accepts the cookie, so another site cannot make a signed-in browser call the API. A page asked for
without a session redirects to the sign-in page.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ._context import ServerContext
from ._deps import LOCAL, Principal, bearer, charge, identify, identify_remembered, principal_of
from ._errors import ApiError, Forbidden, api_error_response, scope_request_id
from ._limits import BODILESS, UNREAD_BODY
from ._sessions import COOKIE, SIGN_IN_PATH, is_dashboard_path, is_public_dashboard_path

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _check_keyless_host(scope: Scope, principal: Principal) -> None:
    """A server without auth (`ks ui`, on loopback) answers a caller without a key only when the request
    names a loopback host: a web page whose own name was pointed at 127.0.0.1 (DNS rebinding) must not
    read the local user's store through their browser."""
    if principal is not LOCAL:
        return
    host = Headers(scope=scope).get("host", "")
    if (urlsplit(f"//{host}").hostname or "") not in LOOPBACK_NAMES:
        raise Forbidden(
            f"this server answers callers without a key only at 127.0.0.1 or localhost, not {host!r}"
        )


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, context: ServerContext, public_paths: Collection[str]) -> None:
        self.app = app
        self.context = context
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        if is_dashboard_path(scope["path"]):
            await self._dashboard(scope, receive, send)
            return
        try:
            credentials = await bearer(Request(scope))
            principal = identify_remembered(self.context, credentials)
            if principal is None:
                principal = await run_in_threadpool(identify, self.context, credentials)
            _check_keyless_host(scope, principal)
            charge(self.context, principal, scope["method"])
        except ApiError as exc:
            if scope["method"] not in BODILESS:
                exc.headers = {**exc.headers, **UNREAD_BODY}
            await api_error_response(scope_request_id(scope), exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _dashboard(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A dashboard page: its session's key, or the local user on a server that needs no key; without
        a session, a page is redirected to the sign-in page (and back to itself after it)."""
        if is_public_dashboard_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        principal = await self._session_principal(request)
        if principal is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            sign_in = RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='')}", status_code=303)
            await sign_in(scope, receive, send)
            return
        try:
            _check_keyless_host(scope, principal)
            charge(self.context, principal, scope["method"])
        except ApiError as exc:
            await api_error_response(scope_request_id(scope), exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _session_principal(self, request: Request) -> Principal | None:
        if not self.context.settings.auth_required:
            return LOCAL
        session = self.context.sessions.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        keys = self.context.known_keys
        record = keys.remembered_hash(session.key_hash)
        if record is None:
            record = await run_in_threadpool(keys.look_up_hash, session.key_hash)
        if record is None or record.revoked or record.kind != "live":
            return None
        request.scope.setdefault("state", {})["session"] = session
        return principal_of(record)
