"""Projects isolate: a key of project B can neither see nor touch what project A owns, on any route.

The walk goes over every operation the app publishes (its OpenAPI document), so a route added later is
walked too: it fails here until the walk knows what id of A to put in each of its path parameters.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.sandbox import DockerBackend, SandboxError
from polarity_keystone.server import create_api_key
from polarity_keystone.spec import BundleFile, canonical_manifest
from polarity_keystone.store import ProjectRecord, SandboxRecord
from tests.server.server_api import Api, MakeApi, spec_yaml
from tests.server.test_server_fuzz import MISSING, TEMPLATES

PUBLIC = {"/health", "/v1/health"}
STREAMS = ("/stream", "/events")
"""Event streams follow a live resource until it ends; the walk checks B's answers to them only."""
ADMIN = ("/v1/projects", "/v1/keys")
"""Routes only an admin key may use: a member of any project gets 403."""


@dataclass
class ProjectA:
    """What project A owns, by the path parameter that names it."""

    ids: dict[str, str]
    spec_id: str
    experiment_id: str


def _agent_tarball() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        content = b"print('hi')\n"
        info = tarfile.TarInfo("main.py")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def _create_project_a(api: Api, a: httpx.Client, key_id: str) -> ProjectA:
    store = api.context.store
    spec = a.post("/v1/specs", content=spec_yaml("a-spec"), headers={"Content-Type": "application/x-yaml"})
    assert spec.status_code == 201, spec.text
    experiment = a.post("/v1/experiments", json={"name": "a-exp", "spec_id": "a-spec"})
    assert experiment.status_code == 201, experiment.text
    record = store.get_experiment(experiment.json()["id"])
    run = replace(record, id="run_aaaaaaaaaaaa", options={**record.options, "kind": "run", "replica_seed": 7})
    suite = replace(record, id="rep_aaaaaaaaaaaa", options={**record.options, "kind": "replica_suite"})
    store.add_experiment(run)
    store.add_experiment(suite)
    sandbox = SandboxRecord("sb-a", "a-spec", "ready", key_id, datetime.now(UTC), None, project_id="proj_a")
    store.put_sandbox(sandbox)
    webhook = a.post("/v1/webhooks", json=TEMPLATES["/v1/webhooks"])
    assert webhook.status_code == 201, webhook.text
    alert = a.post("/v1/alerts", json=TEMPLATES["/v1/alerts"])
    assert alert.status_code == 201, alert.text
    score_rule = a.post("/v1/score-rules", json=TEMPLATES["/v1/score-rules"])
    assert score_rule.status_code == 201, score_rule.text
    dataset = a.post("/v1/datasets", json=TEMPLATES["/v1/datasets"])
    assert dataset.status_code == 201, dataset.text
    prompt = a.post("/v1/prompts", json={**TEMPLATES["/v1/prompts"], "slug": "a-prompt", "tag": "stable"})
    assert prompt.status_code == 201, prompt.text
    metadata = {"name": "a-agent", "entrypoint": ["python", "main.py"], "tag": "stable"}
    agent = a.post(
        "/v1/agents",
        data={"metadata": json.dumps(metadata)},
        files={"bundle": ("a.tar.gz", _agent_tarball(), "application/gzip")},
    )
    assert agent.status_code == 201, agent.text
    blob = b"a's file"
    file_digest = hashlib.sha256(blob).hexdigest()
    assert a.put(f"/v1/blobs/{file_digest}", content=blob).status_code in (200, 201)
    # A's blob is a bundle's manifest, so the walk finds it both as a blob and as a bundle.
    bundle = canonical_manifest({"a.txt": BundleFile(file_digest, len(blob), 0o644)})
    digest = hashlib.sha256(bundle).hexdigest()
    assert a.put(f"/v1/blobs/{digest}", content=bundle).status_code in (200, 201)
    trace = a.post("/v1/traces", json={"events": [{"tool": "a-tool"}], "trace_id": "tr_a"})
    assert trace.status_code == 200, trace.text
    evaluation = a.post("/v1/evals", json={**TEMPLATES["/v1/evals"], "name": "a-eval"})
    assert evaluation.status_code == 201, evaluation.text
    assert a.post(f"/v1/evals/{evaluation.json()['id']}/complete").status_code == 200
    ids = {
        "spec_id": "a-spec",
        "experiment_id": record.id,
        "run_id": run.id,
        "suite_id": suite.id,
        "sandbox_id": sandbox.id,
        "webhook_id": webhook.json()["id"],
        "dataset_id": dataset.json()["id"],
        "prompt_id": prompt.json()["id"],
        "slug": "a-prompt",
        "alert_id": alert.json()["id"],
        "rule_id": score_rule.json()["id"],
        "snapshot_id": agent.json()["id"],
        "name": "a-agent",
        "tag": "stable",
        "version": "1",
        "key_id": key_id,
        "sha256": digest,
        "path": "a.txt",
        "trace_id": "tr_a",
        "eval_name": "a-eval",
    }
    return ProjectA(ids, "a-spec", record.id)


