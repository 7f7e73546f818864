"""Test support shared by the server and SDK tests: the app called in-process from synchronous code."""

from __future__ import annotations

from typing import Any

import httpx
from anyio.from_thread import BlockingPortal


class SyncASGITransport(httpx.BaseTransport):
    """httpx's ASGITransport (async only) driven from synchronous code through an anyio portal: the
    app runs in-process, in the portal's event loop. Responses are complete once returned."""

    def __init__(self, app: Any, portal: BlockingPortal) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._portal.call(self._send, request)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )
        response = await self._inner.handle_async_request(forwarded)
        body = b"".join([chunk async for chunk in response.aiter_raw()])
        return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(body))
