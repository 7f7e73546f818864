"""Several servers on one store (issue 17, item 3): a server starting next to a live one leaves the live
one's experiments and sandboxes alone, and ends a stopped one's once its lease has expired, keeping the
finished replicas. In-process on both stores, then two `ks serve` on a real Postgres with a real kill -9."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from polarity_keystone.sandbox import DockerBackend, SandboxError
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.secrets import Redactor
from polarity_keystone.server import create_api_key
from polarity_keystone.store import DEFAULT_PROJECT, ApiKeyRecord, ExperimentRecord, Store, open_store
from tests.ks_serve import ServeProcess, start_ks_serve
from tests.server.server_api import TERMINAL, MakeApi, spec_yaml
from tests.server.test_server_webhooks import Receiver
from tests.waiting import wait_until

LEASE_S = 3.0
SERVE = ("--lease", str(LEASE_S), "--warm-pool", "0")
START_TIMEOUT_S = 60.0
SLOW_S = 15
"""How long each replica of the experiment that runs through the second server's start-up takes."""


def test_a_server_ends_another_ones_experiments_and_sandboxes_only_once_that_one_stopped(
    make_api: MakeApi,
) -> None:
    first = make_api()
    first_instance = first.context.heartbeat.instance_id
    first.context.store.add_experiment(
        ExperimentRecord(
            "exp-of-first",
            "running",
            "hello",
            1,
            "running",
            datetime.now(UTC),
            "key_x",
            instance_id=first_instance,
        )
    )
    first.context.sandboxes.admit(
        "sb-of-first", "key_x", DEFAULT_PROJECT, "hello", first.base_url, {}, Redactor({})
    )

    second = make_api(lease_s=0.3)  # beats every 0.1 s
    store = second.context.store
    assert store.get_experiment("exp-of-first").status == "running"
    assert store.get_sandbox("sb-of-first").state == "creating"
    assert not _sandbox_token("sb-of-first", store).revoked

    first.context.heartbeat.close()  # the first server is gone (its lease ends; nothing else of it runs)
    ended = wait_until(  # ended: claimed by the sweep, then finished (finished_at, error) by it
        lambda: (record := store.get_experiment("exp-of-first")).finished_at is not None and record,
        10,
        "ended",
    )
    assert ended.status == "interrupted"
    assert ended.error == "the server that ran it stopped before it finished; kept 0 finished replica(s)"
    wait_until(lambda: store.get_sandbox("sb-of-first").state == "destroyed", 10, "the sandbox ended")
    assert _sandbox_token("sb-of-first", store).revoked
    [*_, last] = store.events_after("sandbox:sb-of-first", 0)
    assert (last.type, last.data["state"]) == ("status", "destroyed")


