"""The stripe-mock example end to end: the engine runs Keystone's built-in HTTP mock for a service with
no image, the agent charges through it by name, and `http_mock_assertions` checks what it sent; a
copy whose agent charges twice fails with the requests as evidence."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, plan_replica
from polarity_keystone.sandbox import ImageResolver
from polarity_keystone.services import http_mock
from tests.examples.shipped_examples import EditedExample, RunSpec

pytestmark = pytest.mark.docker

EXAMPLE = "stripe-mock/stripe.yaml"


def test_an_http_mock_service_runs_keystones_own_image_with_its_config(
    example: Callable[[str], PreparedSpec], resolver: ImageResolver
) -> None:
    prepared = example(EXAMPLE)

    image = prepared.service_images["stripe-mock"]
    assert image.ref == resolver.local("http_mock").ref
    assert image.note == ""
    assert prepared.fingerprint["service_images"] == {"stripe-mock": image.digest}
    plan = plan_replica(prepared, run_id="t", scenario_id="stripe-mock", replica=0, seed=1, parameters={})
    (service,) = plan.sandbox.services
    assert (service.kind, service.image) == ("http_mock", image.ref)
    config = json.loads(service.env[http_mock.CONFIG_ENV])
    assert (config["port"], config["record"], config["default_response"]) == (80, True, 404)
    assert [(r["method"], r["path"]) for r in config["routes"]] == [
        ("POST", "/v1/charges"),
        ("GET", "/v1/charges/{id}"),
    ]
    assert plan.agent_env["STRIPE_MOCK_URL"] == "http://stripe-mock"


def test_the_stripe_mock_example_passes(example: Callable[[str], PreparedSpec], run: RunSpec) -> None:
    results = run(example(EXAMPLE), replicas=2, concurrency=2, seed=4)

    (scenario,) = results.scenarios
    assert scenario.status == "pass", [r.error or r.reasons for r in scenario.replicas]
    assert (scenario.replicas_total, scenario.replicas_passed) == (2, 2)
    assert scenario.composite_score == 1.0
    assert {i.name: i.passed for i in scenario.invariants} == {
        "charged_once": True,
        "idempotent_and_nothing_else": True,
        "receipt_written": True,
    }
    assert "charge ch_test_1042" in scenario.agent_output
    # Each replica has its own mock: one charge each, never two in one log.
    for replica in scenario.replicas:
        charged = next(i for i in replica.invariants if i.name == "charged_once")
        assert charged.evidence["requests"] == ["POST /v1/charges -> 200"]
        # The audit log carries the call too, read before any check ran.
        calls = [e for e in replica.audit if e["type"] == "http_call"]
        assert calls == [
            {
                "type": "http_call",
                "source": "mock",
                "service": "stripe-mock",
                "host": "stripe-mock",
                "allowed": True,
                "method": "POST",
                "path": "/v1/charges",
                "status": 200,
            }
        ]


def test_an_agent_that_charges_twice_fails_with_the_requests_as_evidence(
    edited_example: EditedExample, run: RunSpec
) -> None:
    charge = (
        "with urllib.request.urlopen(request, timeout=10) as response:\n    charge = json.load(response)\n"
    )

    results = run(edited_example(EXAMPLE, "agent/charge.py", charge, charge + charge), seed=4)

    (scenario,) = results.scenarios
    assert scenario.status == "fail"
    (replica,) = scenario.replicas
    charged = next(i for i in replica.invariants if i.name == "charged_once")
    assert charged.passed is False
    assert charged.gate is True
    assert charged.message.endswith("2 matching requests, expected exactly 1")
    (verdict,) = charged.evidence["assertions"]
    assert verdict["matched"] == 2
    assert [json.loads(r["body"])["amount"] for r in verdict["matching"]] == [4999, 4999]
    assert charged.evidence["requests"] == ["POST /v1/charges -> 200", "POST /v1/charges -> 200"]
    others = {i.name: i.passed for i in replica.invariants if i.name != "charged_once"}
    assert others == {"idempotent_and_nothing_else": True, "receipt_written": True}
