"""`POST /v1/experiments/{id}/extend`: more replicas of some scenarios of a completed experiment, as the
gate's adaptive replicas ask for them. The replicas run before are kept as they were, the new ones get
the seeds that follow theirs, and the experiment ends completed with all of them."""

from __future__ import annotations

import textwrap

import pytest

from tests.server.server_api import Api, MakeApi, wait_until_finished
from tests.stores import ENGINE_ON_ONE_STORE

pytestmark = [pytest.mark.docker, ENGINE_ON_ONE_STORE]

SECRET = "extend-s3cr3t-value"
SPEC = textwrap.dedent(
    """\
    version: 1
    id: grow
    description: replicas that say who they are
    base: "debian:bookworm-slim"
    task: {prompt: "say hi"}
    agent: {type: cli, command: 'echo "replica=$KEYSTONE_REPLICA seed=$KEYSTONE_SEED token=$API_TOKEN"'}
    secrets:
      - name: API_TOKEN
    invariants:
      ok: {check: {type: command_exit, command: "true"}}
    parallelism: {replicas: 2, matrix: {tone: [calm, loud]}}
    """
)
CALM, LOUD = "grow[tone=calm]", "grow[tone=loud]"


def _completed_experiment(api: Api) -> str:
    assert api.upload(SPEC).status_code == 201
    created = api.client.post(
        "/v1/experiments", json={"name": "grow", "spec_id": "grow", "secrets": {"API_TOKEN": SECRET}}
    )
    experiment_id: str = created.json()["id"]
    assert api.client.post(f"/v1/experiments/{experiment_id}/run").status_code == 202
    assert wait_until_finished(api, experiment_id)["status"] == "completed"
    return experiment_id


def _outputs(results: dict[str, object], scenario_id: str) -> list[str]:
    scenario = next(s for s in results["scenarios"] if s["scenario_id"] == scenario_id)  # type: ignore[attr-defined]
    return [replica["agent_output"].strip() for replica in scenario["replicas"]]


def test_extend_runs_only_the_missing_replicas_of_the_scenarios_named(make_api: MakeApi) -> None:
    api = make_api(socket=True)
    experiment_id = _completed_experiment(api)
    before = api.client.get(f"/v1/experiments/{experiment_id}").json()

    without_secret = api.client.post(f"/v1/experiments/{experiment_id}/extend", json={"replicas": {CALM: 4}})
    unknown = api.client.post(
        f"/v1/experiments/{experiment_id}/extend", json={"replicas": {"grow[tone=shy]": 4}}
    )
    body = {"replicas": {CALM: 4}, "secrets": {"API_TOKEN": SECRET}}
    accepted = api.client.post(f"/v1/experiments/{experiment_id}/extend", json=body)
    results = wait_until_finished(api, experiment_id)
    again = api.client.post(f"/v1/experiments/{experiment_id}/extend", json=body)

    assert without_secret.status_code == 409 and without_secret.json()["error"] == "secrets_unavailable"
    assert "API_TOKEN" in without_secret.json()["message"]
    assert unknown.status_code == 400 and "grow[tone=shy]" in unknown.json()["message"]
    assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
    assert results["status"] == "completed"
    calm = _outputs(results, CALM)
    assert [line.split()[0] for line in calm] == [f"replica={i}" for i in range(4)]
    assert calm[:2] == _outputs(before, CALM)  # kept as they were, not run again
    assert len({line.split()[1] for line in calm}) == 4  # every replica its own seed
    assert all(line.endswith("token=***") for line in calm)
    assert _outputs(results, LOUD) == _outputs(before, LOUD)
    scenarios = {s["scenario_id"]: s for s in results["scenarios"]}
    assert (scenarios[CALM]["replicas_total"], scenarios[LOUD]["replicas_total"]) == (4, 2)
    assert (results["progress"]["done"], results["progress"]["total"]) == (6, 6)
    assert sorted(r.replica_index for r in api.context.store.replicas(experiment_id)) == [0, 0, 1, 1, 2, 3]
    # asked again: nothing more runs
    assert again.status_code == 202 and again.json()["status"] == "completed"
    assert len(api.context.store.replicas(experiment_id)) == 6


def test_only_a_completed_experiment_grows(make_api: MakeApi) -> None:
    api = make_api()
    assert api.upload(SPEC).status_code == 201
    created = api.client.post(
        "/v1/experiments", json={"name": "grow", "spec_id": "grow", "secrets": {"API_TOKEN": SECRET}}
    ).json()["id"]
    body = {"replicas": {CALM: 3}, "secrets": {"API_TOKEN": SECRET}}
    not_run = api.client.post(f"/v1/experiments/{created}/extend", json=body)
    too_many = api.client.post(f"/v1/experiments/{created}/extend", json={"replicas": {CALM: 1001}})
    empty = api.client.post(f"/v1/experiments/{created}/extend", json={"replicas": {}})

    assert not_run.status_code == 409 and "created" in not_run.json()["message"]
    assert too_many.status_code == 400 and empty.status_code == 400