def _body(path: str, a: ProjectA) -> Any:
    """The fuzz test's valid body for the route, naming A's spec and experiment where it names any."""
    template = json.dumps(TEMPLATES.get(path, {}))
    template = template.replace(f'"spec_id": "{MISSING}"', f'"spec_id": "{a.spec_id}"')
    return json.loads(template.replace(f'"{MISSING}"', f'"{a.experiment_id}"'))


def _walk(api: Api) -> list[tuple[str, str, list[str]]]:
    """Every operation of the app's OpenAPI document (the route table as the app publishes it)."""
    routes: list[tuple[str, str, list[str]]] = []
    for path, operations in api.app.openapi()["paths"].items():
        if path not in PUBLIC:
            parameters = re.findall(r"{(\w+)}", path)
            routes.extend((method.upper(), path, parameters) for method in sorted(operations))
    return routes


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api(read_rate=1000.0, write_rate=1000.0)


@pytest.fixture
def two_projects(api: Api) -> tuple[httpx.Client, httpx.Client, ProjectA]:
    store = api.context.store
    for project in ("proj_a", "proj_b"):
        store.add_project(ProjectRecord(project, project.replace("_", "-"), datetime.now(UTC)))
    key_a, record_a = create_api_key(store, "a", "proj_a")
    key_b, _ = create_api_key(store, "b", "proj_b")
    a, b = api.as_key(key_a), api.as_key(key_b)
    return a, b, _create_project_a(api, a, record_a.id)


def test_project_b_gets_404_for_everything_of_project_a_on_every_route(
    api: Api, two_projects: tuple[httpx.Client, httpx.Client, ProjectA]
) -> None:
    _a, b, owned = two_projects
    walked = 0
    for method, path, parameters in _walk(api):
        unknown = [name for name in parameters if name not in owned.ids]
        assert not unknown, f"{method} {path}: give the walk an id of project A for {unknown}"
        url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: owned.ids[m.group(1)], path)
        body = _body(path, owned) if method == "POST" else None
        answer = b.request(method, url, **({"json": body} if body is not None else {}))
        sent = json.dumps(body)
        names_a = bool(parameters) or owned.spec_id in sent or owned.experiment_id in sent
        if path.startswith(ADMIN):
            assert answer.status_code == 403, f"{method} {path}: {answer.status_code} {answer.text[:300]}"
        elif names_a:
            # A blob is named by its content: B sending other bytes under A's digest is refused (400).
            expected = 400 if path.startswith("/v1/blobs/{") else 404
            assert answer.status_code == expected, f"{method} {path}: {answer.text[:300]}"
        else:  # B's own listing, or B creating its own resource: none of A's in it
            distinct = [v for name, v in owned.ids.items() if name not in ("version", "tag", "path")]
            leaked = [value for value in distinct if value in answer.text]
            assert not leaked, f"{method} {path} shows project A's {leaked}"
        walked += 1
    assert walked >= 40


