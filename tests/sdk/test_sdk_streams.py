"""Experiment and sandbox streams and waiting for results, against the real server on a socket.

The experiment's progress is written into the store by the test, as a second server process sharing the
store would write it; the server under test streams it like any other (the Docker-backed tests run real
experiments)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from polarity_keystone import ConflictError, Keystone
from polarity_keystone.results import RunResults, ScenarioResult
from polarity_keystone.sdk import StreamEvent
from polarity_keystone.store import SandboxRecord
from tests.asgi_server import serve_app
from tests.sdk.sdk_servers import KeystoneServer, spec_yaml


def _created(server: KeystoneServer) -> str:
    ks = server.client()
    ks.specs.create(spec_yaml())
    return ks.experiments.create("streamed", "sdk-spec").id


def _results(experiment_id: str) -> dict[str, Any]:
    scenario = ScenarioResult(scenario_id="sdk-spec", status="pass", replicas_total=1, replicas_passed=1)
    results = RunResults(
        ran_at=datetime.now(UTC).isoformat(),
        spec_id="sdk-spec",
        experiment_id=experiment_id,
        seed=3,
        total_scenarios=1,
        passed=1,
        scenarios=[scenario],
    )
    return results.model_dump(mode="json")


def _finish_later(server: KeystoneServer, experiment_id: str, delay: float = 0.3) -> threading.Thread:
    """Another worker finishing the experiment: progress, the stored results, then `done`."""
    stream = f"experiment:{experiment_id}"

    def finish() -> None:
        time.sleep(delay)
        server.store.append_event(stream, "progress", {"done": 0, "total": 1, "status": "running"})
        server.store.update_experiment(experiment_id, status="running")
        time.sleep(delay)
        server.store.update_experiment(experiment_id, status="completed", results=_results(experiment_id))
        server.store.append_event(stream, "done", {"experiment_id": experiment_id, "status": "completed"})

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


def test_wait_follows_the_stream_until_done(socket_server: KeystoneServer) -> None:
    experiment_id = _created(socket_server)
    seen: list[StreamEvent] = []
    worker = _finish_later(socket_server, experiment_id)

    results = socket_server.client().experiments.wait(experiment_id, timeout=30, on_event=seen.append)
    worker.join()

    assert (results.status, results.passed, results.total_scenarios) == ("completed", 1, 1)
    assert results.finished
    assert [event.event for event in seen] == ["progress", "done"]
    assert seen[-1].data["status"] == "completed"
    assert int(seen[0].id or 0) < int(seen[1].id or 0)


def test_wait_by_polling(socket_server: KeystoneServer) -> None:
    experiment_id = _created(socket_server)
    seen: list[StreamEvent] = []
    worker = _finish_later(socket_server, experiment_id)

    results = socket_server.client().experiments.wait(
        experiment_id, poll_interval=0.1, timeout=30, stream=False, on_event=seen.append
    )
    worker.join()

    assert results.status == "completed"
    assert seen == []  # nothing streamed


def test_wait_gives_up_after_its_timeout(socket_server: KeystoneServer) -> None:
    experiment_id = _created(socket_server)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=experiment_id):
        socket_server.client().experiments.wait(experiment_id, poll_interval=0.1, timeout=0.5, stream=False)
    assert time.monotonic() - started < 5


def test_a_streaming_wait_gives_up_after_its_timeout_even_when_nothing_happens(
    socket_server: KeystoneServer,
) -> None:
    experiment_id = _created(socket_server)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        socket_server.client(timeout=1).experiments.wait(experiment_id, timeout=1)
    assert time.monotonic() - started < 6  # one read timeout, one reconnect: not the server's keep-alive


def test_the_stream_resumes_after_last_event_id(socket_server: KeystoneServer) -> None:
    experiment_id = _created(socket_server)
    stream = f"experiment:{experiment_id}"
    first = socket_server.store.append_event(stream, "progress", {"done": 0})
    second = socket_server.store.append_event(stream, "replica_done", {"replica": 0})
    socket_server.store.append_event(stream, "done", {"status": "completed"})
    ks = socket_server.client()

    everything = list(ks.experiments.stream(experiment_id))
    resumed = list(ks.experiments.stream(experiment_id, last_event_id=str(first.id)))

    assert [(e.id, e.event) for e in everything] == [
        (str(first.id), "progress"),
        (str(second.id), "replica_done"),
        (str(second.id + 1), "done"),
    ]
    assert resumed == everything[1:]
    assert resumed[0].data == {"type": "replica_done", "replica": 0}


def test_run_and_wait_on_a_finished_experiment_returns_its_results(socket_server: KeystoneServer) -> None:
    experiment_id = _created(socket_server)
    socket_server.store.update_experiment(experiment_id, status="completed", results=_results(experiment_id))

    results = socket_server.client().experiments.run_and_wait(experiment_id, timeout=10)

    assert (results.experiment_id, results.status, results.passed) == (experiment_id, "completed", 1)


def test_run_and_wait_raises_when_the_experiment_cannot_start(socket_server: KeystoneServer) -> None:
    experiment_id = _created(socket_server)
    # Secrets live in the memory of the server that took the create; this one never saw them.
    options = socket_server.store.get_experiment(experiment_id).options
    socket_server.store.update_experiment(experiment_id, options={**options, "secret_names": ["GONE"]})
    with pytest.raises(ConflictError) as caught:
        socket_server.client().experiments.run_and_wait(experiment_id, timeout=10)
    assert caught.value.error == "secrets_unavailable"


def test_sandbox_events_stream_until_the_sandbox_is_destroyed(socket_server: KeystoneServer) -> None:
    socket_server.store.put_sandbox(
        SandboxRecord("sb-events", "sdk-spec", "ready", "test", datetime.now(UTC), None)
    )
    stream = "sandbox:sb-events"
    socket_server.store.append_event(stream, "status", {"step": "container_started"})
    socket_server.store.append_event(stream, "command", {"command": "true", "exit_code": 0})
    socket_server.store.append_event(stream, "status", {"state": "destroyed"})

    events = list(socket_server.client().sandboxes.events("sb-events"))

    assert [(e.event, e.data["data"]) for e in events] == [
        ("status", {"step": "container_started"}),
        ("command", {"command": "true", "exit_code": 0}),
        ("status", {"state": "destroyed"}),
    ]
    assert events[0].data["event_type"] == "status"  # the REST reference's shape


class StreamlessServer:
    """A server with no experiment stream (404): the SDK polls. Running for two polls, then done."""

    def __init__(self) -> None:
        self.polls = 0
        self.app = Starlette(
            routes=[
                Route("/v1/experiments/exp-1", self.get),
                Route("/v1/experiments/exp-1/run", self.run, methods=["POST"]),
            ]
        )

    async def run(self, request: Request) -> Response:
        return JSONResponse({"id": "exp-1", "status": "queued"}, status_code=202)

    async def get(self, request: Request) -> Response:
        self.polls += 1
        finished = self.polls > 2
        body = {
            "experiment_id": "exp-1",
            "spec_id": "s",
            "total_scenarios": 1,
            "passed": 1 if finished else 0,
        }
        return JSONResponse(body)


def test_without_a_stream_endpoint_run_and_wait_polls_and_uses_the_seed_completion_rule() -> None:
    server = StreamlessServer()
    with serve_app(server.app) as url, Keystone(api_key="k", base_url=url) as ks:
        results = ks.experiments.run_and_wait("exp-1", poll_interval=0.05, timeout=10)
    assert results.passed == 1 and results.finished
    assert results.status == ""  # an older server: finished by counts, not by status
    assert server.polls == 3
