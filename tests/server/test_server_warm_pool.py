"""`ks serve --warm-pool`: an experiment's sandboxes are kept, verified, for the next experiment of the
same project and spec, whose replicas start in them; the agent there acts as its own replica's sandbox
(its id and token are given as the sandbox is handed over, not baked into its container); another
project never gets them; nothing outlives the server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from polarity_keystone import Keystone
from polarity_keystone.results import ReplicaResult
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord, open_store
from tests.engine.test_service_reset import REPORTER, REPORTER_SPEC
from tests.ks_serve import start_ks_serve
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

SPEC_ID = "warm-reporter"
SPEC = REPORTER_SPEC.replace("id: reporter", f"id: {SPEC_ID}")


def _running_agents(client: docker.DockerClient) -> list[str]:
    """The sandbox ids of this spec's agent containers that run now."""
    selector = {"label": [f"{labels.SPEC}={SPEC_ID}", f"{labels.ROLE}=agent"]}
    return [c.labels[labels.SANDBOX] for c in client.containers.list(filters=selector, ignore_removed=True)]


def _one_replica(ks: Keystone, name: str) -> ReplicaResult:
    results = ks.experiments.run_and_wait(ks.experiments.create(name, SPEC_ID, replicas=1).id, timeout=300)
    (replica,) = results.scenarios[0].replicas
    assert replica.status == "pass", replica.model_dump()
    return replica


def test_the_next_experiment_of_a_project_starts_in_a_kept_sandbox_as_its_own_replica(tmp_path: Path) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "report.py").write_text(REPORTER)
    store_url = f"sqlite://{tmp_path / 'shared.db'}"
    store = open_store(store_url)
    try:
        key_a, _ = create_api_key(store, "team a")
        store.add_project(ProjectRecord("prj_other", "other", datetime.now(UTC)))
        key_b, _ = create_api_key(store, "team b", "prj_other")
    finally:
        store.close()
    client = docker.from_env()
    server = start_ks_serve(store_url, tmp_path, "--host", "0.0.0.0", "--warm-pool", "1")
    try:
        with Keystone(api_key=key_a, base_url=server.url) as ks:
            ks.specs.create(SPEC, source_dir=tmp_path)
            first = _one_replica(ks, "first")
            renewed = lambda: [sid for sid in _running_agents(client) if sid != first.sandbox_id]  # noqa: E731
            wait_until(lambda: len(renewed()) == 1, 120, "a sandbox renewed and kept for the next experiment")
            (kept,) = renewed()
            second = _one_replica(ks, "second")
            trace = [event.tool for event in ks.sandboxes.get_trace(second.sandbox_id).events]
            kept_record = ks.sandboxes.get(second.sandbox_id)
        with Keystone(api_key=key_b, base_url=server.url) as other:
            other.specs.create(SPEC, source_dir=tmp_path)
            elsewhere = _one_replica(other, "other project")
    finally:
        assert server.stop() == 0, server.log()

    assert first.renewed is False
    assert (second.renewed, second.sandbox_id) == (True, kept), "the kept sandbox served the next experiment"
    assert trace == ["replica-0"], "its agent reported as its own replica, with the token it was handed"
    assert kept_record.id == kept
    assert elsewhere.renewed is False, "another project's experiment boots its own sandbox"
    assert _running_agents(client) == [], "the server's kept sandboxes end with it"
