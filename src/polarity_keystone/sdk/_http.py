"""The SDK's HTTP core: every service sends its requests through one `HttpClient`.

It adds the API key and an Idempotency-Key on POSTs, retries what is safe to retry (see `_retry`),
turns error responses into `KeystoneError`s, and follows SSE streams across dropped connections by
reconnecting with Last-Event-ID.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Generator, Iterator, Mapping
from typing import IO, Any

import httpx

from .._version import __version__
from ._errors import APIConnectionError, APITimeoutError, error_from_response
from ._retry import RetryPolicy
from ._sse import StreamEvent, parse_events

Params = Mapping[str, str | int | float | bool | None]
Form = tuple[Mapping[str, str], Mapping[str, tuple[str, IO[bytes], str]]]
"""A multipart body: its text fields, and its files as (filename, file, content type)."""
NEXT_CURSOR = "X-Next-Cursor"
MAX_PAGE = 500
"""The most items the server puts in one page."""


class HttpClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.BaseTransport | None,
    ) -> None:
        headers = {"User-Agent": f"polarity-keystone-python/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        form: Form | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        keyed: bool = True,
    ) -> httpx.Response:
        """Send with retries; a POST gets one Idempotency-Key (the caller's, or a fresh one) reused by
        every attempt, so a retried POST never creates a second resource. `keyed=False` sends none, for a
        POST that is safe to repeat as it is (a content-addressed upload) and whose body the server would
        otherwise hold in memory to remember it. `form` is a multipart body: (fields, files), each file
        (filename, seekable file, content type), read again from its start by each attempt."""
        all_headers = dict(headers or {})
        if method == "POST" and keyed:
            all_headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        fields, files = form or (None, None)
        request = self._client.build_request(
            method,
            path,
            json=json,
            content=content,
            data=fields,
            files=files,
            params=_clean(params),
            headers=all_headers,
        )
        response: httpx.Response = self.retry.retrying()(self._send, request)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    def iter_items(self, path: str, *, params: Params | None = None) -> Iterator[Any]:
        """Every item of a listing, fetching each page when the one before is used up. A page is the
        JSON array the server answers; the next page's cursor is its `X-Next-Cursor` header. (A server
        of an earlier version answers `{items, next_cursor}`, which is read too.)"""
        query = dict(params or {})
        while True:
            response = self.request("GET", path, params=query)
            page = response.json()
            if isinstance(page, dict):
                yield from page.get("items", [])
                cursor = page.get("next_cursor")
            else:
                yield from page
                cursor = response.headers.get(NEXT_CURSOR)
            if not cursor:
                return
            query["cursor"] = cursor

    def list_items(self, path: str, *, params: Params | None = None, limit: int | None = None) -> list[Any]:
        """The first `limit` items of a listing (all without one), in pages of at most `limit`."""
        query = dict(params or {})
        if limit is not None:
            query.setdefault("limit", min(limit, MAX_PAGE))
        return list(itertools.islice(self.iter_items(path, params=query), limit))

    def lines(self, path: str, *, params: Params | None = None) -> Iterator[str]:
        """The non-empty lines of a GET's body as they arrive, so a long NDJSON answer is never held
        whole. The request is sent (and retried, and its error raised) now; the body is read as iterated."""
        request = self._client.build_request("GET", path, params=_clean(params))
        response: httpx.Response = self.retry.retrying()(self._send, request, stream=True)
        return _body_lines(response)

    def stream(
        self,
        path: str,
        *,
        last_event_id: str | None = None,
        params: Params | None = None,
        deadline: float | None = None,
    ) -> Generator[StreamEvent, None, None]:
        """Events of an SSE endpoint until the server ends the stream (or, given a `time.monotonic()`
        deadline, until a line, keep-alives included, arrives after it). A connection that drops (or
        goes quiet past the read timeout) is reopened with the last seen id, so no event is missed or
        repeated; each open is retried like any request."""
        drops = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            request = self._client.build_request("GET", path, params=_clean(params), headers=headers)
            response: httpx.Response = self.retry.retrying()(self._send, request, stream=True)
            try:
                lines = response.iter_lines()
                for raw in parse_events(lines if deadline is None else _until(lines, deadline)):
                    drops = 0
                    if raw.id is not None:
                        last_event_id = raw.id
                    yield StreamEvent.from_raw(raw)
                return
            except httpx.TransportError as exc:
                drops += 1
                if drops > self.retry.max_retries:
                    raise _connection_error(exc, request) from exc
                time.sleep(self.retry.backoff(drops))
            finally:
                response.close()

    def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        try:
            response = self._client.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise _connection_error(exc, request) from exc
        if response.is_error:
            try:
                raise error_from_response(response)
            finally:
                response.close()
        return response


def _connection_error(exc: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    where = f"{request.method} {request.url}"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{where} timed out ({type(exc).__name__})")
    return APIConnectionError(f"{where} failed: {exc or type(exc).__name__}")


def _body_lines(response: httpx.Response) -> Iterator[str]:
    try:
        yield from (line for line in response.iter_lines() if line)
    finally:
        response.close()


def _until(lines: Iterator[str], deadline: float) -> Iterator[str]:
    for line in lines:
        if time.monotonic() >= deadline:
            return
        yield line


def _clean(params: Params | None) -> dict[str, str | int | float | bool] | None:
    """Drop parameters the caller left unset, so `None` never reaches the query string."""
    return None if params is None else {key: value for key, value in params.items() if value is not None}
