"""The one place errors become HTTP responses: `{error, message, request_id}` (+ `details`).

Route code raises `ApiError` subclasses, or lets domain errors through (store `NotFound`/`Conflict`,
`SpecError`, `SecretError`); `install_error_handlers` maps each to its status. Unexpected exceptions
are turned into a bare 500 by the request-id middleware, which logs the traceback and never sends it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from ..secrets import SecretError
from ..spec import SpecError
from ..store import Conflict, InvalidCursor, NotFound


class ApiError(Exception):
    """Raised by route code for a request that cannot succeed; caught only by the handler below."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = details
        self.headers = headers or {}


class InvalidRequest(ApiError):
    status_code, code = 400, "invalid_request"


class PayloadTooLarge(ApiError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code, code = 415, "unsupported_media_type"


class Unauthorized(ApiError):
    status_code, code = 401, "unauthorized"


class Forbidden(ApiError):
    status_code, code = 403, "forbidden"


class NotFoundError(ApiError):
    status_code, code = 404, "not_found"


class WrongState(ApiError):
    status_code, code = 409, "conflict"


class _RetryLater(ApiError):
    def __init__(self, message: str, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after)))}, **kwargs)


class RateLimited(_RetryLater):
    status_code, code = 429, "rate_limited"


class AtCapacity(_RetryLater):
    status_code, code = 503, "at_capacity"


class SandboxFailed(ApiError):
    """A sandbox could not boot or broke; the details say at which step and what it printed."""

    status_code, code = 500, "sandbox_error"


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def scope_request_id(scope: Scope) -> str:
    """The request id, for middleware that answers from the ASGI scope (no `Request` object yet)."""
    return str(scope.get("state", {}).get("request_id", ""))


def error_response(
    request_id: str,
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    return JSONResponse(
        body, status_code=status_code, headers={**(headers or {}), "X-Request-ID": request_id}
    )


def api_error_response(request_id: str, exc: ApiError) -> JSONResponse:
    return error_response(request_id, exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def _spec_issues(exc: SpecError) -> list[dict[str, Any]]:
    return [
        {
            "file": issue.file,
            "line": issue.line,
            "column": issue.column,
            "field": issue.field,
            "message": issue.message,
            "suggestion": issue.suggestion,
        }
        for issue in exc.issues
    ]


MAX_REPORTED_ERRORS = 20
"""A body with 100,000 wrong values gets the first few explained, not a response larger than itself."""


MAX_LOCATION_PART = 40
"""Of one step of an error's location: a mapping key from the body can be any size."""


def _location_part(part: Any) -> str:
    text = str(part)
    return text if len(text) <= MAX_LOCATION_PART else text[:MAX_LOCATION_PART] + "…"


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's first errors without the offending input, which may carry secrets from the body, and
    with long mapping keys in their locations cut short."""
    return [
        {
            "loc": [_location_part(part) for part in error.get("loc", ())],
            "message": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors[:MAX_REPORTED_ERRORS]
    ]


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette's own 405 names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return api_error_response(request_id_of(request), exc)

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request_id_of(request), 404, "not_found", str(exc))

    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request_id_of(request), 409, "conflict", str(exc))

    async def invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request_id_of(request), 400, "invalid_cursor", str(exc))

    async def invalid_spec(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SpecError)
        issues = _spec_issues(exc)
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        message = f"the spec is invalid ({count}): {exc.issues[0].format()}"
        return error_response(request_id_of(request), 400, "invalid_spec", message, {"issues": issues})

    async def invalid_secrets(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request_id_of(request), 400, "invalid_secrets", str(exc))

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        found = exc.errors()
        errors = _validation_errors(found)
        first = errors[0] if errors else {"loc": [], "message": "invalid request"}
        message = f"{'.'.join(first['loc'][1:] or first['loc']) or 'request'}: {first['message']}"
        if len(found) > len(errors):
            message += f" (and {len(found) - 1} more problems; the first {len(errors)} are listed)"
        return error_response(request_id_of(request), 400, "invalid_request", message, {"errors": errors})

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
            headers = {"Allow": ", ".join(_allowed_methods(request))}
        return error_response(request_id_of(request), exc.status_code, code, message, headers=headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(Conflict, conflict)
    app.add_exception_handler(InvalidCursor, invalid_cursor)
    app.add_exception_handler(SpecError, invalid_spec)
    app.add_exception_handler(SecretError, invalid_secrets)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
