"""The `http_mock_assertions` check against a real mock that received known requests: each filter and
count, passing and failing, the evidence a failure keeps, several assertions at once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone.results import InvariantResult
from polarity_keystone.sandbox import DockerBackend, DockerSandbox, ImageResolver, SandboxPlan
from polarity_keystone.scoring import CheckContext, json_subset, run_check, supported_checks
from polarity_keystone.services import kind_of
from polarity_keystone.spec import Invariant, Service

pytestmark = pytest.mark.docker

SECRET = "sk_test_51Hsecretvalue9f2c"
PAY = Service.model_validate(
    {
        "name": "pay",
        "type": "http_mock",
        "record": True,
        "routes": [{"method": "POST", "path": "/v1/charges", "response": '{"id": "ch_1"}'}],
    }
)
QUIET = Service.model_validate({"name": "quiet", "type": "http_mock", "record": True, "ports": [8081]})
UNRECORDED = Service.model_validate({"name": "unrecorded", "type": "http_mock", "ports": [8082]})

CHARGE = {"amount": 4999, "currency": "usd", "metadata": {"order_id": "1042", "tags": ["a", "b"]}}
TRAFFIC = f"""\
import json, urllib.request
def send(method, path, body=None, headers=None):
    data = body.encode() if body is not None else None
    req = urllib.request.Request("http://pay" + path, data=data, method=method, headers=headers or {{}})
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError:
        pass
