"""Tokens and cost from the `llm_call` events an agent appends to KEYSTONE_TRACE_FILE, in real sandboxes:
per replica, per scenario (its replicas together, and their mean) and per run; a model without a price
leaves the cost unknown and named, until an operator's pricing file gives it one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.analysis import load_pricing
from polarity_keystone.engine import PreparedSpec
from tests.examples.shipped_examples import RunSpec

pytestmark = pytest.mark.docker

AGENT = """
trace() { echo "$1" >> "$KEYSTONE_TRACE_FILE"; }
trace '{"event_type": "llm_call", "phase": "start", "model": "'"$1"'"}'
trace '{"event_type": "llm_call", "phase": "end", "model": "'"$1"'", "input_tokens": 1200, '\
'"output_tokens": 300, "cache_read_tokens": 1000}'
trace '{"event_type": "tool_call", "tool": "orders.lookup", "phase": "end", "status": "ok"}'
trace '{"event_type": "llm_call", "tool": "anthropic.create", "phase": "complete", "cost": '\
'{"model": "claude-sonnet-4-5", "input_tokens": 2000, "output_tokens": 500, "reasoning_tokens": 100, '\
'"estimated_usd": 0}}'
"""

SPEC = """
version: 1
id: costed
base: ubuntu:24.04
task: {{prompt: "answer with two model calls"}}
agent:
  type: cli
  path: agent
  command: sh /opt/agent/agent.sh {model}
invariants:
  done: {{check: {{type: command_exit, command: "true"}}}}
"""

MINI = (200 * 0.15 + 1000 * 0.075 + 300 * 0.6) / 1e6
"""gpt-4o-mini: 200 uncached input, 1000 cache-read and 300 output tokens."""
SONNET = (2000 * 3.0 + 500 * 15.0) / 1e6
"""claude-sonnet-4-5: reasoning tokens are part of its output tokens."""


def _prepared(prepared_from: Callable[..., PreparedSpec], model: str) -> PreparedSpec:
    return prepared_from(SPEC.format(model=model), {"agent/agent.sh": AGENT})


def test_llm_calls_give_tokens_and_cost_per_replica_scenario_and_run(
    prepared_from: Callable[..., PreparedSpec], run: RunSpec
) -> None:
    results = run(_prepared(prepared_from, "gpt-4o-mini-2024-07-18"), replicas=2, seed=3)

    (scenario,) = results.scenarios
    for replica in scenario.replicas:
        assert replica.status == "pass", replica.reasons
        cost = replica.cost
        assert cost is not None
        assert (cost.input_tokens, cost.output_tokens, cost.cache_read_tokens, cost.reasoning_tokens) == (
            3200,
            800,
            1000,
            100,
        )
        assert cost.llm_calls == 2
        assert cost.model == "claude-sonnet-4-5, gpt-4o-mini-2024-07-18"
        assert cost.estimated_usd == pytest.approx(MINI + SONNET)
        assert cost.unpriced_models == []
        assert cost.pricing_version
        assert replica.tool_calls == 1
    assert scenario.cost is not None
    assert (scenario.cost.input_tokens, scenario.cost.llm_calls) == (6400, 4)
    assert scenario.cost.estimated_usd == pytest.approx(2 * (MINI + SONNET))
    assert scenario.mean_cost_per_run_usd == pytest.approx(MINI + SONNET)
    metrics = results.metrics
    assert metrics.total_cost_usd == pytest.approx(2 * (MINI + SONNET))
    assert metrics.mean_cost_per_run_usd == pytest.approx(MINI + SONNET)
    assert metrics.mean_tokens == 4000
    assert (metrics.runs_priced, metrics.unpriced_models) == (2, [])


def test_an_unpriced_model_leaves_the_cost_unknown_until_the_operator_prices_it(
    prepared_from: Callable[..., PreparedSpec], run: RunSpec, tmp_path: Path
) -> None:
    prepared = _prepared(prepared_from, "in-house-7b")
    unpriced = run(prepared, replicas=1, seed=3)

    (replica,) = unpriced.scenarios[0].replicas
    assert replica.cost is not None
    assert replica.cost.estimated_usd is None
    assert replica.cost.unpriced_models == ["in-house-7b"]
    assert replica.cost.input_tokens == 3200
    assert unpriced.scenarios[0].mean_cost_per_run_usd is None
    assert unpriced.metrics.unpriced_models == ["in-house-7b"]
    assert (unpriced.metrics.runs_priced, unpriced.metrics.total_cost_usd) == (0, 0.0)
    assert unpriced.metrics.mean_tokens == 4000

    prices = tmp_path / "prices.json"
    prices.write_text('{"version": "acme-1", "models": {"in-house-7b": {"input": 0.5, "output": 1.0}}}')
    priced = run(dataclasses.replace(prepared, pricing=load_pricing(prices)), replicas=1, seed=3)

    (replica,) = priced.scenarios[0].replicas
    assert replica.cost is not None
    assert replica.cost.estimated_usd == pytest.approx((1200 * 0.5 + 300 * 1.0) / 1e6 + SONNET)
    assert replica.cost.pricing_version.endswith("+acme-1")
    assert priced.metrics.unpriced_models == []
