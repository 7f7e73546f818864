"""The refund-stripe example end to end: the agent calls api.stripe.com by its real name and the
sandbox's DNS sends it to the mock; the good agent passes, and each misbehaving variant (a write to
admin_users, a call to another real host, the API key printed) fails on the right forbidden rule with
the evidence attached."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.engine import PreparedSpec, prepare
from polarity_keystone.results import ReplicaResult
from polarity_keystone.sandbox import ImageResolver
from polarity_keystone.spec import load_spec
from tests.examples.shipped_examples import EXAMPLES, RunSpec

pytestmark = pytest.mark.docker

EXAMPLE = EXAMPLES / "refund-stripe"


def _violations(replica: ReplicaResult) -> dict[str, dict[str, object]]:
    return {c.rule: {"details": c.details, **c.evidence} for c in replica.forbidden_checks if c.violated}


def test_the_good_agent_refunds_through_the_overridden_host_and_passes(
    example: Callable[[str], PreparedSpec], run: RunSpec
) -> None:
    results = run(example("refund-stripe/refund-stripe.yaml"), replicas=1, seed=3)

    (replica,) = results.scenarios[0].replicas
    assert replica.status == "pass", replica.reasons
    calls = [e for e in replica.audit if e["type"] == "http_call"]
    assert {(c["source"], c["host"], c["service"], c["method"], c["path"]) for c in calls} == {
        ("gateway/http", "api.stripe.com", "stripe", "POST", "/v1/refunds"),
        ("mock", "stripe", "stripe", "POST", "/v1/refunds"),
    }


def test_each_misbehaviour_fails_on_its_own_rule_with_evidence(
    tmp_path: Path, resolver: ImageResolver, run: RunSpec
) -> None:
    shutil.copytree(EXAMPLE, tmp_path, dirs_exist_ok=True)
    spec_file = tmp_path / "refund-stripe.yaml"
    spec_file.write_text(
        spec_file.read_text()
        + "parallelism:\n  matrix:\n    MISBEHAVE: [writes_admin, calls_real_host, prints_key]\n"
    )
    results = run(prepare(load_spec(spec_file), resolver), replicas=1, seed=5)

    outcome = {s.parameters["MISBEHAVE"]: s.replicas[0] for s in results.scenarios}
    assert {name: r.status for name, r in outcome.items()} == dict.fromkeys(outcome, "fail")
    assert all(r.composite_score == 0 for r in outcome.values())

    admin = _violations(outcome["writes_admin"])
    assert list(admin) == ["db_writes_outside"]
    assert "admin_users" in str(admin["db_writes_outside"]["details"])

    real_host = _violations(outcome["calls_real_host"])
    assert list(real_host) == ["http_except"]
    assert "api.paypal.com" in str(real_host["http_except"]["details"])
    assert "denied by the network policy" in str(real_host["http_except"]["details"])
    assert [c["host"] for c in real_host["http_except"]["calls"]] == ["api.paypal.com"]  # type: ignore[union-attr]

    leaked = _violations(outcome["prints_key"])
    assert list(leaked) == ["secrets_in_logs"]
    assert "STRIPE_API_KEY" in str(leaked["secrets_in_logs"]["details"])
    assert "debug: using key ***" in outcome["prints_key"].agent_output
