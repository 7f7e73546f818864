"""`Eval` recorded on a served server (SQLite and Postgres): the experiment lists, streams, compares and
exports like a spec experiment, fires alerts on completion, and the eval's history pages its runs; another
project's eval is 404; the bounds of `/v1/evals`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.scorers import Case, Scorer
from polarity_keystone.sdk import Eval, EvalResult, Keystone, eval_context
from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord
from tests.server.server_api import Api, MakeApi, spec_yaml, sse_events, unreachable_engine
from tests.server.test_server_alerts import _firings, _rule
from tests.server.test_server_webhooks import Receiver

ROWS = [{"input": value, "expected": value * 2, "metadata": {"n": value}} for value in range(4)]


@Scorer
def doubled(case: Case) -> bool:
    return bool(case.output == case.expected)


@Scorer
def small(case: Case) -> float:
    return 1.0 if case.output < 4 else 0.5


def double(value: int) -> int:
    if value == 3:
        raise ValueError("three is too many")
    return value * 2


def double_badly(value: int) -> int:
    return value * 2 if value < 2 else value


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api(
        socket=True,
        backend_factory=unreachable_engine,
        webhook_allow_private_networks=True,
        write_rate=1000.0,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def ks(api: Api) -> Iterator[Keystone]:
    with Keystone(api_key=api.key, base_url=api.base_url) as client:
        yield client


def _eval(ks: Keystone, task: Any, **options: Any) -> EvalResult:
    return Eval("doubling", data=ROWS, task=task, scores=[doubled, small], ks=ks, **options)


def test_an_eval_is_recorded_as_an_experiment_like_a_spec_experiment(
    api: Api, ks: Keystone, receiver: Receiver
) -> None:
    alert = _rule(api.client, condition="pass_rate < 0.8", eval_id="doubling", webhook_url=receiver.url)
    hook = {"url": receiver.url, "events": ["experiment.completed"], "secret": "s" * 16}
    assert api.client.post("/v1/webhooks", json=hook).status_code == 201

    baseline = _eval(ks, double, metadata={"branch": "main", "commit": "abc"})

    assert baseline.experiment_id is not None and baseline.run_results is not None
    assert (baseline.passed, baseline.failed) == (3, 1)
    results = baseline.run_results
    assert (results.total_scenarios, results.passed, results.errors) == (4, 3, 1)
    assert results.metrics.pass_rate == 1.0  # over the cases judged: an errored one is no verdict
    experiment = api.client.get(f"/v1/experiments/{baseline.experiment_id}").json()
    assert (experiment["status"], experiment["spec_id"], experiment["spec_version"]) == (
        "completed",
        "doubling",
        0,
    )
    assert experiment["metadata"] == {"branch": "main", "commit": "abc"}
    first = experiment["scenarios"][0]
    assert (first["scenario_id"], first["agent_output"], first["status"]) == ("case-0", "0", "pass")
    assert first["parameters"] == {"input": 0, "expected": 0, "metadata": {"n": 0}, "tags": []}
    assert [(i["name"], i["passed"], i["score"], i["weight"]) for i in first["invariants"]] == [
        ("doubled", True, 1.0, 1.0),
        ("small", True, 1.0, 1.0),
    ]
    broken = experiment["scenarios"][3]
    assert broken["status"] == "error" and broken["error"].rstrip().endswith("ValueError: three is too many")

    listed = api.client.get(
        "/v1/experiments", params={"spec_id": "doubling", "metadata.branch": "main"}
    ).json()
    assert [e["id"] for e in listed] == [baseline.experiment_id]
    stream = api.client.get(f"/v1/experiments/{baseline.experiment_id}/stream").text
    kinds = [kind for _id, kind, _data in sse_events(stream)]
    assert kinds.count("replica_done") == 4 and kinds[-1] == "done"
    assert api.client.get(f"/v1/metrics/experiments/{baseline.experiment_id}").status_code == 200
    assert api.client.get(f"/v1/alerts/{alert['id']}/firings").json() == []
    headers, body = receiver.deliveries.get(timeout=10)  # the completion webhook a spec experiment sends
    assert headers["Keystone-Event"] == "experiment.completed"
    assert (json.loads(body)["id"], json.loads(body)["passed"]) == (baseline.experiment_id, 3)

    candidate = _eval(ks, double_badly, metadata={"branch": "feature"})
    [firing] = _firings(api.client, alert["id"])  # pass rate 0.5 < 0.8, as a spec experiment's would
    assert firing["experiment_id"] == candidate.experiment_id
    compared = api.client.post(
        "/v1/experiments/compare",
        json={"baseline_id": baseline.experiment_id, "candidate_id": candidate.experiment_id},
    )
    assert compared.status_code == 200, compared.text
    assert {row["scenario_id"] for row in compared.json()["scenarios"]} == {f"case-{i}" for i in range(4)}
    bundle = api.client.get(f"/v1/experiments/{candidate.experiment_id}/export").json()
    assert [r["scenario_id"] for r in bundle["replicas"]] == [f"case-{i}" for i in range(4)]

    history = ks.evals.history("doubling")
    assert [run.experiment_id for run in history] == [candidate.experiment_id, baseline.experiment_id]
    assert history[1].metadata == {"branch": "main", "commit": "abc"}
    assert (history[0].pass_rate, history[1].pass_rate) == (0.5, 1.0)
    assert history[1].scores == pytest.approx({"doubled": 1.0, "small": (1 + 1 + 0.5) / 3})
    page = api.client.get("/v1/evals/doubling/history", params={"limit": 1}).json()
    assert (page["count"], page["items"][0]["experiment_id"]) == (1, candidate.experiment_id)
    assert page["next_cursor"]


def test_an_eval_file_context_records_with_its_metadata_and_key(api: Api, ks: Keystone) -> None:
    heard: list[EvalResult] = []
    with eval_context(
        ks=ks, metadata={"commit": "c1"}, idempotency_key=lambda name: f"ci-7-{name}", on_result=heard.append
    ):
        result = Eval("ctx", data=ROWS[:2], task=double, scores=[doubled], metadata={"branch": "b"})
        # the same CI job run again: its key answers the experiment recorded then, and nothing is sent twice
        again = Eval("ctx", data=ROWS[:2], task=double, scores=[doubled], metadata={"branch": "b"})
    assert heard == [result, again]
    assert again.experiment_id == result.experiment_id and again.run_results == result.run_results
    experiment = api.client.get(f"/v1/experiments/{result.experiment_id}").json()
    assert experiment["metadata"] == {"commit": "c1", "branch": "b"}
    assert [e["id"] for e in api.client.get("/v1/experiments", params={"spec_id": "ctx"}).json()] == [
        result.experiment_id
    ]


def test_a_dataset_feeds_an_eval(ks: Keystone) -> None:
    dataset = ks.datasets.create("numbers")
    ks.datasets.add_records(
        dataset.id, [{"input": 1, "expected": 2, "tags": ["odd"]}, {"input": 2, "expected": 4}]
    )
    by_object = Eval("from-dataset", data=dataset, task=double, scores=[doubled], ks=ks)
    assert [case.input for case in by_object.cases] == [1, 2] and by_object.passed == 2
    tagged = Eval(
        "from-dataset", data={"dataset": dataset.id, "tags": ["odd"]}, task=double, scores=[doubled], ks=ks
    )
    [case] = tagged.cases
    assert (case.input, case.tags, case.id is not None) == (1, ("odd",), True)
    experiment = ks.experiments.get(str(tagged.experiment_id))
    assert [s.scenario_id for s in experiment.scenarios] == [case.id]  # a record's id names its scenario


def test_another_projects_eval_is_not_found(api: Api, ks: Keystone) -> None:
    result = _eval(ks, double)
    store = api.context.store
    store.add_project(ProjectRecord("proj_b", "proj-b", datetime.now(UTC)))
    other = api.as_key(create_api_key(store, "b", "proj_b")[0])
    for method, path in (
        ("GET", "/v1/evals/doubling/history"),
        ("POST", f"/v1/evals/{result.experiment_id}/complete"),
        ("GET", f"/v1/experiments/{result.experiment_id}"),
    ):
        assert other.request(method, path).status_code == 404, path
    assert (
        other.post(f"/v1/evals/{result.experiment_id}/cases", json={"cases": [{"index": 0}]}).status_code
        == 404
    )


def _started(client: httpx.Client, **fields: Any) -> str:
    answer = client.post("/v1/evals", json={"name": "bounded", "total_cases": 3, "scorers": [], **fields})
    assert answer.status_code == 201, answer.text
    experiment_id: str = answer.json()["id"]
    return experiment_id


def test_the_bounds_of_an_eval(api: Api) -> None:
    client = api.client
    assert client.post("/v1/evals", json={"name": "no spaces", "total_cases": 1}).status_code == 400
    assert client.post("/v1/evals", json={"name": "big", "total_cases": 10_001}).status_code == 400
    api.upload(spec_yaml("checkout"))
    taken = client.post("/v1/evals", json={"name": "checkout", "total_cases": 1})
    assert (taken.status_code, taken.json()["error"]) == (409, "name_taken")

    experiment_id = _started(client)
    cases = f"/v1/evals/{experiment_id}/cases"
    too_many = {"cases": [{"index": i} for i in range(101)]}
    assert client.post(cases, json=too_many).status_code == 400
    huge = {"cases": [{"index": 0, "input": "x" * 70_000}]}
    assert client.post(cases, json=huge).status_code == 413
    long_output = client.post(cases, json={"cases": [{"index": 0, "output": "y" * 70_000}]})
    assert long_output.json() == {"stored": 1, "done": 1, "total": 3}
    assert client.post(cases, json={"cases": [{"index": 0}]}).status_code == 409  # recorded already
    past_total = {"cases": [{"index": i} for i in (1, 2, 3)]}
    assert client.post(cases, json=past_total).status_code == 400
    completed = client.post(f"/v1/evals/{experiment_id}/complete")
    assert completed.status_code == 200, completed.text
    output = completed.json()["scenarios"][0]["agent_output"]
    assert output.startswith("y" * 65_536) and output.endswith("[truncated 4464 characters]")
    again = client.post(f"/v1/evals/{experiment_id}/complete")
    assert again.json().get("id") == experiment_id, again.text[:300]  # completing again answers the same
    assert client.post(cases, json={"cases": [{"index": 1}]}).status_code == 409  # completed
    assert client.post(f"/v1/experiments/{experiment_id}/run").status_code == 409
    assert client.get("/v1/evals/never-ran/history").status_code == 404
