"""Retries against real servers: a tiny app on uvicorn that fails as told, and a socket that hangs up."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from polarity_keystone import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    Keystone,
    ServiceUnavailableError,
)
from polarity_keystone.sdk._retry import RetryPolicy
from tests.asgi_server import serve_app

EXPERIMENT = {"id": "exp-1", "name": "n", "spec_id": "s", "status": "created"}


class Script:
    """Answers POST /v1/experiments with the scripted (status, headers) in turn, then 200; records the
    Idempotency-Key of every attempt."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.keys: list[str | None] = []
        self.times: list[float] = []
        self.app = Starlette(
            routes=[
                Route("/v1/experiments", self.create, methods=["POST"]),
                Route("/slow", self.slow, methods=["GET"]),
            ]
        )

    async def create(self, request: Request) -> Response:
        self.keys.append(request.headers.get("idempotency-key"))
        self.times.append(time.monotonic())
        if self.answers:
            status, headers = self.answers.pop(0)
            body = {
                "error": f"e{status}",
                "message": f"scripted {status}",
                "request_id": f"req-{len(self.keys)}",
            }
            return JSONResponse(body, status_code=status, headers=headers)
        return JSONResponse(EXPERIMENT, status_code=201)

    async def slow(self, request: Request) -> Response:
        await asyncio.sleep(0.5)
        return JSONResponse({})


def retry_waits(sdk_log: pytest.LogCaptureFixture) -> list[float]:
    """The wait the client chose before each retry, from its log: exact on any machine, where the time
    between two requests is only ever at least that wait."""
    waits = []
    for record in sdk_log.records:
        if record.msg.startswith("retrying in"):
            assert isinstance(record.args, tuple) and isinstance(record.args[0], int | float)
            waits.append(float(record.args[0]))
    return waits


@pytest.fixture
def sdk_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="polarity_keystone.sdk")
    return caplog


def test_429_then_503_then_success_reuses_one_idempotency_key_and_honours_retry_after(
    sdk_log: pytest.LogCaptureFixture,
) -> None:
    script = Script((429, {"Retry-After": "1"}), (503, {"Retry-After": "0"}))
    with serve_app(script.app) as url, Keystone(api_key="ks_live_x", base_url=url) as ks:
        experiment = ks.experiments.create("n", "s")
    assert experiment.id == "exp-1"
    assert len(script.keys) == 3
    assert script.keys[0] and len(set(script.keys)) == 1
    assert retry_waits(sdk_log) == [1.0, 0.0]  # the 429's Retry-After; Retry-After: 0 means at once
    assert script.times[1] - script.times[0] >= 0.95  # and the second request really waited


def test_caller_idempotency_key_is_sent_on_every_attempt_and_calls_get_their_own() -> None:
    script = Script((502, {"Retry-After": "0"}))
    with serve_app(script.app) as url, Keystone(api_key="k", base_url=url) as ks:
        ks.experiments.create("n", "s", idempotency_key="my-key")
        ks.experiments.create("n", "s")
        ks.experiments.create("n", "s")
    assert script.keys[:2] == ["my-key", "my-key"]
    assert script.keys[2] != script.keys[3]


def test_retries_give_up_with_the_last_error() -> None:
    script = Script(*[(503, {"Retry-After": "0"})] * 5)
    with (
        serve_app(script.app) as url,
        Keystone(api_key="k", base_url=url, max_retries=2) as ks,
        pytest.raises(ServiceUnavailableError) as caught,
    ):
        ks.experiments.create("n", "s")
    assert len(script.keys) == 3
    error = caught.value
    assert (error.status_code, error.error, error.message, error.request_id) == (
        503,
        "e503",
        "scripted 503",
        "req-3",
    )
    assert error.retry_after == 0


def test_client_errors_are_not_retried() -> None:
    script = Script((400, {}))
    with (
        serve_app(script.app) as url,
        Keystone(api_key="k", base_url=url) as ks,
        pytest.raises(BadRequestError),
    ):
        ks.experiments.create("n", "s")
    assert len(script.keys) == 1


def test_5xx_without_retry_after_backs_off_exponentially(sdk_log: pytest.LogCaptureFixture) -> None:
    script = Script((500, {}), (500, {}))
    with serve_app(script.app) as url, Keystone(api_key="k", base_url=url) as ks:
        ks.experiments.create("n", "s")
    first, second = retry_waits(sdk_log)
    policy = RetryPolicy()
    assert policy.initial_backoff * 0.75 <= first <= policy.initial_backoff
    assert policy.initial_backoff * 2 * 0.75 <= second <= policy.initial_backoff * 2
    assert script.times[1] - script.times[0] >= first - 0.01  # the waits were really slept
    assert script.times[2] - script.times[1] >= second - 0.01


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=8.0)
    waits = [policy.backoff(attempt) for attempt in range(1, 12) for _ in range(20)]
    assert max(waits) <= 8.0
    assert min(policy.backoff(10) for _ in range(50)) >= 6.0
    assert len({round(w, 6) for w in (policy.backoff(3) for _ in range(20))}) > 1


def test_timeouts_become_api_timeout_errors() -> None:
    script = Script()
    with (
        serve_app(script.app) as url,
        Keystone(api_key="k", base_url=url, timeout=0.1, max_retries=0) as ks,
        pytest.raises(APITimeoutError),
    ):
        ks._http.request("GET", "/slow")


@contextmanager
def hang_up_once() -> Iterator[tuple[str, list[bytes]]]:
    """A socket server that closes the first connection without answering, then answers 201."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        for attempt in range(2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                requests.append(data)
                if attempt == 1:
                    body = b'{"id": "exp-1"}'
                    conn.sendall(
                        b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests
    finally:
        listener.close()
        thread.join(5)


def _idempotency_key(raw_request: bytes) -> bytes:
    return next(line for line in raw_request.split(b"\r\n") if line.lower().startswith(b"idempotency-key:"))


def test_a_dropped_connection_is_retried_with_the_same_idempotency_key() -> None:
    with hang_up_once() as (url, requests), Keystone(api_key="k", base_url=url) as ks:
        assert ks.experiments.create("n", "s").id == "exp-1"
    assert len(requests) == 2
    assert _idempotency_key(requests[0]) == _idempotency_key(requests[1])


def test_an_unreachable_server_is_a_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed at the end of the block: nothing listens there any more
    with (
        Keystone(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=1) as ks,
        pytest.raises(APIConnectionError) as caught,
    ):
        ks.health()
    assert not isinstance(caught.value, APITimeoutError)
    assert caught.value.status_code is None
