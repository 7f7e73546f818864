"""`/v1/sandboxes` in real Docker sandboxes: boot from a spec, commands, files, state and diff, the
sandbox token given to the agent, traces, timeouts, events and destruction."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from polarity_keystone.server import create_api_key
from tests.server.server_api import Api, MakeApi, spec_yaml, sse_events
from tests.stores import ENGINE_ON_ONE_STORE
from tests.waiting import wait_until

pytestmark = [pytest.mark.docker, ENGINE_ON_ONE_STORE]

SECRET = "sandbox-s3cr3t-value"
SPEC = spec_yaml("box", extra="secrets:\n  - name: BOX_TOKEN\n")


@pytest.fixture
def box(make_api: MakeApi) -> Iterator[tuple[Api, str]]:
    """A server on a socket (for the event stream) with a ready sandbox of SPEC."""
    api = make_api(socket=True, max_sandboxes_per_key=1, max_sandboxes_per_project=1)
    api.upload(SPEC)
    created = api.client.post(
        "/v1/sandboxes",
        json={
            "spec_id": "box",
            "timeout": "5m",
            "metadata": {"run": "ci-1"},
            "secrets": {"BOX_TOKEN": SECRET},
        },
    )
    assert created.status_code == 201, created.text
    yield api, created.json()["id"]
    api.client.delete(f"/v1/sandboxes/{created.json()['id']}")


def test_create_returns_the_ready_sandbox_and_the_key_and_project_limits_hold(box: tuple[Api, str]) -> None:
    api, sandbox_id = box
    colleague = api.as_key(create_api_key(api.context.store, "colleague")[0])  # same (default) project

    body = api.client.get(f"/v1/sandboxes/{sandbox_id}").json()
    second = api.client.post("/v1/sandboxes", json={"spec_id": "box", "secrets": {"BOX_TOKEN": SECRET}})
    theirs = colleague.post("/v1/sandboxes", json={"spec_id": "box", "secrets": {"BOX_TOKEN": SECRET}})

    assert body["id"] == sandbox_id and sandbox_id.startswith("sb-")
    assert (body["spec_id"], body["state"], body["metadata"], body["services"]) == (
        "box",
        "ready",
        {"run": "ci-1"},
        {},
    )
    assert body["expires_at"] > body["created_at"]
    assert [s["id"] for s in api.client.get("/v1/sandboxes").json()] == [sandbox_id]
    assert second.status_code == 503 and second.json()["error"] == "at_capacity"
    assert "this key" in second.json()["message"] and "Retry-After" in second.headers
    assert theirs.status_code == 503 and "this project already has 1" in theirs.json()["message"]


def test_commands_run_with_the_agent_environment_and_secrets_redacted(box: tuple[Api, str]) -> None:
    api, sandbox_id = box
    url = f"/v1/sandboxes/{sandbox_id}/commands"

    identity = api.client.post(
        url, json={"command": 'echo "$KEYSTONE_SANDBOX_ID $KEYSTONE_BASE_URL $BOX_TOKEN"'}
    )
    failing = api.client.post(url, json={"command": "echo oops >&2; exit 3", "timeout": "30s"})

    assert identity.status_code == 200
    port = api.base_url.rsplit(":", 1)[1]  # the host's 127.0.0.1 is the container's own loopback
    assert identity.json()["stdout"] == f"{sandbox_id} http://keystone-server:{port} ***\n"
    assert identity.json()["exit_code"] == 0 and identity.json()["duration_ms"] >= 0
    assert (failing.json()["exit_code"], failing.json()["stderr"]) == (3, "oops\n")
    assert api.client.get(f"/v1/sandboxes/{sandbox_id}").json()["state"] == "running"
    assert SECRET not in repr(api.context.store.events_after(f"sandbox:{sandbox_id}", 0))


def test_commands_run_as_the_unprivileged_agent_user(box: tuple[Api, str]) -> None:
    """A command sent over the API is the agent's, so it runs as the agent of a replica does."""
    api, sandbox_id = box

    url = f"/v1/sandboxes/{sandbox_id}/commands"

    who = api.client.post(url, json={"command": 'echo "$(id -u) $HOME"'})
    passwd = api.client.post(url, json={"command": "echo x >> /etc/passwd"})

    assert who.json()["stdout"] == "10001 /home/agent\n"
    assert passwd.json()["exit_code"] != 0 and "Permission denied" in passwd.json()["stderr"]