def test_project_a_reaches_what_it_owns_on_the_routes_b_was_refused(
    api: Api, two_projects: tuple[httpx.Client, httpx.Client, ProjectA]
) -> None:
    """The walk's ids are real: A's own key finds each of them (so B's 404s come from isolation)."""
    a, _b, owned = two_projects
    for method, path, parameters in _walk(api):
        if method != "GET" or not parameters or path.startswith(ADMIN) or path.endswith(STREAMS):
            continue
        url = re.sub(r"{(\w+)(?::\w+)?}", lambda m: owned.ids[m.group(1)], path)
        answer = a.get(url)
        assert answer.status_code != 404, f"GET {path}: {answer.text[:300]}"


def test_an_admin_key_creates_projects_and_their_keys_and_revokes_them(api: Api) -> None:
    admin_key, _ = create_api_key(api.context.store, "operator", admin=True)
    admin = api.as_key(admin_key)

    project = admin.post("/v1/projects", json={"name": "team-a"})
    assert project.status_code == 201, project.text
    assert admin.post("/v1/projects", json={"name": "team-a"}).status_code == 409
    assert admin.post("/v1/keys", json={"name": "ci", "project_id": "proj_nope"}).status_code == 404
    created = admin.post("/v1/keys", json={"name": "ci", "project_id": project.json()["id"]})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    team = api.as_key(key)
    yaml_type = {"Content-Type": "application/x-yaml"}
    upload = team.post("/v1/specs", content=spec_yaml("team-spec"), headers=yaml_type)
    assert upload.status_code == 201, upload.text

    assert [spec["id"] for spec in team.get("/v1/specs").json()] == ["team-spec"]
    assert api.client.get("/v1/specs").json() == []  # the default project's key sees none of it
    listed = admin.get("/v1/keys", params={"project_id": project.json()["id"]})
    assert [(k["name"], k["prefix"]) for k in listed.json()] == [("ci", key[:12])]
    assert key not in listed.text and "key_hash" not in listed.text
    assert team.get("/v1/projects").status_code == 403
    assert team.post("/v1/keys", json={"name": "x", "project_id": "default"}).status_code == 403

    assert admin.delete(f"/v1/keys/{created.json()['id']}").status_code == 204
    assert team.get("/v1/specs").status_code == 401
    assert admin.delete("/v1/keys/key_unknown").status_code == 404


def _project_keys(api: Api) -> dict[str, httpx.Client]:
    """Two keys of project A and one of project B."""
    store = api.context.store
    for project in ("proj_a", "proj_b"):
        store.add_project(ProjectRecord(project, project.replace("_", "-"), datetime.now(UTC)))
    keys = {"a1": "proj_a", "a2": "proj_a", "b1": "proj_b"}
    return {name: api.as_key(create_api_key(store, name, project)[0]) for name, project in keys.items()}


def test_the_keys_of_a_project_share_its_rate_limit(make_api: MakeApi) -> None:
    api = make_api(write_rate=100.0, project_write_rate=0.5)
    clients = _project_keys(api)

    def write(name: str) -> httpx.Response:
        return clients[name].post("/v1/blobs/missing", json={"digests": []})

    assert write("a1").status_code == 200
    refused = write("a2")
    assert refused.status_code == 429 and "project" in refused.json()["message"]
    assert write("b1").status_code == 200


def test_a_project_runs_at_most_its_share_of_experiments_whichever_key_starts_them(make_api: MakeApi) -> None:
    release = threading.Event()

    def engine_that_answers_late() -> DockerBackend:
        release.wait(30)
        raise SandboxError("no Docker engine in this test")

    api = make_api(backend_factory=engine_that_answers_late, per_key_concurrency=4, per_project_concurrency=1)
    clients = _project_keys(api)
    try:
        started = {}
        for name, client in clients.items():
            upload = client.post(
                "/v1/specs", content=spec_yaml(), headers={"Content-Type": "application/x-yaml"}
            )
            assert upload.status_code == 201, upload.text
            experiment = client.post("/v1/experiments", json={"name": name, "spec_id": "hello"}).json()
            started[name] = client.post(f"/v1/experiments/{experiment['id']}/run")
    finally:
        release.set()

    assert started["a1"].status_code == 202
    assert started["a2"].status_code == 503 and "this project" in started["a2"].json()["message"]
    assert started["b1"].status_code == 202
