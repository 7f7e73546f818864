"""`/v1/experiments` without sandboxes: create, list, partial results, runs that cannot reach an engine,
restart recovery, compare and metrics. (Runs in real sandboxes: test_server_experiment_runs.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from polarity_keystone.engine._aggregate import aggregate_run, aggregate_scenario
from polarity_keystone.results import ReplicaResult
from polarity_keystone.store import ExperimentRecord, ReplicaRecord, Store
from tests.server.server_api import (
    Api,
    MakeApi,
    spec_yaml,
    sse_events,
    unreachable_engine,
    wait_until_finished,
)

MATRIX = "{replicas: 3, matrix: {model: [small, large]}}"


def test_create_returns_the_experiment_with_its_plan(api: Api) -> None:
    api.upload(spec_yaml(replicas=3))
    api.upload(spec_yaml(replicas=3).replace("{replicas: 3}", MATRIX))  # version 2: two scenarios

    response = api.client.post(
        "/v1/experiments",
        json={
            "name": "baseline",
            "spec_id": "hello",
            "spec_version": 1,
            "metadata": {"branch": "main"},
            "seed": 7,
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("exp-")
    assert (body["name"], body["spec_id"], body["spec_version"], body["status"]) == (
        "baseline",
        "hello",
        1,
        "created",
    )
    assert body["metadata"] == {"branch": "main"}
    assert body["options"]["seed"] == 7
    assert body["options"]["replicas"] == 3
    assert body["progress"]["total"] == 3


def test_create_needs_an_existing_spec(api: Api) -> None:
    response = api.client.post("/v1/experiments", json={"name": "x", "spec_id": "missing"})

    assert response.status_code == 404
    assert "missing" in response.json()["message"]


def test_results_before_the_run_count_every_scenario_of_the_matrix(api: Api) -> None:
    api.upload(spec_yaml(replicas=2).replace("{replicas: 2}", "{replicas: 2, matrix: {size: [s, l]}}"))
    created = api.client.post("/v1/experiments", json={"name": "m", "spec_id": "hello"}).json()

    body = api.client.get(f"/v1/experiments/{created['id']}").json()

    assert body["status"] == "created"
    assert body["experiment_id"] == created["id"] == body["id"]
    assert body["total_scenarios"] == 2
    assert (body["passed"], body["failed"], body["flaky"], body["errors"]) == (0, 0, 0, 0)
    assert body["scenarios"] == []
    assert body["progress"]["total"] == 4
    assert body["seed"] == created["options"]["seed"]


def test_list_filters_by_spec_status_and_metadata_newest_first(api: Api) -> None:
    api.upload(spec_yaml("a"))
    api.upload(spec_yaml("b"))
    ids = {}
    for name, spec_id, branch in [("one", "a", "main"), ("two", "a", "feature"), ("three", "b", "main")]:
        body = {"name": name, "spec_id": spec_id, "metadata": {"branch": branch, "repo": "acme/app"}}
        ids[name] = api.client.post("/v1/experiments", json=body).json()["id"]

    def names(**params: str) -> list[str]:
        return [e["name"] for e in api.client.get("/v1/experiments", params=params).json()]

    assert names() == ["three", "two", "one"]
    assert names(spec_id="a") == ["two", "one"]
    assert names(**{"metadata.branch": "main"}) == ["three", "one"]
    assert names(**{"metadata.branch": "main", "metadata.repo": "acme/app", "spec_id": "a"}) == ["one"]
    assert names(status="created") == ["three", "two", "one"]
    assert names(status="completed") == []
    page = api.client.get("/v1/experiments", params={"limit": 2, "metadata.repo": "acme/app"})
    rest = api.client.get(page.links["next"]["url"])
    assert [e["id"] for e in page.json() + rest.json()] == [ids["three"], ids["two"], ids["one"]]
    assert "next" not in rest.links


def test_a_run_without_an_engine_fails_with_every_scenario_an_error(make_api: MakeApi) -> None:
    api = make_api(backend_factory=unreachable_engine)
    api.upload(spec_yaml())
    created = api.client.post("/v1/experiments", json={"name": "x", "spec_id": "hello"}).json()

    accepted = api.client.post(f"/v1/experiments/{created['id']}/run")
    body = wait_until_finished(api, created["id"])

    assert accepted.status_code == 202
    assert accepted.json()["status"] == "queued"
    assert body["status"] == "failed"
    assert body["error"].startswith("infrastructure error: no Docker engine answers")
    assert (body["total_scenarios"], body["errors"]) == (1, 1)
    assert body["scenarios"][0]["status"] == "error"
    assert body["finished_at"] is not None
    again = api.client.post(f"/v1/experiments/{created['id']}/run")
    assert again.status_code == 409
    assert "failed" in again.json()["message"]
    events = sse_events(api.client.get(f"/v1/experiments/{created['id']}/stream").text)
    statuses = [json.loads(data)["status"] for _, _, data in events]
    assert statuses == ["queued", "running", "failed"]
    assert events[-1][1] == "error"


def test_secrets_are_held_in_memory_only_so_a_restart_loses_them(make_api: MakeApi) -> None:
    api = make_api(backend_factory=unreachable_engine)
    api.upload(spec_yaml())
    created = api.client.post(
        "/v1/experiments", json={"name": "x", "spec_id": "hello", "secrets": {"TOKEN": "t0ps3cret-value"}}
    ).json()
    assert created["options"]["secret_names"] == ["TOKEN"]

    restarted = make_api(backend_factory=unreachable_engine)  # a new server process on the same store
    response = restarted.client.post(f"/v1/experiments/{created['id']}/run")

    assert response.status_code == 409
    assert response.json()["error"] == "secrets_unavailable"
    store = restarted.context.store
    assert "t0ps3cret-value" not in repr(store.get_experiment(created["id"]))
    assert all("t0ps3cret-value" not in repr(e) for e in store.events_after(f"experiment:{created['id']}", 0))


def _unfinished(store: Store, status: str) -> str:
    """An experiment a crashed server left `status`, with one of its two replicas stored."""
    experiment_id = f"exp-left-{status}"
    store.add_experiment(
        ExperimentRecord(
            id=experiment_id,
            name="left behind",
            spec_id="hello",
            spec_version=1,
            status=status,  # type: ignore[arg-type]
            created_at=datetime.now(UTC),
            owner="key_x",
            options={"replicas": 2, "seed": 5, "scenarios": [{"scenario_id": "hello", "parameters": {}}]},
            progress={"total": 2, "done": 1},
        )
    )
    replica = ReplicaResult(replica=0, seed=11, status="pass", sandbox_id="sb-gone", wall_ms=1200)
    store.add_replica(
        ReplicaRecord(experiment_id, "hello", 0, replica.model_dump(mode="json"), datetime.now(UTC))
    )
    return experiment_id


def test_start_up_marks_experiments_left_running_interrupted_keeping_their_replicas(
    make_api: MakeApi,
) -> None:
    first = make_api()
    running, queued = _unfinished(first.context.store, "running"), _unfinished(first.context.store, "queued")

    restarted = make_api()

    body = restarted.client.get(f"/v1/experiments/{running}").json()
    assert body["status"] == "interrupted"
    assert "kept 1 finished replica" in body["error"]
    (scenario,) = body["scenarios"]
    assert scenario["status"] == "error"
    assert [r["seed"] for r in scenario["replicas"]] == [11]
    assert (body["total_scenarios"], body["errors"]) == (1, 1)
    assert restarted.client.get(f"/v1/experiments/{queued}").json()["status"] == "interrupted"
    assert restarted.context.store.interrupt_abandoned_experiments() == []
    events = sse_events(restarted.client.get(f"/v1/experiments/{running}/stream").text)
    assert events[-1][1] == "error" and '"interrupted"' in events[-1][2]


# --- compare and metrics ------------------------------------------------------------------------


def _finished(
    store: Store, experiment_id: str, outcomes: str, *, age_s: float = 0, spec_id: str = "hello"
) -> None:
    """A completed experiment whose replicas passed (`p`) or failed (`f`) as given."""
    status = {"p": "pass", "f": "fail"}
    replicas = [
        ReplicaResult(
            replica=i, seed=i, status=status[o], sandbox_id=f"sb-{experiment_id}-{i}", wall_ms=100 * (i + 1)
        )  # type: ignore[arg-type]
        for i, o in enumerate(outcomes)
    ]
    scenario = aggregate_scenario(spec_id, spec_id, {}, replicas)
    results = aggregate_run(
        spec_id=spec_id,
        experiment_id=experiment_id,
        seed=1,
        scenarios=[scenario],
        fingerprint={},
        spec_file="",
        k=len(replicas),
    )
    when = datetime.now(UTC) - timedelta(seconds=age_s)
    store.add_experiment(
        ExperimentRecord(
            id=experiment_id,
            name=experiment_id,
            spec_id=spec_id,
            spec_version=1,
            status="completed",
            created_at=when,
            owner="key_x",
            options={"replicas": len(replicas), "scenarios": [{"scenario_id": spec_id, "parameters": {}}]},
            results=results.model_dump(mode="json"),
            finished_at=when,
        )
    )


def test_compare_calls_a_significant_pass_rate_drop_a_regression(api: Api) -> None:
    _finished(api.context.store, "exp-base", "p" * 10)
    _finished(api.context.store, "exp-bad", "pp" + "f" * 8)

    body = api.client.post(
        "/v1/experiments/compare", json={"baseline_id": "exp-base", "candidate_id": "exp-bad"}
    ).json()

    assert body["regressed"] is True
    assert body["regressions"][0].startswith("pass_rate dropped from 1.00 to 0.20")
    pass_rate = next(m for m in body["metrics"] if m["name"] == "pass_rate")
    assert (pass_rate["baseline"], pass_rate["candidate"], pass_rate["direction"]) == (1.0, 0.2, "worse")
    assert pass_rate["delta"] == pytest.approx(-0.8)
    assert pass_rate["p_value"] < 0.001
    assert body["scenarios"][0]["regressed"] is True


def test_compare_does_not_call_noise_a_regression(api: Api) -> None:
    _finished(api.context.store, "exp-base", "ppppppppp" + "f")
    _finished(api.context.store, "exp-same", "pppppppp" + "ff")

    body = api.client.post(
        "/v1/experiments/compare", json={"baseline_id": "exp-base", "candidate_id": "exp-same"}
    ).json()

    assert body["regressed"] is False
    assert body["regressions"] == []
    assert body["summary"] == "no regression"  # 9/10 -> 8/10 does not even lean towards a drop (p=0.5)
    assert body["scenarios"][0]["decision"] == "unchanged"


def test_compare_needs_finished_experiments(api: Api) -> None:
    _finished(api.context.store, "exp-base", "pp")
    api.upload(spec_yaml())
    created = api.client.post("/v1/experiments", json={"name": "x", "spec_id": "hello"}).json()

    unfinished = api.client.post(
        "/v1/experiments/compare", json={"baseline_id": "exp-base", "candidate_id": created["id"]}
    )
    unknown = api.client.post(
        "/v1/experiments/compare", json={"baseline_id": "exp-base", "candidate_id": "exp-nope"}
    )

    assert unfinished.status_code == 409
    assert unknown.status_code == 404


def test_metrics_summarise_the_run_the_agents_traces_and_the_trend(api: Api) -> None:
    store = api.context.store
    _finished(store, "exp-older", "pf", age_s=60)
    _finished(store, "exp-now", "ppp")
    store.add_trace_events(
        "sb-exp-now-0",
        "key_x",
        [
            {"event_type": "tool_call", "tool": "sql", "phase": "start"},
            {"event_type": "tool_call", "tool": "sql", "phase": "end", "duration_ms": 10, "status": "ok"},
            {"event_type": "tool_call", "tool": "http", "phase": "end", "duration_ms": 30, "status": "error"},
            {"event_type": "llm_call", "tool": "anthropic.create", "phase": "complete"},
        ],
    )

    body = api.client.get("/v1/metrics/experiments/exp-now").json()

    assert body["experiment_id"] == "exp-now"
    summary = body["summary"]
    assert (summary["total_runs"], summary["pass_rate"], summary["total_tool_calls"]) == (3, 1.0, 2)
    assert summary["tool_success_rate"] == 0.5
    assert summary["mean_wall_ms"] == 200.0
    assert body["tool_breakdown"] == {
        "http": {"count": 1, "mean_ms": 30.0, "error_rate": 1.0},
        "sql": {"count": 1, "mean_ms": 10.0, "error_rate": 0.0},
    }
    assert [(p["run_id"], p["pass_rate"]) for p in body["pass_rate_trend"]] == [
        ("exp-older", 0.5),
        ("exp-now", 1.0),
    ]
    assert [p["run_id"] for p in body["cost_trend"]] == ["exp-older", "exp-now"]