auth = {{"Authorization": "Bearer {SECRET}", "Content-Type": "application/json"}}
send("POST", "/v1/charges", json.dumps({CHARGE!r}), {{**auth, "Idempotency-Key": "order-1042"}})
send("POST", "/v1/charges", json.dumps({{"amount": 100, "currency": "eur"}}), auth)
send("GET", "/v1/charges/ch_1?expand=customer&limit=3")
send("POST", "/v1/notes", "free text with ORDER-1042 inside " + "x" * 2000)
"""


@pytest.fixture(scope="module")
def sandbox(backend: DockerBackend, resolver: ImageResolver) -> Iterator[DockerSandbox]:
    image = resolver.local("http_mock").ref
    services = [kind_of(s).container(s, image, local_image=True) for s in (PAY, QUIET, UNRECORDED)]
    plan = SandboxPlan(
        spec_id="mock-checks",
        run_id=f"test-{uuid.uuid4().hex[:10]}",
        image=resolver.local("base").ref,
        services=services,
    )
    sandbox = backend.create(plan)
    try:
        result = sandbox.exec(["python3", "-c", TRAFFIC], timeout=60)
        assert result.exit_code == 0, result.stderr
        yield sandbox
    finally:
        sandbox.destroy()


@pytest.fixture
def ctx(sandbox: DockerSandbox, tmp_path: Path) -> CheckContext:
    return CheckContext(
        sandbox=sandbox,
        services={s.name: s for s in (PAY, QUIET, UNRECORDED)},
        spec_dir=tmp_path,
    )


def check(ctx: CheckContext, service: str = "pay", **fields: Any) -> InvariantResult:
    spec = {"type": "http_mock_assertions", "service": service, **fields}
    return run_check("mock", Invariant.model_validate({"check": spec}), ctx)


def passes(ctx: CheckContext, **fields: Any) -> InvariantResult:
    result = check(ctx, **fields)
    assert result.passed is True, result.message
    assert (result.score, result.reason) == (1.0, "")
    return result


def fails(ctx: CheckContext, **fields: Any) -> InvariantResult:
    result = check(ctx, **fields)
    assert result.passed is False, result.message
    assert result.score == 0.0
    assert result.reason == result.message != ""
    return result


def test_the_check_is_registered() -> None:
    assert "http_mock_assertions" in supported_checks()


def test_called_by_default_means_at_least_one_request(ctx: CheckContext) -> None:
    result = passes(ctx, path="/v1/charges")
    assert result.message == "pay: any method /v1/charges: 2 matching requests"
    assert result.evidence["total_requests"] == 4
    assert result.evidence["requests"] == [
        "POST /v1/charges -> 200",
        "POST /v1/charges -> 200",
        "GET /v1/charges/ch_1?expand=customer&limit=3 -> 404",
        "POST /v1/notes -> 404",
    ]


def test_a_service_that_was_never_called_fails_called_and_passes_not_called(ctx: CheckContext) -> None:
    result = check(ctx, service="quiet")
    assert result.passed is False
    assert "expected at least 1" in result.message
    assert "received no requests at all" in result.message
    assert result.evidence["requests"] == []
    assert check(ctx, service="quiet", called=False).passed is True


def test_called_false(ctx: CheckContext) -> None:
    passes(ctx, path="/v1/refunds", called=False)
    result = fails(ctx, method="GET", path="/v1/charges/{id}", called=False)
    assert result.message == "pay: GET /v1/charges/{id}: 1 matching request, expected none"
    (verdict,) = result.evidence["assertions"]
    assert verdict["matched"] == 1
    assert verdict["matching"][0]["query"] == "expand=customer&limit=3"


def test_method(ctx: CheckContext) -> None:
    passes(ctx, method="post", path="/v1/charges", count=2)
    fails(ctx, method="DELETE", path="/v1/charges")
    passes(ctx, method="*", count=4)


def test_path_patterns(ctx: CheckContext) -> None:
    passes(ctx, path="/v1/charges/{id}", count=1)
    passes(ctx, path="/v1/*", count=4)
    fails(ctx, path="/v1/charge")


def test_count_min_and_max(ctx: CheckContext) -> None:
    passes(ctx, path="/v1/charges", count=2)
    result = fails(ctx, path="/v1/charges", count=1)
    assert result.message.endswith("2 matching requests, expected exactly 1")
    passes(ctx, path="/v1/charges", min_count=2, max_count=3)
    assert "expected at least 3" in fails(ctx, path="/v1/charges", min_count=3).message
    assert "expected at most 1" in fails(ctx, path="/v1/charges", max_count=1).message
    assert "expected between 3 and 5" in fails(ctx, path="/v1/charges", min_count=3, max_count=5).message
    passes(ctx, path="/v1/refunds", count=0)


def test_body_contains(ctx: CheckContext) -> None:
    passes(ctx, path="/v1/notes", body_contains="ORDER-1042")
    fails(ctx, path="/v1/notes", body_contains="order-1042")


def test_json_subset(ctx: CheckContext) -> None:
    result = passes(ctx, method="POST", path="/v1/charges", json={"amount": 4999, "currency": "usd"}, count=1)
    (verdict,) = result.evidence["assertions"]
    assert json.loads(verdict["matching"][0]["body"]) == CHARGE
    passes(ctx, json={"metadata": {"order_id": "1042"}}, count=1)
    passes(ctx, json={"metadata": {"tags": ["a", "b"]}}, count=1)
    fails(ctx, json={"metadata": {"tags": ["a"]}})
    fails(ctx, json={"metadata": {"order_id": 1042}})  # a string is not a number
    result = fails(ctx, json={"amount": 5000})
    assert (
        result.message
        == 'pay: any method any path with json {"amount": 5000}: 0 matching requests, expected at least 1'
    )
    # Non-JSON bodies never match a json filter.
    fails(ctx, path="/v1/notes", json={})


def test_headers_and_query(ctx: CheckContext) -> None:
    passes(ctx, headers={"idempotency-key": "order-1042"}, count=1)
    passes(ctx, path="/v1/charges", headers={"Idempotency-Key": "*"}, count=1)
    fails(ctx, headers={"Idempotency-Key": "order-9"})
    passes(ctx, query={"limit": "3"}, count=1)
    fails(ctx, query={"limit": "4"})


def test_several_assertions_all_must_hold(ctx: CheckContext) -> None:
    ok = [
        {"method": "POST", "path": "/v1/charges", "count": 2},
        {"path": "/v1/refunds", "called": False},
    ]
    result = passes(ctx, assertions=ok)
    assert [v["passed"] for v in result.evidence["assertions"]] == [True, True]

    result = fails(ctx, assertions=[*ok, {"path": "/v1/customers"}])
    assert result.message == "pay: any method /v1/customers: 0 matching requests, expected at least 1"
    assert [v["passed"] for v in result.evidence["assertions"]] == [True, True, False]


def test_evidence_truncates_bodies(ctx: CheckContext) -> None:
    result = passes(ctx, method="POST", count=3)
    (verdict,) = result.evidence["assertions"]
    notes = verdict["matching"][2]
    assert len(notes["body"]) < 600
    assert notes["body"].endswith("more characters)")
    assert f"Bearer {SECRET}" in json.dumps(result.evidence)  # raw: the engine redacts the whole result


def test_a_mock_that_does_not_record_fails_with_the_reason(ctx: CheckContext) -> None:
    result = check(ctx, service="unrecorded")
    assert result.passed is False
    assert "record: true" in result.message


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1.0}, {"a": 1}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1, {"c": 2, "d": 3}]}}, True),
        ([1, 2], [1, 2, 3], False),
        ({"a": None}, {}, False),
        ({"a": None}, {"a": None}, True),
        ("x", "x", True),
    ],
)
def test_json_subset_rules(expected: Any, actual: Any, matches: bool) -> None:
    assert json_subset(expected, actual) is matches
