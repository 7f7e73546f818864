"""`/v1/runs` and `/v1/replicas` (the seed OpenAPI document's runs and replica suites): one replica with
a known seed, replay by seed, N-replica suites, their streams and webhooks."""

from __future__ import annotations

import json

import pytest

from tests.server.server_api import (
    Api,
    MakeApi,
    spec_yaml,
    sse_events,
    unreachable_engine,
    wait_until_finished,
)
from tests.stores import ENGINE_ON_ONE_STORE

MATRIX_SPEC = spec_yaml(command='echo "seed=$KEYSTONE_SEED size=$size"').replace(
    "{replicas: 1}", "{replicas: 1, matrix: {size: [s, l]}}"
)
TWO_CHECKS = spec_yaml(command="echo hi > out.txt").replace(
    "parallelism:", "  wrote: {check: {type: file_exists, path: out.txt}}\nparallelism:"
)


def test_a_run_is_refused_for_unknown_specs_sandboxes_seeds_and_cells(api: Api) -> None:
    api.upload(MATRIX_SPEC)

    def status(body: dict) -> tuple[int, str]:
        response = api.client.post("/v1/runs", json=body)
        return response.status_code, response.json()["error"]

    assert status({"spec_id": "missing"}) == (404, "not_found")
    assert status({"spec_id": "hello", "sandbox_id": "sb-x"}) == (400, "invalid_request")
    assert status({"spec_id": "hello", "seed": "seed_e3a91b2g"}) == (400, "invalid_request")
    assert status({"spec_id": "hello", "inputs": {"size": "xl"}}) == (400, "invalid_request")


def test_runs_and_suites_are_not_each_other_nor_plain_experiments(api: Api) -> None:
    api.upload(spec_yaml())
    experiment = api.client.post("/v1/experiments", json={"name": "x", "spec_id": "hello"}).json()

    assert api.client.get(f"/v1/runs/{experiment['id']}").status_code == 404
    assert api.client.get(f"/v1/replicas/{experiment['id']}").status_code == 404
    assert api.client.get(f"/v1/runs/{experiment['id']}/stream").status_code == 404


def test_a_run_without_an_engine_errors_and_its_stream_says_so(make_api: MakeApi) -> None:
    api = make_api(backend_factory=unreachable_engine)
    api.upload(MATRIX_SPEC)

    accepted = api.client.post("/v1/runs", json={"spec_id": "hello", "seed": "42", "inputs": {"size": "l"}})
    run_id = accepted.json()["id"]
    wait_until_finished(api, run_id)
    run = api.client.get(f"/v1/runs/{run_id}").json()
    events = sse_events(api.client.get(f"/v1/runs/{run_id}/stream").text)

    assert accepted.status_code == 202
    assert run_id.startswith("run_")
    assert (accepted.json()["status"], accepted.json()["seed"], accepted.json()["sandbox_id"]) == (
        "queued",
        "seed_000000000000002a",
        "",
    )
    assert (run["status"], run["inputs"]) == ("errored", {"size": "l"})
    assert run["error"].startswith("infrastructure error")
    assert [name for _, name, _ in events] == ["step", "step", "error"]
    assert json.loads(events[-1][2])["run_id"] == run_id
    assert json.loads(events[-1][2])["status"] == "errored"
    replay = api.client.post(f"/v1/runs/{run_id}/replay")
    assert replay.status_code == 202
    assert (replay.json()["seed"], replay.json()["inputs"]) == ("seed_000000000000002a", {"size": "l"})
    assert replay.json()["id"] != run_id


def test_a_replica_suite_lists_one_seed_per_replica(make_api: MakeApi) -> None:
    api = make_api(backend_factory=unreachable_engine)
    api.upload(MATRIX_SPEC)

    accepted = api.client.post("/v1/replicas", json={"spec_id": "hello", "n_replicas": 3, "seed": 9})
    suite_id = accepted.json()["id"]
    wait_until_finished(api, suite_id)
    suite = api.client.get(f"/v1/replicas/{suite_id}").json()

    assert accepted.status_code == 202 and suite_id.startswith("rep_")
    assert accepted.json()["status"] == "running"
    assert suite["n_replicas"] == 3
    assert len(suite["seeds"]) == len(set(suite["seeds"])) == 6  # 3 replicas x 2 matrix cells
    assert suite["status"] == "errored"
    assert api.client.post("/v1/replicas", json={"spec_id": "hello", "n_replicas": 1}).status_code == 400


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_a_run_reports_its_invariants_and_replays_identically(make_api: MakeApi) -> None:
    api = make_api(socket=True)
    api.upload(TWO_CHECKS)

    run_id = api.client.post("/v1/runs", json={"spec_id": "hello"}).json()["id"]
    events = sse_events(api.client.get(f"/v1/runs/{run_id}/stream").text)
    run = api.client.get(f"/v1/runs/{run_id}").json()

    assert run["status"] == "passed" and run["score"] == 1.0
    assert run["sandbox_id"].startswith("sb-") and run["duration_ms"] > 0
    assert [(i["invariant_id"], i["status"]) for i in run["invariant_results"]] == [
        ("ok", "passed"),
        ("wrote", "passed"),
    ]
    names = [name for _, name, _ in events]
    assert names.count("invariant_result") == 2 and names[-1] == "done"
    assert json.loads(events[-1][2]) == {
        "type": "done",
        "run_id": run_id,
        "status": "passed",
        "score": 1.0,
        "error": None,
    }
    replay_id = api.client.post(f"/v1/runs/{run_id}/replay").json()["id"]
    replayed = wait_until_finished(api, replay_id)
    assert replayed["seed"] == int(run["seed"].removeprefix("seed_"), 16)
    assert api.client.get(f"/v1/runs/{replay_id}").json()["status"] == "passed"


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_a_suite_seed_re_runs_that_replica(make_api: MakeApi) -> None:
    api = make_api()
    api.upload(MATRIX_SPEC)

    suite_id = api.client.post(
        "/v1/replicas", json={"spec_id": "hello", "n_replicas": 2, "inputs": {"size": "s"}}
    ).json()["id"]
    wait_until_finished(api, suite_id)
    suite = api.client.get(f"/v1/replicas/{suite_id}").json()
    results = api.client.get(f"/v1/experiments/{suite_id}").json()
    second = results["scenarios"][0]["replicas"][1]
    run_id = api.client.post(
        "/v1/runs", json={"spec_id": "hello", "seed": suite["seeds"][1], "inputs": {"size": "s"}}
    ).json()["id"]
    rerun = wait_until_finished(api, run_id)

    assert (suite["status"], suite["passed"], suite["failed"], suite["failure_rate"]) == (
        "complete",
        2,
        0,
        0.0,
    )
    assert second["agent_output"] == f"seed={int(suite['seeds'][1].removeprefix('seed_'), 16)} size=s\n"
    assert rerun["scenarios"][0]["replicas"][0]["agent_output"] == second["agent_output"]
