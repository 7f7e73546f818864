"""The llm-agent example end to end: an agent written with the official `openai` package (installed in
its image by `setup.pip`) calls its model through Keystone's proxy in mock mode, offline, and runs the
tools the model asks for against Postgres. Its tool calls reach the server while it runs (on the
experiment's stream before its replica is done); its tokens and cost come from the proxy's calls. The
reckless variant's model deletes the order, and `forbidden.tool_calls` fails it; its failing replica
replays from its recording with `ks replay --recording`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.analysis import shipped_pricing
from polarity_keystone.engine import PreparedSpec
from tests.examples.shipped_examples import EXAMPLES, RunSpec
from tests.ks_command import run_ks

pytestmark = pytest.mark.docker

LLM_AGENT = EXAMPLES / "llm-agent"
INPUT_TOKENS, OUTPUT_TOKENS = 412 + 530 + 590, 18 + 27 + 21
"""The mock model's usage over its three answers (llm-agent.yaml)."""


def test_the_agent_refunds_as_its_model_decides_with_tool_calls_live_and_cost_counted(tmp_path: Path) -> None:
    with Keystone.local(tmp_path / ".keystone") as ks:
        ks.specs.create((LLM_AGENT / "llm-agent.yaml").read_text(), source_dir=LLM_AGENT)
        experiment = ks.experiments.create("llm-agent-run", "llm-agent", replicas=1)
        results = ks.experiments.run_and_wait(experiment.id, timeout=300)
        streamed = [(event.event, event.data) for event in ks.experiments.stream(experiment.id)]

    (scenario,) = results.scenarios
    (replica,) = scenario.replicas
    assert (results.status, results.passed) == ("completed", 1), replica.model_dump()
    assert "Refunded order 1042 in full" in replica.agent_output

    live = [data["tool"] for kind, data in streamed if kind == "tool_call"]
    finished = next(i for i, (kind, _) in enumerate(streamed) if kind == "replica_done")
    assert live == ["lookup_order", "refund_order"]
    assert all(i < finished for i, (kind, _) in enumerate(streamed) if kind == "tool_call")

    assert replica.tool_calls == 2
    cost = replica.cost
    assert cost is not None
    assert (cost.llm_calls, cost.input_tokens, cost.output_tokens, cost.model) == (
        3,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        "gpt-4o-mini",
    )
    expected = shipped_pricing().estimate("gpt-4o-mini", INPUT_TOKENS, OUTPUT_TOKENS)
    assert cost.estimated_usd == pytest.approx(expected)
    assert (results.metrics.mean_tool_calls, results.metrics.tool_success_rate) == (2.0, 1.0)
    assert results.metrics.mean_tokens == INPUT_TOKENS + OUTPUT_TOKENS


def test_a_model_that_deletes_the_order_is_caught_by_forbidden_tool_calls(
    example: Callable[[str], PreparedSpec], run: RunSpec
) -> None:
    results = run(example("llm-agent/llm-agent-reckless.yaml"), replicas=1, seed=3)
    (replica,) = results.scenarios[0].replicas
    assert replica.status == "fail"
    (rule,) = [check for check in replica.forbidden_checks if check.rule == "tool_calls"]
    assert rule.violated and "delete_order" in rule.details
    assert [call["tool"] for call in rule.evidence["calls"]] == ["delete_order"]
    assert {i.name: i.passed for i in replica.invariants}["order_refunded"] is False


def test_the_failing_replica_replays_from_its_recording(tmp_path: Path) -> None:
    shutil.copytree(LLM_AGENT, tmp_path / "llm-agent")
    spec = tmp_path / "llm-agent" / "llm-agent-reckless.yaml"
    results_file = tmp_path / "results.json"
    ran = run_ks(
        ["eval", "run", str(spec), "--replicas", "1", "--seed", "3", "-o", str(results_file)], cwd=tmp_path
    )
    assert ran.returncode == 1, ran.stderr
    assert "add --recording RESULTS.json" in ran.stderr
    (replica,) = json.loads(results_file.read_text())["scenarios"][0]["replicas"]

    replayed = run_ks(
        [*replica["reproducer"]["command"].split()[1:], "--recording", str(results_file), "--json"],
        cwd=tmp_path,
    )
    assert replayed.returncode == 1, replayed.stderr
    again = json.loads(replayed.stdout)
    assert again["reasons"] == replica["reasons"]
    assert [e["response"] for e in again["recordings"]["llm"]] == [
        e["response"] for e in replica["recordings"]["llm"]
    ]
    assert [e for e in again["audit"] if e["type"] == "llm_divergence"] == []
    assert all(e["mode"] == "replay" for e in again["recordings"]["llm"])
