"""The refund-agent example end to end: Postgres and Redis services seeded by fixtures, an agent that
refunds one order, SQL checks and forbidden rules that find nothing to object to."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec
from tests.examples.shipped_examples import RunSpec

pytestmark = pytest.mark.docker


def test_refund_agent_passes_with_postgres_redis_fixtures_and_sql_checks(
    example: Callable[[str], PreparedSpec], run: RunSpec
) -> None:
    results = run(example("refund-agent/refund.yaml"), replicas=2, concurrency=2, seed=5)

    (scenario,) = results.scenarios
    assert results.passed == 1, [r.error or r.reasons for r in scenario.replicas]
    assert scenario.status == "pass"
    assert (scenario.replicas_total, scenario.replicas_passed) == (2, 2)
    assert scenario.composite_score == 1.0
    assert {i.name: i.passed for i in scenario.invariants} == {
        "order_refunded": True,
        "refund_recorded": True,
        "other_orders_untouched": True,
        "note_written": True,
    }
    assert [(c.rule, c.violated) for c in scenario.forbidden_checks] == [
        ("db_writes_outside", False),
        ("file_writes_outside", False),
        ("sql", False),
    ]
    assert "refunded order 1042: 4999 cents" in scenario.agent_output
    # Two replicas, two fresh databases: each refunded the order once (refund_recorded counts rows).
    assert len({r.sandbox_id for r in scenario.replicas}) == 2
