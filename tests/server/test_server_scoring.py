"""Score rules (`/v1/score-rules`) and offline scoring on both stores: each rule type applied to the
replicas of an experiment whose results are stored directly (nothing runs in Docker), re-scoring
replacing earlier scores, a judge rule skipped without a configured judge and scored by a local fake
model server otherwise, the bounds, and projects kept apart."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.judge import _client as judge_client
from polarity_keystone.results import ReplicaResult, RunResults, ScenarioResult
from polarity_keystone.server import create_api_key
from polarity_keystone.store import DEFAULT_PROJECT, ExperimentRecord, ProjectRecord, Store
from tests.scoring.test_llm_judge import ENV_VARS, FakeModel, Reply
from tests.server.server_api import Api, MakeApi, unreachable_engine

OUTPUTS = {"refund": ["Refund issued: order 42", "I could not find the order"], "greet": ["hello there"]}
"""Agent output of each replica, per scenario."""


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api(backend_factory=unreachable_engine)


@pytest.fixture
def no_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@contextmanager
def configured_judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeModel]:
    """A fake OpenAI-compatible model server on a real socket, configured as the server's judge."""
    model = FakeModel()
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYSTONE_JUDGE_BASE_URL", model.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-judge")
    monkeypatch.setattr(judge_client, "BACKOFF", 0.01)
    try:
        yield model
    finally:
        model.close()


@pytest.fixture
def judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeModel]:
    with configured_judge(monkeypatch) as model:
        yield model


def stored_experiment(
    store: Store,
    experiment_id: str,
    project_id: str = DEFAULT_PROJECT,
    outputs_by_scenario: Mapping[str, list[str]] = OUTPUTS,
) -> None:
    """A completed experiment with these replicas' agent output (per scenario), stored as the runner
    would."""
    now = datetime.now(UTC)
    scenarios = [
        ScenarioResult(
            scenario_id=scenario,
            status="pass",
            replicas=[
                ReplicaResult(
                    replica=index,
                    seed=index,
                    status="pass",
                    sandbox_id=f"sb-{scenario}-{index}",
                    agent_output=out,
                )
                for index, out in enumerate(outputs)
            ],
        )
        for scenario, outputs in outputs_by_scenario.items()
    ]
    results = RunResults(
        ran_at=now.isoformat(), spec_id="s", experiment_id=experiment_id, seed=1, scenarios=scenarios
    )
    store.add_experiment(
        ExperimentRecord(
            experiment_id,
            experiment_id,
            "s",
            1,
            "completed",
            now,
            "key_x",
            results=results.model_dump(mode="json"),
            project_id=project_id,
        )
    )


def create_rule(client: httpx.Client, rule_type: str, config: dict[str, Any], name: str = "r") -> str:
    response = client.post("/v1/score-rules", json={"name": name, "type": rule_type, "config": config})
    assert response.status_code == 201, response.text
    rule_id: str = response.json()["id"]
    return rule_id


def score(client: httpx.Client, experiment_id: str, *rule_ids: str) -> dict[str, Any]:
    response = client.post(f"/v1/experiments/{experiment_id}/score", json={"rule_ids": list(rule_ids)})
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def verdicts(client: httpx.Client, experiment_id: str, rule_id: str) -> dict[str, tuple[Any, ...]]:
    """trace id -> (score, passed, state) of the rule's scores of the experiment."""
    scores = client.get(f"/v1/experiments/{experiment_id}/scores", params={"rule_id": rule_id}).json()
    return {s["trace_id"]: (s["score"], s["passed"], s["state"]) for s in scores}


def test_a_contains_rule_scores_every_replica_by_its_output_before_answering(api: Api) -> None:
    stored_experiment(api.context.store, "exp-old")
    rule_id = create_rule(api.client, "contains", {"text": "Refund issued"})

    accepted = score(api.client, "exp-old", rule_id)

    assert accepted.pop("accepted_at")
    assert accepted == {"experiment_id": "exp-old", "replicas": 3, "scored": [rule_id], "queued": []}
    [first, *_] = scores = api.client.get("/v1/experiments/exp-old/scores").json()
    assert {key for key in first} >= {
        "id",
        "rule_id",
        "trace_id",
        "experiment_id",
        "score",
        "passed",
        "message",
    }
    assert {s["trace_id"]: (s["scenario_id"], s["replica"]) for s in scores} == {
        "sb-refund-0": ("refund", 0),
        "sb-refund-1": ("refund", 1),
        "sb-greet-0": ("greet", 0),
    }
    assert verdicts(api.client, "exp-old", rule_id) == {
        "sb-refund-0": (1.0, True, "passed"),
        "sb-refund-1": (0.0, False, "failed"),
        "sb-greet-0": (0.0, False, "failed"),
    }
    assert {s["message"] for s in scores} == {
        "the output contains 'Refund issued'",
        "the output does not contain 'Refund issued'",
    }


