"""Every error status the server answers becomes its SDK error, with the server's code, message and
request id; idempotent POSTs, including two concurrent duplicates, create one resource."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from polarity_keystone import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    Keystone,
    KeystoneError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from polarity_keystone.sdk import Experiment
from polarity_keystone.sdk._errors import error_from_response
from polarity_keystone.server import create_sandbox_token
from tests.sdk.sdk_servers import KeystoneServer, keystone_in_process, spec_yaml


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIStatusError),
        (409, ConflictError),
        (422, APIStatusError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, ServiceUnavailableError),
    ],
)
def test_each_status_has_its_error_class(status: int, expected: type[APIStatusError]) -> None:
    body = {"error": "code", "message": "what happened", "request_id": "req-1", "details": {"k": 1}}
    error = error_from_response(httpx.Response(status, json=body, headers={"Retry-After": "7"}))
    assert type(error) is expected
    assert isinstance(error, KeystoneError)
    assert (error.status_code, error.error, error.message, error.request_id, error.details) == (
        status,
        "code",
        "what happened",
        "req-1",
        {"k": 1},
    )
    assert error.retry_after == 7.0
    assert str(error) == f"{status} code: what happened (request req-1)"


def test_bodies_that_are_not_keystone_errors_still_give_a_message() -> None:
    fastapi_style = error_from_response(httpx.Response(404, json={"detail": "Not Found"}))
    assert (fastapi_style.error, fastapi_style.message) == ("http_404", "Not Found")
    proxy = error_from_response(
        httpx.Response(502, text="<html>bad gateway</html>", headers={"X-Request-ID": "r9"})
    )
    assert (proxy.message, proxy.request_id) == ("<html>bad gateway</html>", "r9")
    assert error_from_response(httpx.Response(503, headers={"Retry-After": "soon"})).retry_after is None


def test_400_for_an_invalid_spec_names_the_line(server: KeystoneServer) -> None:
    broken = spec_yaml().replace("task:", "tsak:")
    with pytest.raises(BadRequestError) as caught:
        server.client().specs.create(broken)
    error = caught.value
    assert error.error == "invalid_spec"
    assert error.request_id
    (issue,) = [i for i in error.details["issues"] if "tsak" in i["message"] or i["field"] == "tsak"]
    assert issue["line"] == 5


def test_400_for_an_invalid_body_and_for_local_paths_on_a_shared_server(server: KeystoneServer) -> None:
    ks = server.client()
    ks.specs.create(spec_yaml())
    with pytest.raises(BadRequestError) as caught:
        ks.experiments.create("", "sdk-spec")
    assert caught.value.error == "invalid_request"
    with pytest.raises(BadRequestError):
        ks.specs.create(spec_yaml("local").replace("type: cli,", "type: cli, path: agent,"))


@pytest.mark.parametrize("key", [None, "ks_live_not-a-real-key"])
def test_401_without_a_key_or_with_a_wrong_one(
    server: KeystoneServer, key: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEYSTONE_API_KEY", raising=False)
    ks = Keystone(api_key=key, base_url=server.base_url, transport=server.transport)
    with ks, pytest.raises(AuthenticationError) as caught:
        ks.specs.list()
    assert caught.value.error == "unauthorized"


def test_403_for_a_sandbox_token_outside_its_sandbox(server: KeystoneServer) -> None:
    token, _ = create_sandbox_token(server.store, "sb-mine", "default")
    ks = server.client(api_key=token)
    with pytest.raises(PermissionDeniedError) as caught:
        ks.specs.list()
    assert caught.value.error == "forbidden"
    with pytest.raises(PermissionDeniedError):
        ks.sandboxes.get("sb-other")


def test_404_carries_the_request_id_of_the_response(server: KeystoneServer) -> None:
    with pytest.raises(NotFoundError) as caught:
        server.client().experiments.get("exp-missing")
    assert caught.value.error == "not_found"
    assert "exp-missing" in caught.value.message
    assert caught.value.request_id


def test_429_is_retried_after_retry_after_and_surfaces_when_retries_run_out(store_url: str) -> None:
    with keystone_in_process(store_url, read_rate=1.0) as server:
        patient, impatient = server.client(), server.client(max_retries=0)
        patient.specs.list()
        started = time.monotonic()
        patient.specs.list()  # the bucket is empty: 429 with Retry-After 1, then a retry that succeeds
        assert time.monotonic() - started >= 0.9
        with pytest.raises(RateLimitError) as caught:
            impatient.specs.list()
        assert caught.value.retry_after is not None and caught.value.retry_after >= 1


def _create_body(server: KeystoneServer) -> dict[str, Any]:
    server.client().specs.create(spec_yaml())
    return {"name": "once", "spec_id": "sdk-spec"}


def test_the_same_idempotency_key_replays_the_first_response_and_409s_for_another_body(
    server: KeystoneServer,
) -> None:
    ks = server.client()
    _create_body(server)
    first = ks.experiments.create("once", "sdk-spec", idempotency_key="idem-1")
    again = ks.experiments.create("once", "sdk-spec", idempotency_key="idem-1")
    assert again.id == first.id
    assert len(ks.experiments.list()) == 1
    with pytest.raises(ConflictError) as caught:
        ks.experiments.create("different", "sdk-spec", idempotency_key="idem-1")
    assert caught.value.error == "idempotency_conflict"


def test_two_concurrent_identical_posts_with_one_key_create_one_experiment(
    socket_server: KeystoneServer,
) -> None:
    _create_body(socket_server)
    created: list[Experiment] = []
    barrier = threading.Barrier(2)

    def post() -> None:
        ks = socket_server.client()
        barrier.wait()
        created.append(ks.experiments.create("once", "sdk-spec", idempotency_key="race-1"))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(created) == 2
    assert created[0].id == created[1].id
    assert [e.id for e in socket_server.client().experiments.list()] == [created[0].id]
