"""A server costs runs at its operator's prices (`ServerSettings.pricing`, from `ks serve --pricing`): an
agent's `llm_call` event for a model only the operator's file prices gets a cost in the results and the
experiment metrics."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from polarity_keystone.analysis import load_pricing
from tests.server.server_api import MakeApi, wait_until_finished
from tests.stores import ENGINE_ON_ONE_STORE

SPEC = textwrap.dedent(
    """\
    version: 1
    id: priced
    base: "debian:bookworm-slim"
    task: {prompt: "call a model"}
    agent:
      type: cli
      command: >-
        sh -c 'echo "{\\"event_type\\": \\"llm_call\\", \\"model\\": \\"in-house-7b\\",
        \\"input_tokens\\": 2000000, \\"output_tokens\\": 1000000}" >> "$KEYSTONE_TRACE_FILE"'
    invariants:
      done: {check: {type: command_exit, command: "true"}}
    """
)


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_runs_are_costed_at_the_operators_prices(make_api: MakeApi, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("version: acme-1\nmodels:\n  in-house-7b: {input: 0.5, output: 1.0}\n")
    api = make_api(pricing=load_pricing(prices))
    assert api.upload(SPEC).status_code == 201
    created = api.client.post("/v1/experiments", json={"name": "n", "spec_id": "priced"}).json()
    assert api.client.post(f"/v1/experiments/{created['id']}/run").status_code == 202

    results = wait_until_finished(api, created["id"])

    assert results["status"] == "completed", results.get("error")
    (replica,) = results["scenarios"][0]["replicas"]
    assert replica["status"] == "pass", replica["error"]
    assert replica["cost"]["estimated_usd"] == pytest.approx(2.0)
    assert replica["cost"]["model"] == "in-house-7b"
    assert replica["cost"]["pricing_version"].endswith("+acme-1")
    assert results["metrics"]["total_cost_usd"] == pytest.approx(2.0)
    summary = api.client.get(f"/v1/metrics/experiments/{created['id']}").json()["summary"]
    assert summary["total_cost_usd"] == pytest.approx(2.0)
