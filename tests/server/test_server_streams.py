"""SSE streams on a real socket: live delivery, the end after a terminal event, resume with
Last-Event-ID."""

from __future__ import annotations

import json
import queue
import threading

from tests.server.server_api import (
    Api,
    MakeApi,
    spec_yaml,
    sse_events,
    unreachable_engine,
    wait_until_finished,
)


def _created(api: Api) -> str:
    api.upload(spec_yaml())
    experiment_id: str = api.client.post("/v1/experiments", json={"name": "s", "spec_id": "hello"}).json()[
        "id"
    ]
    return experiment_id


def test_a_stream_delivers_events_as_they_happen_and_ends_after_the_terminal_one(make_api: MakeApi) -> None:
    api = make_api(socket=True, backend_factory=unreachable_engine)
    experiment_id = _created(api)
    lines: queue.Queue[str | None] = queue.Queue()

    def follow() -> None:
        with api.client.stream("GET", f"/v1/experiments/{experiment_id}/stream") as response:
            for line in response.iter_lines():
                lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=follow)
    reader.start()
    assert lines.get(timeout=10) == ": stream open"  # connected before anything happened
    api.client.post(f"/v1/experiments/{experiment_id}/run")
    reader.join(timeout=30)

    received = []
    while (line := lines.get(timeout=1)) is not None:
        received.append(line)
    events = sse_events("\n".join(received))
    assert [event for _, event, _ in events] == ["progress", "progress", "error"]
    assert [json.loads(data)["status"] for _, _, data in events] == ["queued", "running", "failed"]
    assert [event_id for event_id, _, _ in events] == sorted(event_id for event_id, _, _ in events)
    assert json.loads(events[-1][2])["experiment_id"] == experiment_id


def test_a_client_resuming_with_last_event_id_gets_only_what_it_missed(make_api: MakeApi) -> None:
    api = make_api(socket=True, backend_factory=unreachable_engine)
    experiment_id = _created(api)
    api.client.post(f"/v1/experiments/{experiment_id}/run")
    wait_until_finished(api, experiment_id)
    url = f"/v1/experiments/{experiment_id}/stream"
    everything = sse_events(api.client.get(url).text)

    resumed = sse_events(api.client.get(url, headers={"Last-Event-ID": str(everything[0][0])}).text)
    by_query = sse_events(api.client.get(url, params={"last_event_id": everything[1][0]}).text)

    assert resumed == everything[1:]
    assert by_query == everything[2:]


def test_streaming_an_unknown_experiment_is_404(make_api: MakeApi) -> None:
    api = make_api(socket=True)

    response = api.client.get("/v1/experiments/exp-nope/stream")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
