"""The SDK's one error tree, and the one place that turns an HTTP response into an error.

    KeystoneError                    anything the SDK raises on purpose (has .message, .status_code)
    ├── APIConnectionError           the server could not be reached (after retries)
    │   └── APITimeoutError          the request timed out (after retries)
    └── APIStatusError               the server answered with a non-2xx status
        ├── BadRequestError          400  malformed body, spec or parameter validation failure
        ├── AuthenticationError      401  missing or invalid API key
        ├── PermissionDeniedError    403  the key does not own the resource
        ├── NotFoundError            404
        ├── ConflictError            409  resource in the wrong state, idempotency key reused
        ├── RateLimitError           429  (retried first, honouring Retry-After)
        └── InternalServerError      5xx  (retried first)
            └── ServiceUnavailableError 503 at capacity (retried first, honouring Retry-After)

Callers catch `KeystoneError` for "the call did not work", or a subclass to react to one status.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx


class KeystoneError(Exception):
    """Raised by the SDK for every failure it can name; `status_code` is None when no response came."""

    status_code: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(KeystoneError):
    """The server could not be reached, or the connection broke, and retrying did not help."""


class APITimeoutError(APIConnectionError):
    """The request timed out, and retrying did not help."""


class APIStatusError(KeystoneError):
    """The server answered with an error status; the body's `{error, message, request_id, details}`."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error: str,
        request_id: str | None,
        details: dict[str, Any] | None,
        retry_after: float | None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.request_id = request_id
        self.details = details or {}
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After), if it said."""

    def __str__(self) -> str:
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status_code} {self.error}: {self.message}{suffix}"


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class ServiceUnavailableError(InternalServerError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_from_response(response: httpx.Response) -> APIStatusError:
    """Build the error for a non-2xx response. The body is read here (streamed responses included)."""
    response.read()
    body = _json_object(response.content)
    status = response.status_code
    message = body.get("message") or _fastapi_detail(body) or response.text[:500] or response.reason_phrase
    details = body.get("details")
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    return cls(
        str(message),
        status_code=status,
        error=str(body.get("error") or f"http_{status}"),
        request_id=body.get("request_id") or response.headers.get("x-request-id"),
        details=details if isinstance(details, dict) else None,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _fastapi_detail(body: dict[str, Any]) -> str | None:
    """A plain FastAPI/Starlette `{"detail": ...}` body, e.g. from a proxy or an older server."""
    detail = body.get("detail")
    return None if detail is None else detail if isinstance(detail, str) else json.dumps(detail)