def test_a_server_whose_lease_lapsed_mid_experiment_leaves_the_ending_another_server_gave_it(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def engine_held_up() -> DockerBackend:
        release.wait(10)
        raise SandboxError("no Docker engine answers (none in this test)")

    api = make_api(backend_factory=engine_held_up)
    api.upload(spec_yaml())
    created = api.client.post("/v1/experiments", json={"name": "lapsed", "spec_id": "hello"}).json()
    assert api.client.post(f"/v1/experiments/{created['id']}/run").status_code == 202
    store = api.context.store
    wait_until(lambda: store.get_experiment(created["id"]).status == "running", 10, "running")

    # Another server took this one for stopped (its lease lapsed) and ended the experiment; then this
    # server's run of it fails (no engine), and drops that outcome.
    store.update_experiment(created["id"], status="interrupted", error="ended by another server")
    release.set()
    wait_until(lambda: "was ended by another server" in caplog.text, 10, "the run's outcome dropped")
    record = store.get_experiment(created["id"])
    assert (record.status, record.error) == ("interrupted", "ended by another server")


def _sandbox_token(sandbox_id: str, store: Store) -> ApiKeyRecord:
    [token] = [key for key in store.list_api_keys() if key.sandbox_id == sandbox_id]
    return token


class Servers:
    """`ks serve` processes on one store, each with a client holding the store's key; all killed at the
    end."""

    def __init__(self, store_url: str, workdir: Path, key: str, stack: ExitStack) -> None:
        self._store_url, self._workdir, self._key, self._stack = store_url, workdir, key, stack

    def start(self, *flags: str) -> tuple[ServeProcess, httpx.Client]:
        served = start_ks_serve(self._store_url, self._workdir, *SERVE, *flags, timeout=START_TIMEOUT_S)
        self._stack.callback(_kill, served)
        client = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {self._key}"})
        self._stack.callback(client.close)
        return served, client


def _kill(served: ServeProcess) -> None:
    if served.process.poll() is None:
        served.process.kill()
    served.process.wait(30)


@pytest.fixture
def servers(store_url: str, tmp_path: Path) -> Iterator[Servers]:
    store = open_store(store_url)
    key, _ = create_api_key(store, "instances")
    store.close()
    with ExitStack() as stack:
        yield Servers(store_url, tmp_path, key, stack)


def _run(client: httpx.Client, spec_id: str, **body: Any) -> str:
    created = client.post("/v1/experiments", json={"name": spec_id, "spec_id": spec_id, **body})
    assert created.status_code == 201, created.text
    experiment_id: str = created.json()["id"]
    assert client.post(f"/v1/experiments/{experiment_id}/run").status_code == 202
    return experiment_id


def _experiment(client: httpx.Client, experiment_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/experiments/{experiment_id}").json()
    return body


def _upload(client: httpx.Client, text: str) -> None:
    uploaded = client.post("/v1/specs", content=text, headers={"Content-Type": "application/x-yaml"})
    assert uploaded.status_code == 201, uploaded.text


@pytest.mark.docker
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_starting_server_leaves_a_live_ones_experiment_and_ends_a_killed_ones_after_its_lease(
    servers: Servers, store_url: str
) -> None:
    first, on_first = servers.start()
    _upload(on_first, spec_yaml("slow", command=f"sleep {SLOW_S}; echo done", replicas=2))
    cut = 'if [ "$KEYSTONE_REPLICA" = 1 ]; then sleep 300; fi; echo done'
    _upload(on_first, spec_yaml("cut", command=cut, replicas=2))
    slow = _run(on_first, "slow", concurrency=2)
    wait_until(lambda: _experiment(on_first, slow)["status"] == "running", START_TIMEOUT_S, "slow running")

    # The second server starts (sweeping the store, reaping the Docker engine) while the first one's
    # experiment runs, and sweeps on every beat after: the experiment runs on to the end, every replica
    # passing. Had the second ended it, it would stay `interrupted` (see ExperimentRunner.finish).
    _, on_second = servers.start()
    assert _experiment(on_second, slow)["status"] == "running"
    finished = wait_until(
        lambda: (body := _experiment(on_first, slow))["status"] in TERMINAL and body, 2 * SLOW_S + 30, "slow"
    )
    assert finished["status"] == "completed", finished.get("error")
    assert [replica["status"] for replica in finished["scenarios"][0]["replicas"]] == ["pass", "pass"]

    # The first server is killed mid-experiment: once its lease is over, the second ends the experiment.
    cut_short = _run(on_first, "cut", concurrency=1)
    wait_until(
        lambda: _experiment(on_first, cut_short)["progress"].get("done") == 1, START_TIMEOUT_S, "replica 0"
    )
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    ended = wait_until(
        lambda: (body := _experiment(on_second, cut_short))["status"] in TERMINAL and body,
        LEASE_S + 10,
        "the killed server's experiment ended by the other",
    )
    assert ended["status"] == "interrupted"
    assert "stopped before it finished; kept 1 finished replica" in ended["error"]
    (scenario,) = ended["scenarios"]
    assert [(replica["replica"], replica["status"]) for replica in scenario["replicas"]] == [(0, "pass")]

    store = open_store(store_url)
    try:
        sandboxes = [
            record
            for record in store.list_sandboxes(project_id=None, include_destroyed=True)
            if record.metadata.get("experiment_id") == cut_short
        ]
    finally:
        store.close()
    assert len(sandboxes) == 2 and {record.state for record in sandboxes} == {"destroyed"}
    engine = docker.from_env()
    try:
        wait_until(
            lambda: (
                not any(
                    engine.containers.list(all=True, filters={"label": f"{labels.SANDBOX}={record.id}"})
                    for record in sandboxes
                )
            ),
            10,
            "no container of the killed server's sandboxes left",
        )
    finally:
        engine.close()


@pytest.mark.docker
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_killed_servers_webhook_retries_are_sent_by_the_next_server(servers: Servers) -> None:
    """The receiver fails the first server's attempts; that server is killed while it waits to retry.
    Once its lease is over, the other server sends the delivery (the same Keystone-Delivery) and logs it
    delivered."""
    receiver = Receiver(*[500] * 50)
    try:
        first, on_first = servers.start("--allow-private-webhooks")
        _, on_second = servers.start("--allow-private-webhooks")
        hook = {"url": receiver.url, "events": ["experiment.completed"]}
        subscribed = on_first.post("/v1/webhooks", json=hook)
        assert subscribed.status_code == 201, subscribed.text
        webhook_id = subscribed.json()["id"]
        _upload(on_first, spec_yaml("quick", command="echo done", replicas=1))
        experiment_id = _run(on_first, "quick")
        first_headers, _ = receiver.deliveries.get(timeout=START_TIMEOUT_S)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        receiver.answers.clear()
        while not receiver.deliveries.empty():  # the first server's attempts, all refused
            receiver.deliveries.get_nowait()

        headers, body = receiver.deliveries.get(timeout=LEASE_S + 20)
        assert headers["Keystone-Delivery"] == first_headers["Keystone-Delivery"]
        assert headers["Keystone-Event-Id"] == first_headers["Keystone-Event-Id"]
        assert json.loads(body)["id"] == experiment_id

        def logged() -> dict[str, Any] | None:
            (entry,) = on_second.get(f"/v1/webhooks/{webhook_id}/deliveries").json()
            return entry if entry["state"] == "delivered" else None

        entry = wait_until(logged, 10, "the delivery logged delivered by the second server")
        assert entry is not None and entry["id"] == first_headers["Keystone-Delivery"]
    finally:
        receiver.close()