def test_files_round_trip_with_normalised_paths_and_traversal_refused(box: tuple[Api, str]) -> None:
    api, sandbox_id = box
    files = f"/v1/sandboxes/{sandbox_id}/files"
    blob = bytes(range(256))

    written = api.client.post(files, json={"path": "/workspace/conf/app.json", "content": '{"x": 1}'})
    binary = api.client.post(
        files, json={"path": "data.bin", "content": base64.b64encode(blob).decode(), "encoding": "base64"}
    )

    assert written.status_code == 201 and written.json() == {"path": "conf/app.json", "size": 8}
    assert api.client.get(f"{files}/conf/app.json").content == b'{"x": 1}'
    assert api.client.get(f"{files}//workspace/conf/app.json").content == b'{"x": 1}'
    assert binary.status_code == 201 and api.client.get(f"{files}/data.bin").content == blob
    state = api.client.get(f"/v1/sandboxes/{sandbox_id}/state").json()
    assert state["files"]["conf/app.json"]["size"] == 8 and len(state["files"]["data.bin"]["checksum"]) == 64
    assert api.client.get(f"/v1/sandboxes/{sandbox_id}/diff").json()["added"] == ["conf/app.json", "data.bin"]

    assert api.client.delete(f"{files}/conf/app.json").status_code == 204
    assert api.client.get(f"{files}/conf/app.json").status_code == 404
    assert api.client.get(f"/v1/sandboxes/{sandbox_id}/diff").json()["added"] == ["data.bin"]

    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b", "/workspace"):
        response = api.client.post(files, json={"path": bad, "content": "x"})
        assert (response.status_code, response.json()["error"]) == (400, "invalid_path"), bad
    encoded = api.client.get(f"{files}/a/%2E%2E/%2E%2E/etc/passwd")
    assert (encoded.status_code, encoded.json()["error"]) == (400, "invalid_path")


def test_the_agent_token_reaches_only_its_sandbox_and_dies_with_it(box: tuple[Api, str]) -> None:
    api, sandbox_id = box
    token = (
        api.client.post(f"/v1/sandboxes/{sandbox_id}/commands", json={"command": "printenv KEYSTONE_API_KEY"})
        .json()["stdout"]
        .strip()
    )
    agent = api.as_key(token)
    events = [
        {"event_type": "tool_call", "tool": "search", "phase": "start", "span_id": "s1"},
        {
            "event_type": "tool_call",
            "tool": "search",
            "phase": "end",
            "span_id": "s1",
            "duration_ms": 40,
            "status": "ok",
        },
    ]

    assert token.startswith("ks_sb_")
    assert agent.get(f"/v1/sandboxes/{sandbox_id}").json()["id"] == sandbox_id
    assert agent.post(f"/v1/sandboxes/{sandbox_id}/trace", json={"events": events}).json() == {"accepted": 2}
    assert agent.get("/v1/sandboxes/sb-someone-else").status_code == 403
    assert agent.get("/v1/experiments").status_code == 403
    trace = api.client.get(f"/v1/sandboxes/{sandbox_id}/trace").json()
    assert trace["events"] == events
    assert trace["metrics"]["total_tool_calls"] == 1
    assert trace["metrics"]["tool_breakdown"] == {"search": {"count": 1, "mean_ms": 40.0, "error_rate": 0.0}}

    assert api.client.delete(f"/v1/sandboxes/{sandbox_id}").status_code == 204
    assert agent.get(f"/v1/sandboxes/{sandbox_id}").status_code == 401