def test_a_regex_rule_matches_anywhere_in_the_output_and_rescoring_replaces_its_scores(api: Api) -> None:
    stored_experiment(api.context.store, "exp-old")
    regex = create_rule(api.client, "regex", {"pattern": r"order \d+$"})
    contains = create_rule(api.client, "contains", {"text": "hello"})
    score(api.client, "exp-old", regex, contains)
    first = {s["id"] for s in api.client.get("/v1/experiments/exp-old/scores").json()}

    score(api.client, "exp-old", regex)

    again = api.client.get("/v1/experiments/exp-old/scores").json()
    assert len(again) == 6 and len(first & {s["id"] for s in again}) == 3  # only the regex's were replaced
    assert verdicts(api.client, "exp-old", regex) == {
        "sb-refund-0": (1.0, True, "passed"),
        "sb-refund-1": (0.0, False, "failed"),
        "sb-greet-0": (0.0, False, "failed"),
    }


def test_a_pattern_that_backtracks_catastrophically_is_skipped_after_the_time_limit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("polarity_keystone.server._scoring.MATCH_TIMEOUT", 1.0)
    stored_experiment(api.context.store, "exp-slow", outputs_by_scenario={"s": ["a" * 64 + "!"]})
    rule_id = create_rule(api.client, "regex", {"pattern": "^(a+)+$"})

    score(api.client, "exp-slow", rule_id)

    [skipped] = api.client.get("/v1/experiments/exp-slow/scores").json()
    assert (skipped["score"], skipped["passed"], skipped["state"]) == (None, False, "skipped")
    assert skipped["message"].startswith("skipped: matching /^(a+)+$/ took over 1s")


def test_a_judge_rule_without_a_configured_judge_is_skipped_saying_what_to_set(
    api: Api, no_judge: None
) -> None:
    stored_experiment(api.context.store, "exp-old")
    rule_id = create_rule(
        api.client, "llm_as_judge", {"model": "paragon-fast", "rubric": {"pass": "a refund", "fail": "none"}}
    )

    assert score(api.client, "exp-old", rule_id)["queued"] == [rule_id]

    scores = api.client.get("/v1/experiments/exp-old/scores").json()
    assert [(s["score"], s["passed"], s["state"]) for s in scores] == [(None, False, "skipped")] * 3
    assert all("set OPENAI_API_KEY" in s["message"] for s in scores)


def test_a_judge_rule_is_scored_by_the_configured_model_server(api: Api, judge: FakeModel) -> None:
    stored_experiment(api.context.store, "exp-old")
    rule_id = create_rule(
        api.client,
        "llm_as_judge",
        {"model": "judge-model", "criteria": "Was a refund issued?", "pass_threshold": 0.7},
    )
    judge.answer(
        '{"score": 0.9, "reasoning": "refund issued"}',
        Reply(status=503),  # retried
        '{"score": 0.2, "reasoning": "no refund"}',
        "0.5",
    )

    score(api.client, "exp-old", rule_id)  # the in-process client returns once the queued scoring ran

    assert verdicts(api.client, "exp-old", rule_id) == {
        "sb-refund-0": (0.9, True, "passed"),
        "sb-refund-1": (0.2, False, "failed"),
        "sb-greet-0": (0.5, False, "failed"),
    }
    asked = [request.body for request in judge.requests]
    assert {body["model"] for body in asked} == {"judge-model"} and len(asked) == 4
    assert "Was a refund issued?" in asked[0]["messages"][-1]["content"]
    assert "Refund issued: order 42" in asked[0]["messages"][-1]["content"]
    assert judge.requests[0].headers["authorization"] == "Bearer sk-test-judge"
    message = api.client.get("/v1/experiments/exp-old/scores").json()[0]["message"]
    assert message == "judge-model scored 0.90 (>= 0.7): refund issued"


