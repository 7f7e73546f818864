"""`ks.export` against a real server on a socket (both stores): iterators that page through cursors, the
one-shot bundle as JSON and as streamed NDJSON lines, a single trace; `from_dict` on every results type;
`ks.sandboxes.get_trace` read like the dict the hosted product's SDK returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from polarity_keystone import NotFoundError
from polarity_keystone import types as seed_types
from polarity_keystone.results import ReplicaResult
from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord
from polarity_keystone.types import (
    CostInfo,
    ForbiddenCheckResult,
    InvariantResult,
    RunMetrics,
    RunResults,
    ScenarioResult,
)
from tests.sdk.sdk_servers import KeystoneServer
from tests.server.export_data import EXPERIMENT_ID, SPANS, STATUSES, seed_experiment

EVENTS = 3 * len(SPANS)


@pytest.fixture
def seeded(socket_server: KeystoneServer) -> KeystoneServer:
    seed_experiment(socket_server.store)
    return socket_server


def test_the_iterators_page_through_every_event_span_and_scenario(seeded: KeystoneServer) -> None:
    ks = seeded.client()
    events = ks.export.traces(experiment_id=EXPERIMENT_ID, page_size=5)
    assert isinstance(events, Iterator)
    listed = list(events)
    assert len(listed) == EVENTS and [e["tool"] for e in listed[: len(SPANS)]] == [s["tool"] for s in SPANS]
    assert [e["tool"] for e in ks.export.traces(agent="refunds", sandbox_id="sb-s-fail")] == [
        "anthropic.create",
        "search",
    ]
    spans = list(ks.export.spans(root_span_id="sp-root", page_size=2))
    assert len(spans) == 9 and {s["span_id"] for s in spans} == {"sp-root", "sp-a", "sp-b"}
    assert [s["sandbox_id"] for s in ks.export.spans(parent_span_id="sp-root", tool="search")] == [
        f"sb-{s}" for s in STATUSES
    ]

    failed = list(ks.export.scenarios(experiment_id=EXPERIMENT_ID, status="failed"))
    assert [(type(s), s.scenario_id, s.status) for s in failed] == [(ScenarioResult, "s-fail", "fail")]
    every = list(ks.export.scenarios(EXPERIMENT_ID, page_size=1))
    assert [s.scenario_id for s in every] == sorted(STATUSES)
    assert isinstance(every[0].replicas[0], ReplicaResult)


def test_the_bundle_as_json_and_as_streamed_ndjson_lines(seeded: KeystoneServer) -> None:
    ks = seeded.client()
    bundle = ks.export.experiment(EXPERIMENT_ID, format="json")
    assert list(bundle) == ["experiment", "results", "scenarios", "replicas", "scores", "trace_events"]
    assert (bundle["experiment"]["id"], len(bundle["trace_events"])) == (EXPERIMENT_ID, EVENTS)

    ndjson = ks.export.experiment(EXPERIMENT_ID, format="ndjson")
    first = json.loads(next(ndjson))
    assert first["type"] == "experiment" and first["data"]["id"] == EXPERIMENT_ID
    rest = [json.loads(line) for line in ndjson]
    assert 1 + len(rest) == 1 + 1 + len(STATUSES) * 2 + EVENTS
    assert [line["data"] for line in rest if line["type"] == "trace_event"] == bundle["trace_events"]
    with pytest.raises(NotFoundError):
        ks.export.experiment("exp-missing", format="ndjson")


def test_the_bundle_holds_the_scores_of_the_experiments_rules(seeded: KeystoneServer) -> None:
    ks = seeded.client()
    rule = ks.scoring.create_rule("mentions-refund", "contains", {"text": "refund"})
    ks.scoring.score_experiment(EXPERIMENT_ID, [rule.id])
    bundle = ks.export.experiment(EXPERIMENT_ID)
    assert [(s["rule_id"], s["passed"]) for s in bundle["scores"]] == [(rule.id, False)] * len(STATUSES)
    assert bundle["scores"] == [
        score.model_dump(mode="json") for score in ks.scoring.get_scores(EXPERIMENT_ID)
    ]
    ndjson = [json.loads(line) for line in ks.export.experiment(EXPERIMENT_ID, format="ndjson")]
    assert [line["data"] for line in ndjson if line["type"] == "score"] == bundle["scores"]


def test_a_single_trace_and_another_projects_data(seeded: KeystoneServer) -> None:
    ks = seeded.client()
    trace = ks.export.trace("tr-sp-b")
    assert (trace["trace_id"], trace["count"], trace["truncated"]) == ("tr-sp-b", 3, False)
    assert {e["tool"] for e in trace["events"]} == {"anthropic.create"}

    seeded.store.add_project(ProjectRecord("proj_b", "b", datetime.now(UTC)))
    other = seeded.client(create_api_key(seeded.store, "b", "proj_b")[0])
    for call in (
        lambda: other.export.trace("tr-sp-b"),
        lambda: other.export.experiment(EXPERIMENT_ID),
        lambda: list(other.export.scenarios(EXPERIMENT_ID)),
        lambda: list(other.export.traces(experiment_id=EXPERIMENT_ID)),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert list(other.export.traces()) == [] and list(other.export.spans()) == []


def test_every_results_type_reads_the_servers_json_and_ignores_unknown_keys(seeded: KeystoneServer) -> None:
    ks = seeded.client()
    document: dict[str, Any] = ks._http.json("GET", f"/v1/experiments/{EXPERIMENT_ID}")
    newer = {**document, "added_by_a_newer_server": {"x": 1}}
    results = RunResults.from_dict(newer)
    assert (results.passed, results.failed, results.errors, len(results.scenarios)) == (1, 1, 1, 3)
    scenario = document["scenarios"][0]
    assert ScenarioResult.from_dict({**scenario, "later": 1}).scenario_id == scenario["scenario_id"]
    assert RunMetrics.from_dict({**document["metrics"], "later": 1}).pass_rate == results.metrics.pass_rate
    assert CostInfo.from_dict({"input_tokens": 3, "later": 1}).input_tokens == 3
    assert InvariantResult.from_dict({"name": "wrote", "passed": True, "later": 1}).passed
    assert ForbiddenCheckResult.from_dict({"rule": "no_rm", "violated": False, "later": 1}).rule == "no_rm"
    for name in seed_types.__all__:
        model = getattr(seed_types, name)
        if name != "KeystoneError":
            assert callable(getattr(model, "from_dict", None)), name


def test_get_trace_reads_like_the_dict_of_events_and_metrics(seeded: KeystoneServer) -> None:
    ks = seeded.client()
    trace = ks.sandboxes.get_trace("sb-s-pass")
    assert "events" in trace and "metrics" in trace and "missing" not in trace
    assert {"sandbox_id", "events", "metrics"} <= set(trace.keys()) == set(dict(trace))
    assert [event["tool"] for event in trace["events"]] == [s["tool"] for s in SPANS]
    assert trace["events"][2]["metadata"] == {"gen_ai.agent.name": "refunds"}
    assert trace["metrics"]["total_tool_calls"] == trace.metrics.total_tool_calls == 3
    assert trace.events[1].span_id == "sp-a"
