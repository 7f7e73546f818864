"""SSE streams on a real socket: live delivery, the end after a terminal event, resume with
Last-Event-ID; and the signed, retried `run.completed` webhook."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from polarity_keystone.server import SIGNATURE_HEADER, ServerSettings, sign_webhook, verify_webhook
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


# --- webhooks ---------------------------------------------------------------------------------------


class Receiver:
    """A real HTTP endpoint that fails its first delivery with 500, then accepts."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        received = self.deliveries
        attempts = [0]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put(({k: v for k, v in self.headers.items()}, body))
                attempts[0] += 1
                self.send_response(500 if attempts[0] == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/keystone"
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Any:
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_run_completed_is_signed_and_retried_until_accepted(make_api: MakeApi, receiver: Receiver) -> None:
    api = make_api(backend_factory=unreachable_engine, webhook_url=receiver.url, webhook_secret="whsec-test")
    experiment_id = _created(api)

    api.client.post(f"/v1/experiments/{experiment_id}/run")
    first_headers, first_body = receiver.deliveries.get(timeout=20)
    retry_headers, retry_body = receiver.deliveries.get(timeout=20)

    assert retry_body == first_body  # the same event, redelivered
    for headers, body in ((first_headers, first_body), (retry_headers, retry_body)):
        assert headers["Keystone-Event"] == "run.completed"
        assert verify_webhook("whsec-test", body, headers[SIGNATURE_HEADER])
        assert not verify_webhook("another-secret", body, headers[SIGNATURE_HEADER])
    payload = json.loads(first_body)
    assert payload["type"] == "run.completed"
    assert payload["id"].startswith("evt_")
    assert payload["data"]["experiment_id"] == experiment_id
    assert payload["data"]["status"] == "failed"


def test_a_signature_is_bound_to_the_body_and_expires() -> None:
    body = b'{"type": "run.completed"}'
    header = sign_webhook("s", body)

    assert verify_webhook("s", body, header)
    assert not verify_webhook("s", body + b" ", header)
    assert not verify_webhook("s", body, sign_webhook("s", body, timestamp=1_000_000))
    assert not verify_webhook("s", body, "garbage")


def test_a_webhook_url_without_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        ServerSettings(store_url="sqlite:///x.db", webhook_url="http://example.invalid/hook")


def test_an_unauthenticated_server_only_listens_on_loopback(settings_for: Any) -> None:
    from polarity_keystone.server import serve_in_thread

    with pytest.raises(ValueError, match="loopback"):
        serve_in_thread(settings_for(auth_required=False), host="0.0.0.0")
    assert httpx  # the module under test is reached over real sockets above
