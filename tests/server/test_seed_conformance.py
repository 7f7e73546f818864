"""A client written only from Keystone's published documents — the Python SDK overview, the OpenAPI
document (server base `/v1`) and the REST reference — drives every route of theirs this server
implements, and checks the shapes they show: field names, types, a list where they show a list.

It is plain httpx: no import of this project's SDK or models, so the server cannot pass by agreeing with
itself. The server is a real one on a socket; the Docker test boots real sandboxes.

Alerts, datasets, prompts, export (an agent's traces among it), scoring and evals have tests of their
own (tests/server/test_server_{alerts,datasets,prompts,export,scoring,evals}.py, and through the SDK in
tests/sdk/).
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.server_api import MakeApi
from tests.stores import ENGINE_ON_ONE_STORE

SPEC_ID = "seed-conformance"
SPEC_YAML = textwrap.dedent(
    f"""\
    version: 1
    id: {SPEC_ID}
    description: driven by a client written from the published documents
    base: "debian:bookworm-slim"
    task: {{prompt: "write a greeting"}}
    agent: {{type: cli, command: 'echo hi > hello.txt'}}
    invariants:
      wrote: {{check: {{type: file_exists, path: hello.txt}}}}
    parallelism: {{replicas: 1}}
    """
)
RUN_STATUSES = {"queued", "running", "passed", "failed", "errored"}
SANDBOX_STATES = {"provisioning", "ready", "running", "stopped", "failed"}


class SeedClient:
    """What a team writes from the REST reference: bearer auth, JSON bodies, `data:` lines of SSE, and
    pages followed by their `Link: <...>; rel="next"` header."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=60)

    def call(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def every(self, path: str, **params: Any) -> list[Any]:
        """A listing's items over all its pages."""
        items: list[Any] = []
        response = self.http.get(path, params=params)
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            assert isinstance(page, list), f"GET {path} answers {type(page).__name__}, not a list"
            items.extend(page)
            if "next" not in response.links:
                return items
            response = self.http.get(response.links["next"]["url"])

    def events(self, path: str) -> list[dict[str, Any]]:
        """The JSON of each `data:` line of a Server-Sent Events stream, until the server ends it."""
        with self.http.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return [
                json.loads(line[len("data: ") :])
                for line in response.iter_lines()
                if line.startswith("data: ")
            ]

    def poll(self, path: str, done: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = self.call("GET", path)
            if body["status"] in done or time.monotonic() > deadline:
                return body
            time.sleep(0.2)


@pytest.fixture
def seed_client(make_api: MakeApi) -> Iterator[SeedClient]:
    api = make_api(socket=True)
    client = SeedClient(api.base_url, api.key)
    yield client
    client.http.close()


def test_health_answers_without_a_key_at_the_root_and_under_v1(seed_client: SeedClient) -> None:
    anonymous = SeedClient(str(seed_client.http.base_url), None)

    for path in ("/health", "/v1/health"):
        body = anonymous.call("GET", path)
        assert body["status"] == "ok" and isinstance(body["version"], str)
    anonymous.http.close()


def test_specs_upload_as_yaml_or_json_list_as_an_array_get_and_delete(seed_client: SeedClient) -> None:
    raw = seed_client.call(
        "POST", "/v1/specs", 201, content=SPEC_YAML, headers={"Content-Type": "application/x-yaml"}
    )
    second = SPEC_YAML.replace(SPEC_ID, "second-spec")
    as_json = seed_client.call("POST", "/v1/specs", 201, json={"name": "Second", "yaml": second})
    listed = seed_client.every("/v1/specs", limit=1)
    got = seed_client.call("GET", f"/v1/specs/{SPEC_ID}")

    for spec in (raw, as_json, got, *listed):
        assert {"id", "name", "yaml", "created_at"} <= set(spec)
        assert all(isinstance(spec[key], str) for key in ("id", "name", "yaml", "created_at"))
    assert sorted(spec["id"] for spec in listed) == ["second-spec", SPEC_ID]
    assert got["yaml"] == SPEC_YAML
    seed_client.call("DELETE", "/v1/specs/second-spec", 204)
    missing = seed_client.http.get("/v1/specs/second-spec")
    assert missing.status_code == 404
    assert {"error", "message"} <= set(missing.json()) and missing.json()["error"] == "not_found"


def test_experiments_create_and_list_as_the_reference_shows(seed_client: SeedClient) -> None:
    seed_client.call("POST", "/v1/specs", 201, content=SPEC_YAML, headers={"Content-Type": "text/yaml"})
    created = [
        seed_client.call(
            "POST", "/v1/experiments", 201, json={"name": name, "spec_id": SPEC_ID, "secrets": {}}
        )
        for name in ("baseline-v1", "candidate-v1", "candidate-v2")
    ]
    listed = seed_client.every("/v1/experiments", limit=2)

    for experiment in created:
        assert experiment["status"] == "created" and experiment["spec_id"] == SPEC_ID
        assert all(isinstance(experiment[key], str) for key in ("id", "name", "created_at"))
    assert sorted(e["id"] for e in listed) == sorted(e["id"] for e in created)
    assert seed_client.every("/v1/sandboxes") == []


def agent_tarball(text: str) -> bytes:
    """`dist/email-agent.tar.gz`, as any tar tool makes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("main.py")
        info.size = len(text.encode())
        archive.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


def test_agent_snapshots_upload_resolve_list_and_delete_as_documented(seed_client: SeedClient) -> None:
    metadata = {"name": "email-agent", "entrypoint": ["python", "main.py"], "runtime": "python3.12"}

    def upload(text: str, **extra: Any) -> dict[str, Any]:
        form = {"metadata": json.dumps({**metadata, **extra})}
        files = {"bundle": ("email-agent.tar.gz", agent_tarball(text), "application/gzip")}
        body: dict[str, Any] = seed_client.call("POST", "/v1/agents", 201, data=form, files=files)
        return body

    first = upload("print(1)", tag="v2.1")
    second = upload("print(2)")
    for snapshot in (first, second):
        assert snapshot["id"].startswith("snap_") and snapshot["digest"].startswith("sha256:")
        assert snapshot["storage_path"] == f"/agents/email-agent/v{snapshot['version']}"
        assert {"name", "version", "tag", "size_bytes", "runtime", "entrypoint", "auth", "created_at"} <= set(
            snapshot
        )
    assert (first["version"], first["tag"], second["version"]) == (1, "v2.1", 2)
    assert seed_client.call("GET", "/v1/agents/email-agent/latest")["id"] == second["id"]
    assert seed_client.call("GET", "/v1/agents/email-agent/tags/v2.1")["id"] == first["id"]
    assert seed_client.call("GET", "/v1/agents/email-agent/versions/1")["id"] == first["id"]
    assert seed_client.call("GET", f"/v1/snapshots/{first['id']}")["version"] == 1
    page = seed_client.call("GET", "/v1/agents", params={"limit": 100})
    assert [item["name"] for item in page["items"]] == ["email-agent"] and page["next_cursor"] is None
    versions = seed_client.call("GET", "/v1/agents/email-agent/versions")
    assert [item["version"] for item in versions["items"]] == [2, 1]
    seed_client.call("DELETE", f"/v1/snapshots/{second['id']}", 204)
    assert seed_client.http.get(f"/v1/snapshots/{second['id']}").status_code == 404


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_runs_suites_experiments_and_sandboxes_on_real_sandboxes(seed_client: SeedClient) -> None:
    seed_client.call("POST", "/v1/specs", 201, content=SPEC_YAML, headers={"Content-Type": "text/yaml"})
    run = seed_client.call("POST", "/v1/runs", 202, json={"spec_id": SPEC_ID})
    suite = seed_client.call("POST", "/v1/replicas", 202, json={"spec_id": SPEC_ID, "n_replicas": 2})
    check_run(seed_client, run)  # a key runs two at once: the experiment starts once the run is done
    experiment = seed_client.call("POST", "/v1/experiments", 201, json={"name": "e", "spec_id": SPEC_ID})
    seed_client.call("POST", f"/v1/experiments/{experiment['id']}/run", 202)
    check_suite(seed_client, suite)
    check_experiment(seed_client, experiment["id"], baseline_id=suite["id"])
    check_sandbox(seed_client)


def check_run(client: SeedClient, accepted: dict[str, Any]) -> None:
    """The OpenAPI document's Run, its stream's `data:` events ending with `done`."""
    events = client.events(f"/v1/runs/{accepted['id']}/stream")
    run = client.call("GET", f"/v1/runs/{accepted['id']}")

    for shown in (accepted, run):
        assert {"id", "sandbox_id", "status", "created_at"} <= set(shown) and shown["status"] in RUN_STATUSES
        assert isinstance(shown["seed"], str)
    assert (run["status"], run["score"]) == ("passed", 1.0)
    assert isinstance(run["duration_ms"], int) and run["sandbox_id"]
    assert run["seed"].startswith("seed_") and isinstance(client.call("GET", run["trajectory_url"]), dict)
    assert [(i["invariant_id"], i["status"]) for i in run["invariant_results"]] == [("wrote", "passed")]
    assert "invariant_result" in {event["type"] for event in events}
    assert events[-1] == {**events[-1], "type": "done", "run_id": run["id"], "status": "passed"}


def check_suite(client: SeedClient, accepted: dict[str, Any]) -> None:
    """The OpenAPI document's ReplicaSuite, after its stream ends."""
    events = client.events(f"/v1/replicas/{accepted['id']}/stream")
    suite = client.call("GET", f"/v1/replicas/{accepted['id']}")

    assert events, "the suite's stream sent no event"
    assert {"id", "run_id", "n_replicas", "status"} <= set(accepted) and accepted["n_replicas"] == 2
    assert (suite["status"], suite["passed"], suite["failed"], suite["failure_rate"]) == (
        "complete",
        2,
        0,
        0.0,
    )
    assert len(suite["seeds"]) == 2 and all(isinstance(seed, str) for seed in suite["seeds"])


def check_experiment(client: SeedClient, experiment_id: str, *, baseline_id: str) -> None:
    """The SDK overview's RunResults once it finished, the REST reference's comparison, its metrics."""
    results = client.poll(f"/v1/experiments/{experiment_id}", {"completed", "failed"})
    comparison = client.call(
        "POST", "/v1/experiments/compare", json={"baseline_id": baseline_id, "candidate_id": experiment_id}
    )
    metrics = client.call("GET", f"/v1/metrics/experiments/{experiment_id}")

    assert (results["passed"], results["total_scenarios"]) == (1, 1)
    scenario = results["scenarios"][0]
    assert scenario["status"] == "pass" and isinstance(scenario["scenario_id"], str)
    assert [(i["name"], i["passed"]) for i in scenario["invariants"]] == [("wrote", True)]
    assert experiment_id in [e["id"] for e in client.every("/v1/experiments")]
    assert (comparison["baseline_id"], comparison["candidate_id"]) == (baseline_id, experiment_id)
    assert (comparison["regressed"], comparison["regressions"]) == (False, [])
    assert comparison["metrics"], "the comparison compares no metric"
    for metric in comparison["metrics"]:
        assert {"name", "baseline", "candidate", "delta", "direction"} <= set(metric)
    assert metrics["experiment_id"] == experiment_id


def check_sandbox(client: SeedClient) -> None:
    """A sandbox from a spec, the REST reference's interaction routes on it, and its lifecycle stream."""
    body = {"spec_id": SPEC_ID, "timeout": "10m", "metadata": {"run": "ci-7821"}}
    sandbox = client.call("POST", "/v1/sandboxes", 201, json=body)
    path = f"/v1/sandboxes/{sandbox['id']}"
    assert {"id", "status", "created_at"} <= set(sandbox) and sandbox["status"] in SANDBOX_STATES
    assert sandbox["metadata"] == {"run": "ci-7821"} and sandbox["seed"].startswith("seed_")
    assert [listed["id"] for listed in client.every("/v1/sandboxes")] == [sandbox["id"]]
    assert client.call("GET", path)["id"] == sandbox["id"]

    command = client.call(
        "POST", f"{path}/commands", json={"command": "echo hi", "timeout": "2m", "background": False}
    )
    assert command == {**command, "command": "echo hi", "stdout": "hi\n", "stderr": "", "exit_code": 0}
    assert isinstance(command["duration_ms"], int)
    client.call("POST", f"{path}/files", 201, json={"path": "/workspace/config.json", "content": '{"x": 1}'})
    read = client.http.get(f"{path}/files/config.json")
    assert (read.status_code, read.content) == (200, b'{"x": 1}')
    assert client.http.get(f"{path}/files/a/%2E%2E/%2E%2E/etc/passwd").status_code == 400
    big = {"command": "head -c 33554433 /dev/zero > big.bin", "timeout": "2m", "background": False}
    client.call("POST", f"{path}/commands", json=big)
    too_big = client.http.get(f"{path}/files/big.bin")  # over 32 MiB: refused, never held whole
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    assert "config.json" in json.dumps(client.call("GET", f"{path}/state"))
    assert "config.json" in json.dumps(client.call("GET", f"{path}/diff"))
    client.call("DELETE", f"{path}/files/config.json", 204)
    assert client.http.get(f"{path}/files/config.json").status_code == 404
    client.call("POST", f"{path}/trace", json={"events": [{"event_type": "llm_call", "tool": "x.create"}]})
    assert "x.create" in json.dumps(client.call("GET", f"{path}/trace"))
    client.call("POST", f"{path}/timeout", json={"timeout": "20m"})

    client.call("DELETE", path, 204)
    lifecycle = client.events(f"{path}/events")
    assert all({"event_type", "data"} <= set(event) for event in lifecycle)
    assert lifecycle[-1]["data"].get("state") == "destroyed"
    assert client.every("/v1/sandboxes") == []

    from_image = client.call(
        "POST", "/v1/sandboxes", 201, json={"image": "debian:bookworm-slim", "services": []}
    )
    assert from_image["status"] == "ready" and isinstance(from_image["image"], str)
    assert from_image["seed"].startswith("seed_") and isinstance(from_image["created_at"], str)
    client.call("DELETE", f"/v1/sandboxes/{from_image['id']}", 204)
