"""Idempotency-Key on POST: stored outcome replayed, conflicts, concurrent duplicates, what is not stored."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from polarity_keystone.server import hash_key
from tests.server.server_api import Api, MakeApi, spec_yaml

CREATE = {"name": "nightly", "spec_id": "hello"}


def _experiments(api: Api) -> list[dict]:
    return api.client.get("/v1/experiments").json()


def test_a_retry_with_the_same_key_and_body_replays_the_stored_response(api: Api) -> None:
    api.upload(spec_yaml())
    headers = {"Idempotency-Key": "create-1"}

    first = api.client.post("/v1/experiments", json=CREATE, headers=headers)
    again = api.client.post("/v1/experiments", json=CREATE, headers=headers)

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert [e["id"] for e in _experiments(api)] == [first.json()["id"]]


def test_the_same_key_with_another_body_or_path_is_a_conflict(api: Api) -> None:
    api.upload(spec_yaml())
    headers = {"Idempotency-Key": "create-2"}
    api.client.post("/v1/experiments", json=CREATE, headers=headers)

    other_body = api.client.post("/v1/experiments", json={**CREATE, "name": "other"}, headers=headers)
    other_path = api.client.post("/v1/experiments/compare", json=CREATE, headers=headers)

    for response in (other_body, other_path):
        assert response.status_code == 409
        assert response.json()["error"] == "idempotency_conflict"
    assert len(_experiments(api)) == 1


def test_keys_are_scoped_to_the_caller(api: Api) -> None:
    from polarity_keystone.server import create_api_key

    api.upload(spec_yaml())
    other, _ = create_api_key(api.context.store, "other")
    headers = {"Idempotency-Key": "shared-key"}

    mine = api.client.post("/v1/experiments", json=CREATE, headers=headers)
    theirs = api.as_key(other).post("/v1/experiments", json=CREATE, headers=headers)

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_concurrent_identical_posts_create_one_resource(api: Api) -> None:
    api.upload(spec_yaml())
    headers = {"Idempotency-Key": "concurrent-1"}
    start = threading.Barrier(8)

    def post(_: int) -> tuple[int, str, str | None]:
        start.wait()
        response = api.client.post("/v1/experiments", json=CREATE, headers=headers)
        return response.status_code, response.json()["id"], response.headers.get("Idempotent-Replayed")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))

    assert {status for status, _, _ in results} == {201}
    assert len({experiment_id for _, experiment_id, _ in results}) == 1
    assert sum(replayed is None for _, _, replayed in results) == 1
    assert len(_experiments(api)) == 1


def test_a_duplicate_waits_for_the_first_request_in_flight(api: Api) -> None:
    """The first request holds the key (claimed, not finished); the duplicate gets its response once
    it is stored, without running the request itself."""
    api.upload(spec_yaml())
    store = api.context.store
    body = b'{"name": "nightly", "spec_id": "hello"}'
    import hashlib

    owner = hash_key(api.key)
    assert (
        store.begin_idempotent(
            owner, "in-flight", "POST", "/v1/experiments", hashlib.sha256(body).hexdigest()
        )
        is None
    )

    def finish_later() -> None:
        time.sleep(0.5)
        store.finish_idempotent(owner, "in-flight", 201, b'{"id": "exp-from-the-first"}', "application/json")

    finisher = threading.Thread(target=finish_later)
    finisher.start()
    started = time.monotonic()
    response = api.client.post(
        "/v1/experiments",
        content=body,
        headers={"Idempotency-Key": "in-flight", "Content-Type": "application/json"},
    )
    finisher.join()

    assert time.monotonic() - started >= 0.5
    assert response.status_code == 201
    assert response.json() == {"id": "exp-from-the-first"}
    assert response.headers["Idempotent-Replayed"] == "true"
    assert _experiments(api) == []


def test_client_errors_are_stored_like_any_outcome(api: Api) -> None:
    headers = {"Idempotency-Key": "missing-spec"}

    first = api.client.post("/v1/experiments", json={"name": "x", "spec_id": "nope"}, headers=headers)
    api.upload(spec_yaml("nope"))
    again = api.client.post("/v1/experiments", json={"name": "x", "spec_id": "nope"}, headers=headers)

    assert first.status_code == again.status_code == 404
    assert again.headers["Idempotent-Replayed"] == "true"


def test_server_errors_release_the_key_so_a_retry_runs_again(api: Api) -> None:
    calls: list[int] = []

    def flaky() -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return {"calls": len(calls)}

    api.app.add_api_route("/v1/flaky", flaky, methods=["POST"])
    headers = {"Idempotency-Key": "retry-after-500"}

    failed = api.client.post("/v1/flaky", headers=headers)
    retried = api.client.post("/v1/flaky", headers=headers)
    replayed = api.client.post("/v1/flaky", headers=headers)

    assert failed.status_code == 500
    assert retried.status_code == 200 and retried.json() == {"calls": 2}
    assert replayed.json() == {"calls": 2} and replayed.headers["Idempotent-Replayed"] == "true"
    assert len(calls) == 2


def test_rate_limited_requests_are_not_stored(make_api: MakeApi) -> None:
    api = make_api(write_rate=1)
    api.upload(spec_yaml())  # takes the only write token
    headers = {"Idempotency-Key": "after-429"}

    limited = api.client.post("/v1/experiments", json=CREATE, headers=headers)
    time.sleep(float(limited.headers["Retry-After"]))
    retried = api.client.post("/v1/experiments", json=CREATE, headers=headers)

    assert limited.status_code == 429
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_an_overlong_key_is_rejected(api: Api) -> None:
    response = api.client.post("/v1/experiments", json=CREATE, headers={"Idempotency-Key": "k" * 300})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