def test_trace_events_an_agent_reports_are_stored_without_its_secrets(box: tuple[Api, str]) -> None:
    """A tool name (or any text of an event) carrying the sandbox's secret is redacted before it is
    stored, so neither the trace nor an experiment's tool breakdown shows the value."""
    api, sandbox_id = box
    token = (
        api.client.post(f"/v1/sandboxes/{sandbox_id}/commands", json={"command": "printenv KEYSTONE_API_KEY"})
        .json()["stdout"]
        .strip()
    )
    event = {"event_type": "tool_call", "tool": SECRET, "phase": "end", "input": {SECRET: f"x{SECRET}y"}}

    api.as_key(token).post(f"/v1/sandboxes/{sandbox_id}/trace", json={"events": [event]})

    (stored,) = api.context.store.trace_events(sandbox_id)
    assert stored == {"event_type": "tool_call", "tool": "***", "phase": "end", "input": {"***": "x***y"}}
    assert SECRET not in api.client.get(f"/v1/sandboxes/{sandbox_id}/trace").text


def test_destroy_ends_the_event_stream_and_the_sandbox(box: tuple[Api, str]) -> None:
    api, sandbox_id = box
    api.client.post(f"/v1/sandboxes/{sandbox_id}/commands", json={"command": "true"})
    extended = api.client.post(f"/v1/sandboxes/{sandbox_id}/timeout", json={"timeout": "20m"}).json()

    assert api.client.delete(f"/v1/sandboxes/{sandbox_id}").status_code == 204
    events = sse_events(api.client.get(f"/v1/sandboxes/{sandbox_id}/events").text)  # ends by itself
    after = api.client.post(f"/v1/sandboxes/{sandbox_id}/commands", json={"command": "true"})

    assert extended["timeout_s"] == 1200.0
    payloads = [json.loads(data) for _, _, data in events]
    steps = [p["data"].get("step") for p in payloads if p["event_type"] == "status"]
    assert steps[:1] == ["network"] and "ready" in steps and "timeout" in steps
    assert [p["event_type"] for p in payloads].count("command") == 1
    assert payloads[-1] == {
        "event_type": "status",
        "data": {"state": "destroyed", "reason": "destroyed through the API"},
    }
    assert api.client.get(f"/v1/sandboxes/{sandbox_id}").json()["state"] == "destroyed"
    assert (after.status_code, after.json()["error"]) == (409, "sandbox_not_running")
    assert api.client.get("/v1/sandboxes").json() == []
    assert api.client.delete(f"/v1/sandboxes/{sandbox_id}").status_code == 204


def test_a_sandbox_is_destroyed_when_its_timeout_runs_out(make_api: MakeApi) -> None:
    api = make_api()
    api.upload(SPEC)
    created = {"spec_id": "box", "timeout": "1s", "secrets": {"BOX_TOKEN": SECRET}}
    sandbox_id = api.client.post("/v1/sandboxes", json=created).json()["id"]

    wait_until(
        lambda: api.client.get(f"/v1/sandboxes/{sandbox_id}").json()["state"] == "destroyed",
        30,
        "the sandbox destroyed after its timeout",
    )

    last = api.context.store.events_after(f"sandbox:{sandbox_id}", 0)[-1]
    assert last.data == {"state": "destroyed", "reason": "timeout"}


def test_a_sandbox_that_cannot_boot_is_a_500_naming_the_step(make_api: MakeApi) -> None:
    api = make_api()
    broken = (
        SPEC.replace("box", "broken")
        + "services:\n  - {name: crashy, image: 'debian:bookworm-slim', command: 'false'}\n"
    )
    api.upload(broken)

    response = api.client.post("/v1/sandboxes", json={"spec_id": "broken", "secrets": {"BOX_TOKEN": SECRET}})

    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "sandbox_error"
    assert body["details"]["step"] == "services" and "crashy" in body["message"]
    record = api.context.store.get_sandbox(body["details"]["sandbox_id"])
    assert record.state == "error"
