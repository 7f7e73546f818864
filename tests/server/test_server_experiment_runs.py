"""Experiments run through the API in real Docker sandboxes: the worker pool and its limits, replicas
stored as they finish, the event stream, secrets that never persist, and a stop mid-experiment."""

from __future__ import annotations

import json
import time

import pytest

from polarity_keystone.server import close_app
from tests.server.server_api import Api, MakeApi, spec_yaml, sse_events, wait_until_finished
from tests.stores import ENGINE_ON_ONE_STORE
from tests.waiting import wait_until

pytestmark = [pytest.mark.docker, ENGINE_ON_ONE_STORE]

SECRET = "s3cr3t-token-value"
SECRET_SPEC = spec_yaml(
    command='echo "token=$API_TOKEN"; echo "sandbox=$KEYSTONE_SANDBOX_ID"; '
    'echo "key=${KEYSTONE_API_KEY%%_*}"',
    replicas=2,
    extra="secrets:\n  - name: API_TOKEN\n",
)


def _create(api: Api, name: str, **body: object) -> str:
    response = api.client.post("/v1/experiments", json={"name": name, "spec_id": "hello", **body})
    assert response.status_code == 201, response.text
    experiment_id: str = response.json()["id"]
    return experiment_id


def test_an_experiment_runs_through_the_api_with_its_replicas_stored(make_api: MakeApi) -> None:
    api = make_api(socket=True, per_key_concurrency=1)
    assert api.upload(SECRET_SPEC).status_code == 201
    first = _create(api, "with-secret", secrets={"API_TOKEN": SECRET}, metadata={"branch": "main"})
    second = _create(api, "second", secrets={"API_TOKEN": SECRET})

    accepted = api.client.post(f"/v1/experiments/{first}/run")
    at_capacity = api.client.post(f"/v1/experiments/{second}/run")
    twice = api.client.post(f"/v1/experiments/{first}/run")
    stream = api.client.get(f"/v1/experiments/{first}/stream")  # follows until the terminal event
    results = api.client.get(f"/v1/experiments/{first}").json()

    assert accepted.status_code == 202
    assert at_capacity.status_code == 503
    assert at_capacity.json()["error"] == "at_capacity"
    assert int(at_capacity.headers["Retry-After"]) >= 1
    assert twice.status_code == 409
    events = sse_events(stream.text)
    kinds = [kind for _, kind, _ in events]
    assert kinds.count("replica_done") == 2 and kinds[-1] == "done"
    done = json.loads(events[-1][2])
    assert (done["status"], done["passed"], done["total_scenarios"]) == ("completed", 1, 1)

    assert results["status"] == "completed"
    assert (results["total_scenarios"], results["passed"], results["errors"]) == (1, 1, 0)
    assert results["progress"]["done"] == 2
    (scenario,) = results["scenarios"]
    outputs = [replica["agent_output"] for replica in scenario["replicas"]]
    assert all(output.startswith("token=***\nsandbox=sb-") and "key=ks\n" in output for output in outputs)

    store = api.context.store
    assert sorted(r.replica_index for r in store.replicas(first)) == [0, 1]
    sandboxes = [
        s
        for s in store.list_sandboxes(project_id=None, include_destroyed=True)
        if s.metadata.get("experiment_id") == first
    ]
    assert len(sandboxes) == 2 and {s.state for s in sandboxes} == {"destroyed"}
    tokens = [
        k for k in store.list_api_keys() if k.kind == "sandbox" and k.sandbox_id in {s.id for s in sandboxes}
    ]
    assert len(tokens) == 2 and all(k.revoked for k in tokens)

    persisted = [
        store.get_experiment(first),
        store.replicas(first),
        store.events_after(f"experiment:{first}", 0),
        sandboxes,
        *(store.events_after(f"sandbox:{s.id}", 0) for s in sandboxes),
    ]
    assert SECRET not in repr(persisted)
    assert SECRET not in stream.text and SECRET not in json.dumps(results)

    # The slot is free again: the second experiment runs, and the two compare as equals.
    assert api.client.post(f"/v1/experiments/{second}/run").status_code == 202
    assert wait_until_finished(api, second)["status"] == "completed"
    comparison = api.client.post(
        "/v1/experiments/compare", json={"baseline_id": first, "candidate_id": second}
    )
    assert comparison.json()["regressed"] is False
    metrics = api.client.get(f"/v1/metrics/experiments/{first}").json()
    assert (metrics["summary"]["total_runs"], metrics["summary"]["pass_rate"]) == (2, 1.0)


def test_stopping_the_server_mid_experiment_keeps_finished_replicas_and_marks_it_interrupted(
    make_api: MakeApi,
) -> None:
    api = make_api()
    slow_second = 'if [ "$KEYSTONE_REPLICA" = 1 ]; then sleep 120; fi; echo done'
    api.upload(spec_yaml(command=slow_second, replicas=2))
    experiment_id = _create(api, "cut-short", concurrency=1)
    api.client.post(f"/v1/experiments/{experiment_id}/run")
    wait_until(
        lambda: api.client.get(f"/v1/experiments/{experiment_id}").json()["progress"].get("done") == 1,
        120,
        "the first replica finished",
    )

    started = time.monotonic()
    close_app(api.app)
    stop_s = time.monotonic() - started

    assert stop_s < 30  # the running replica's sandbox is destroyed, not waited for
    restarted = make_api()
    body = restarted.client.get(f"/v1/experiments/{experiment_id}").json()
    assert body["status"] == "interrupted"
    (scenario,) = body["scenarios"]
    assert scenario["status"] == "error"
    assert [replica["replica"] for replica in scenario["replicas"]] == [0]
    assert scenario["replicas"][0]["status"] == "pass"
    assert restarted.context.store.interrupt_abandoned_experiments() == []
