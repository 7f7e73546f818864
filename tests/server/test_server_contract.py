"""The API contract every endpoint shares: the error body, X-Request-ID, auth and rate limits."""

from __future__ import annotations

import re

import pytest

from polarity_keystone.server._ratelimit import RateLimiter
from tests.server.server_api import Api, MakeApi

REQUEST_ID = re.compile(r"req_[0-9a-f]{24}")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_health_needs_no_key_and_names_the_version(api: Api) -> None:
    response = api.as_key(None).get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["version"]


def test_unknown_routes_and_methods_get_the_error_body(api: Api) -> None:
    body = assert_error(api.client.get("/v1/nothing-here"), 404, "not_found")
    assert "/v1/nothing-here" in body["message"]

    assert_error(api.client.delete("/health"), 405, "method_not_allowed")
    assert_error(api.client.get("/v1/experiments/exp-missing"), 404, "not_found")


def test_validation_failures_are_400_with_details_and_never_echo_the_input(api: Api) -> None:
    response = api.client.post("/v1/experiments", json={"name": "n", "secrets": {"K": "hunter2-value"}})

    body = assert_error(response, 400, "invalid_request")
    assert {"loc": ["body", "spec_id"], "message": "Field required", "type": "missing"} in body["details"][
        "errors"
    ]
    assert "hunter2-value" not in response.text


def test_malformed_json_is_400(api: Api) -> None:
    response = api.client.post(
        "/v1/experiments", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert_error(response, 400, "invalid_request")


def test_request_id_is_echoed_or_generated_on_every_response(api: Api) -> None:
    mine = api.client.get("/health", headers={"X-Request-ID": "ci-run-42"})
    generated = api.client.get("/v1/specs/missing")
    unusable = api.client.get("/health", headers={"X-Request-ID": "x" * 500})

    assert mine.headers["X-Request-ID"] == "ci-run-42"
    assert REQUEST_ID.fullmatch(generated.headers["X-Request-ID"])
    assert generated.json()["request_id"] == generated.headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(unusable.headers["X-Request-ID"])


def test_an_unexpected_exception_is_a_500_without_its_traceback(api: Api) -> None:
    def explode() -> None:
        raise RuntimeError("internal detail: password=swordfish")

    api.app.add_api_route("/v1/explode", explode)

    response = api.client.get("/v1/explode", headers={"X-Request-ID": "boom-1"})

    body = assert_error(response, 500, "internal_error")
    assert body["request_id"] == "boom-1"
    assert "swordfish" not in response.text
    assert "Traceback" not in response.text


# --- auth -------------------------------------------------------------------------------------------


def test_a_missing_or_unknown_key_is_401(api: Api) -> None:
    missing = assert_error(api.as_key(None).get("/v1/specs"), 401, "unauthorized")
    assert "Authorization" in missing["message"]
    assert_error(api.as_key("ks_live_not-a-key").get("/v1/specs"), 401, "unauthorized")
    assert api.client.get("/v1/specs").status_code == 200


def test_a_revoked_key_is_401(api: Api) -> None:
    record = next(key for key in api.context.store.list_api_keys() if key.kind == "live")
    api.context.store.revoke_api_key(record.id)

    assert_error(api.client.get("/v1/specs"), 401, "unauthorized")


def test_keys_are_stored_hashed_only(api: Api) -> None:
    (record,) = api.context.store.list_api_keys()

    assert api.key.startswith("ks_live_")
    assert record.prefix == api.key[:12]
    assert api.key not in repr(record)


def test_without_auth_required_anonymous_calls_pass_but_sent_keys_are_still_checked(
    make_api: MakeApi,
) -> None:
    api = make_api(auth_required=False)
    local = {"Host": "127.0.0.1:8000"}  # such a server listens on loopback only (`ks ui`)

    assert api.as_key(None).get("/v1/specs", headers=local).status_code == 200
    assert_error(api.as_key("ks_live_wrong").get("/v1/specs", headers=local), 401, "unauthorized")
    # A page that pointed its own name at 127.0.0.1 (DNS rebinding) gets nothing without a key.
    assert_error(api.as_key(None).get("/v1/specs", headers={"Host": "rebound.example"}), 403, "forbidden")


def test_a_sandbox_token_reaches_only_its_own_sandbox(api: Api) -> None:
    from polarity_keystone.server import create_sandbox_token

    token, _ = create_sandbox_token(api.context.store, "sb-mine", "default")
    agent = api.as_key(token)

    assert_error(agent.get("/v1/specs"), 403, "forbidden")
    assert_error(agent.post("/v1/experiments", json={"name": "x", "spec_id": "y"}), 403, "forbidden")
    assert_error(agent.get("/v1/sandboxes"), 403, "forbidden")
    body = assert_error(agent.get("/v1/sandboxes/sb-other"), 403, "forbidden")
    assert "sb-mine" in body["message"]
    # Its own sandbox passes the scope check (and is then simply unknown to this store).
    assert_error(agent.get("/v1/sandboxes/sb-mine"), 404, "not_found")


# --- rate limits ------------------------------------------------------------------------------------


# The API tests take a rate under one per second: a burst of one request, the next token 2 s away, so a
# second request is over the rate on any machine however slow (the burst size and the refill are checked
# with a clock the test moves, in test_token_bucket_refills_at_its_rate).
SLOW_RATE = 0.5


def test_reads_over_the_rate_get_429_with_retry_after(make_api: MakeApi) -> None:
    api = make_api(read_rate=SLOW_RATE, write_rate=100)

    allowed = api.client.get("/v1/specs")
    limited = api.client.get("/v1/specs")

    assert allowed.status_code == 200
    body = assert_error(limited, 429, "rate_limited")
    assert "read" in body["message"]
    assert int(limited.headers["Retry-After"]) >= 1
    # Buckets are per key and per kind: another key reads, and this key still writes.
    other = api.as_key(_second_key(api))
    assert other.get("/v1/specs").status_code == 200
    assert api.client.post("/v1/experiments", json={"name": "x", "spec_id": "nope"}).status_code == 404


def test_writes_have_their_own_lower_rate(make_api: MakeApi) -> None:
    api = make_api(read_rate=100, write_rate=SLOW_RATE)
    body = {"name": "x", "spec_id": "nope"}

    statuses = [api.client.post("/v1/experiments", json=body).status_code for _ in range(2)]

    assert statuses == [404, 429]
    assert api.client.get("/v1/specs").status_code == 200


def _second_key(api: Api) -> str:
    from polarity_keystone.server import create_api_key

    key, _ = create_api_key(api.context.store, "second")
    return key


@pytest.mark.parametrize("rate", [10.0, 0.5])
def test_token_bucket_refills_at_its_rate(rate: float) -> None:
    now = [0.0]
    limiter = RateLimiter(read_rate=rate, write_rate=1.0, clock=lambda: now[0])
    burst = max(1, int(rate))

    waits = [limiter.acquire("k", "read") for _ in range(burst + 1)]

    assert waits[:burst] == [0.0] * burst
    assert waits[burst] == pytest.approx(1.0 / rate)
    now[0] += 1.0 / rate
    assert limiter.acquire("k", "read") == 0.0
    assert limiter.acquire("other", "read") == 0.0