@pytest.mark.parametrize(
    ("rule_type", "config", "field"),
    [
        ("contains", {}, "config.text"),
        ("contains", {"text": "x", "extra": 1}, "config.extra"),
        ("contains", {"text": "x" * 1001}, "config.text"),
        ("regex", {"pattern": "(unclosed"}, "config.pattern"),
        ("regex", {"pattern": "a" * 501}, "config.pattern"),
        ("llm_as_judge", {"model": "m"}, "config.criteria"),
        ("llm_as_judge", {"criteria": "c", "pass_threshold": 2}, "config.pass_threshold"),
        ("llm_as_judge", {"rubric": {"pass": "p", "other": "o"}}, "config.rubric.other"),
    ],
)
def test_a_bad_rule_config_is_refused_naming_its_field(
    api: Api, rule_type: str, config: dict[str, Any], field: str
) -> None:
    response = api.client.post("/v1/score-rules", json={"name": "r", "type": rule_type, "config": config})
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["details"]["field"] == field and error["message"].startswith(f"{field}: ")


def test_rules_are_bounded_per_project_and_per_request(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("polarity_keystone.server._routes_scoring.MAX_SCORE_RULES_PER_PROJECT", 2)
    body = {"name": "r", "type": "contains", "config": {"text": "x"}}
    assert [api.client.post("/v1/score-rules", json=body).status_code for _ in range(3)] == [201, 201, 400]
    stored_experiment(api.context.store, "exp-old")
    too_many = {"rule_ids": [f"rule_{n}" for n in range(21)]}
    assert api.client.post("/v1/experiments/exp-old/score", json=too_many).status_code == 400


def test_rules_list_delete_and_stay_within_their_project(api: Api) -> None:
    store = api.context.store
    store.add_project(ProjectRecord("proj-b", "b", datetime.now(UTC)))
    b = api.as_key(create_api_key(store, "b", "proj-b")[0])
    mine = create_rule(api.client, "contains", {"text": "Refund"}, name="mine")
    theirs = create_rule(b, "regex", {"pattern": "hello"}, name="theirs")
    stored_experiment(api.context.store, "exp-a")
    stored_experiment(api.context.store, "exp-b", project_id="proj-b")

    [listed] = api.client.get("/v1/score-rules").json()
    assert (listed["id"], listed["name"], listed["type"], listed["config"]) == (
        mine,
        "mine",
        "contains",
        {"text": "Refund"},
    )
    assert [rule["id"] for rule in b.get("/v1/score-rules").json()] == [theirs]
    assert api.client.delete(f"/v1/score-rules/{theirs}").status_code == 404
    answers = [
        api.client.post("/v1/experiments/exp-a/score", json={"rule_ids": [theirs]}),
        api.client.post("/v1/experiments/exp-b/score", json={"rule_ids": [mine]}),
        api.client.get("/v1/experiments/exp-b/scores"),
        api.client.get("/v1/scores", params={"experiment_id": "exp-b"}),
    ]
    assert [answer.status_code for answer in answers] == [404] * 4

    score(b, "exp-b", theirs)
    assert len(b.get("/v1/experiments/exp-b/scores").json()) == 3
    assert b.delete(f"/v1/score-rules/{theirs}").status_code == 204
    assert b.get("/v1/experiments/exp-b/scores").json() == []  # a deleted rule's scores go with it
    assert b.get("/v1/score-rules").json() == []


def test_the_scores_export_pages_through_an_envelope_filtered_by_rule(api: Api) -> None:
    stored_experiment(api.context.store, "exp-abc")
    first = create_rule(api.client, "contains", {"text": "order"})
    second = create_rule(api.client, "contains", {"text": "hello"})
    score(api.client, "exp-abc", first, second)

    page = api.client.get("/v1/scores", params={"experiment_id": "exp-abc", "limit": 4}).json()
    rest = api.client.get(
        "/v1/scores", params={"experiment_id": "exp-abc", "limit": 4, "cursor": page["next_cursor"]}
    ).json()

    assert (page["count"], rest["count"], rest["next_cursor"]) == (4, 2, None)
    assert len({s["id"] for s in page["items"] + rest["items"]}) == 6
    only = api.client.get("/v1/scores", params={"experiment_id": "exp-abc", "rule_id": second}).json()
    assert {s["rule_id"] for s in only["items"]} == {second} and only["count"] == 3
    assert api.client.get("/v1/scores").status_code == 400  # experiment_id is required
