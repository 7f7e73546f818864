"""Trace ingest over the API: `POST /v1/traces` (agent mode, with or without a sandbox, grouped by trace
id), `GET /v1/traces` (the project's events, filtered and paged), and the bounds on what is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from polarity_keystone import Keystone
from polarity_keystone.server import _routes_traces as routes_traces
from polarity_keystone.server import create_api_key
from polarity_keystone.server._events import experiment_stream
from polarity_keystone.server._keys import create_sandbox_token
from polarity_keystone.store import ProjectRecord, SandboxRecord
from tests.server.server_api import Api, MakeApi, spec_yaml


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api(read_rate=1000.0, write_rate=1000.0)


def _sandbox(api: Api, sandbox_id: str, project_id: str = "default", experiment_id: str = "") -> None:
    metadata = {"experiment_id": experiment_id} if experiment_id else {}
    api.context.store.put_sandbox(
        SandboxRecord(
            sandbox_id, "s", "ready", "key", datetime.now(UTC), None, metadata, project_id=project_id
        )
    )


def _tools(listing: httpx.Response) -> list[str]:
    assert listing.status_code == 200, listing.text
    return [event["tool"] for event in listing.json()["items"]]


def test_events_without_a_sandbox_are_grouped_by_trace_and_listed(api: Api) -> None:
    sent = api.client.post(
        "/v1/traces",
        json={
            "events": [
                {"ts": "2026-01-01T00:00:00Z", "event_type": "llm_call", "tool": "anthropic.create"},
                {"type": "tool_use", "id": "toolu_1", "name": "search", "trace_id": "tr_own"},
            ]
        },
    )
    assert sent.status_code == 200, sent.text
    (generated,) = [t for t in sent.json()["trace_ids"] if t != "tr_own"]
    assert sent.json() == {"accepted": 2, "trace_ids": sorted([generated, "tr_own"])}

    listed = api.client.get("/v1/traces").json()["items"]
    assert [(e["tool"] if "tool" in e else e["name"], e["trace_id"], e["sandbox_id"]) for e in listed] == [
        ("anthropic.create", generated, None),
        ("search", "tr_own", None),
    ]
    assert _tools(api.client.get("/v1/traces", params={"trace_id": generated})) == ["anthropic.create"]
    # Filters read the normalised event: a tool_use block is a tool call of tool `search`.
    by_type = api.client.get("/v1/traces", params={"event_type": "tool_call", "tool": "search"})
    assert [e["id"] for e in by_type.json()["items"]] == ["toolu_1"]


def test_listing_filters_by_sandbox_experiment_and_time_and_pages(api: Api) -> None:
    _sandbox(api, "sb-1", experiment_id="exp-1")
    _sandbox(api, "sb-2")
    for sandbox_id in ("sb-1", "sb-2", "sb-1"):
        events = [{"event_type": "tool_call", "tool": f"{sandbox_id}.t"}]
        sent = api.client.post("/v1/traces", json={"events": events, "sandbox_id": sandbox_id})
        assert sent.status_code == 200, sent.text

    assert _tools(api.client.get("/v1/traces", params={"sandbox_id": "sb-2"})) == ["sb-2.t"]
    first = api.client.get("/v1/traces", params={"limit": 2})
    assert _tools(first) == ["sb-1.t", "sb-2.t"]
    rest = api.client.get("/v1/traces", params={"limit": 2, "cursor": first.json()["next_cursor"]})
    assert _tools(rest) == ["sb-1.t"] and rest.json()["next_cursor"] is None
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _tools(api.client.get("/v1/traces", params={"since": later})) == []
    assert api.client.get("/v1/traces", params={"sandbox_id": "sb-nope"}).status_code == 404
    assert api.client.get("/v1/traces", params={"experiment_id": "exp-nope"}).status_code == 404


def test_an_experiments_events_are_those_of_its_sandboxes(api: Api) -> None:
    created = api.client.post("/v1/specs", json={"yaml": spec_yaml("traced")})
    assert created.status_code == 201, created.text
    experiment = api.client.post(
        "/v1/experiments", json={"name": "e", "spec_id": created.json()["id"], "replicas": 1}
    )
    assert experiment.status_code in (200, 201), experiment.text
    experiment_id = experiment.json()["id"]
    _sandbox(api, "sb-of-exp", experiment_id=experiment_id)
    _sandbox(api, "sb-other")
    for sandbox_id in ("sb-of-exp", "sb-other"):
        api.client.post("/v1/traces", json={"events": [{"tool": sandbox_id}], "sandbox_id": sandbox_id})

    assert _tools(api.client.get("/v1/traces", params={"experiment_id": experiment_id})) == ["sb-of-exp"]


def test_an_experiment_replicas_events_go_out_live_on_its_stream(api: Api) -> None:
    _sandbox(api, "sb-live", experiment_id="exp-live")
    events = [
        {"type": "tool_use", "id": "t1", "name": "search"},
        {"event_type": "llm_call", "model": "gpt-4o", "cost": {"input_tokens": 3}},
    ]
    sent = api.client.post("/v1/sandboxes/sb-live/trace", json={"events": events})
    assert sent.status_code == 200, sent.text

    streamed = api.context.store.events_after(experiment_stream("exp-live"), 0)
    assert [(e.type, e.data["event_type"], e.data["tool"], e.data["model"]) for e in streamed] == [
        ("tool_call", "tool_call", "search", None),
        ("step", "llm_call", "", "gpt-4o"),
    ]
    assert {e.data["sandbox_id"] for e in streamed} == {"sb-live"}


def test_a_sandbox_token_files_events_under_its_own_sandbox_only(api: Api) -> None:
    _sandbox(api, "sb-mine")
    _sandbox(api, "sb-theirs")
    token, _ = create_sandbox_token(api.context.store, "sb-mine", "default")
    agent = api.as_key(token)

    sent = agent.post("/v1/traces", json={"events": [{"type": "tool_use", "id": "t1", "name": "deploy"}]})
    assert sent.status_code == 200, sent.text
    assert api.context.store.trace_events("sb-mine") == [{"type": "tool_use", "id": "t1", "name": "deploy"}]
    refused = agent.post("/v1/traces", json={"events": [{"tool": "x"}], "sandbox_id": "sb-theirs"})
    assert refused.status_code == 403
    assert [e["id"] for e in agent.get("/v1/traces", params={"tool": "deploy"}).json()["items"]] == ["t1"]
    assert agent.get("/v1/traces", params={"sandbox_id": "sb-theirs"}).status_code == 403


def test_another_projects_events_and_sandboxes_are_not_found(api: Api) -> None:
    store = api.context.store
    store.add_project(ProjectRecord("proj_b", "proj-b", datetime.now(UTC)))
    key_b, _ = create_api_key(store, "b", "proj_b")
    b = api.as_key(key_b)
    _sandbox(api, "sb-a")
    api.client.post("/v1/traces", json={"events": [{"tool": "a-only"}], "sandbox_id": "sb-a"})

    assert b.get("/v1/traces").json()["items"] == []
    assert b.post("/v1/traces", json={"events": [{"tool": "x"}], "sandbox_id": "sb-a"}).status_code == 404
    assert b.get("/v1/traces", params={"sandbox_id": "sb-a"}).status_code == 404


def test_oversized_deep_or_too_many_events_are_refused_with_413(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = 5  # the real cap, lowered so the test stores a handful of events, not ten thousand
    monkeypatch.setattr(routes_traces, "MAX_EVENTS_PER_SANDBOX", cap)
    _sandbox(api, "sb-full")
    big = api.client.post("/v1/traces", json={"events": [{"tool": "t", "input": "x" * 70_000}]})
    assert big.status_code == 413
    assert "events[0]: an event is" in big.json()["message"]
    deep: dict[str, object] = {"tool": "t"}
    inner = deep
    for _ in range(10):
        inner["a"] = {}
        inner = inner["a"]  # type: ignore[assignment]
    assert api.client.post("/v1/traces", json={"events": [deep]}).status_code == 413

    api.context.store.add_trace_events("sb-full", "key", [{"tool": "t"}] * (cap - 1))
    last = api.client.post("/v1/traces", json={"events": [{"tool": "t"}], "sandbox_id": "sb-full"})
    assert last.status_code == 200, last.text
    over = api.client.post("/v1/traces", json={"events": [{"tool": "t"}], "sandbox_id": "sb-full"})
    assert over.status_code == 413
    assert f"holds {cap} events; 1 more would pass its cap of {cap}" in over.json()["message"]
    through_sandbox_route = api.client.post("/v1/sandboxes/sb-full/trace", json={"events": [{"tool": "t"}]})
    assert through_sandbox_route.status_code == 413


REPORTER_SPEC = """\
version: 1
id: reports-home
base: "ubuntu:24.04"
task: {prompt: "look up the order"}
agent:
  type: cli
  command: |
    python3 -c '
    import json, os, urllib.request
    event = {"type": "tool_use", "id": "toolu_9", "name": "deploy.prod", "input": {"env": "prod"}}
    request = urllib.request.Request(
        os.environ["KEYSTONE_BASE_URL"] + "/v1/traces",
        data=json.dumps({"events": [event]}).encode(),
        headers={"Authorization": "Bearer " + os.environ["KEYSTONE_API_KEY"],
                 "Content-Type": "application/json"},
        method="POST",
    )
    print(urllib.request.urlopen(request, timeout=10).read().decode())
    '
network:
  egress:
    default: deny
invariants:
  done: {check: {type: command_exit, command: "true"}}
forbidden:
  tool_calls: ['deploy\\..*']
"""


@pytest.mark.docker
def test_a_forbidden_tool_an_agent_posts_from_its_sandbox_fails_the_replica(tmp_path: Path) -> None:
    """The whole path: a replica's agent posts a tool call to `POST /v1/traces` with its `ks_sb_` token,
    nothing in its trace file, and the replica's `forbidden.tool_calls` sees it."""
    with Keystone.local(tmp_path / ".keystone") as ks:
        ks.specs.create(REPORTER_SPEC)
        results = ks.experiments.run_and_wait(ks.experiments.create("home", "reports-home").id, timeout=240)
    (replica,) = results.scenarios[0].replicas

    assert '"accepted":1' in replica.agent_output, replica.agent_output + replica.agent_stderr
    (rule,) = replica.forbidden_checks
    assert rule.violated, rule.details
    assert rule.details == "agent called forbidden tool(s) deploy.prod (1 call(s))"
    assert (replica.status, replica.tool_calls) == ("fail", 1)
