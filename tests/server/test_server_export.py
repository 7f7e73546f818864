"""Export routes: `GET /v1/traces`, `/v1/traces/{trace_id}`, `/v1/spans`, `/v1/scenarios` (cursor-paged
`{items, next_cursor, count}` pages, filters, bounds, forged cursors) and `/v1/experiments/{id}/export`
(the bundle as one JSON document and as NDJSON lines), each within the caller's project."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.server import _export_pages as export_pages
from polarity_keystone.server import _routes_export as routes_export
from polarity_keystone.server import create_api_key
from polarity_keystone.store import ExperimentRecord, ProjectRecord, SandboxRecord, encode_cursor
from tests.server.export_data import EXPERIMENT_ID, SPANS, STATUSES, seed_experiment
from tests.server.server_api import Api, MakeApi
from tests.server.test_server_agents import member, tarball, uploaded

BUNDLE_MEMBERS = ["experiment", "results", "scenarios", "replicas", "scores", "trace_events"]


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    api = make_api(read_rate=1000.0, write_rate=1000.0)
    seed_experiment(api.context.store)
    return api


def _page(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    assert set(page) == {"items", "next_cursor", "count"} and page["count"] == len(page["items"])
    return page


def _every(client: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """A listing's items over all its pages, and how many pages it took."""
    items: list[dict[str, Any]] = []
    pages, cursor = 0, None
    while True:
        page = _page(client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}))
        items.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


def test_trace_events_page_through_cursors_and_filter(api: Api) -> None:
    events, pages = _every(api.client, "/v1/traces", experiment_id=EXPERIMENT_ID, limit=5)
    assert (len(events), pages) == (3 * len(SPANS), 3)
    assert [e["tool"] for e in events[:4]] == [event["tool"] for event in SPANS]
    assert {e["sandbox_id"] for e in events} == {f"sb-{s}" for s in STATUSES}

    by_sandbox, _ = _every(api.client, "/v1/traces", sandbox_id="sb-s-fail", event_type="llm_call")
    assert [(e["sandbox_id"], e["tool"]) for e in by_sandbox] == [("sb-s-fail", "anthropic.create")]
    # The agent is the event's `agent` key or its gen_ai.agent.name attribute.
    by_agent, _ = _every(api.client, "/v1/traces", agent="refunds", sandbox_id="sb-s-pass")
    assert [e["tool"] for e in by_agent] == ["anthropic.create", "search"]
    assert _page(api.client.get("/v1/traces", params={"agent": "nobody"}))["items"] == []
    assert _page(api.client.get("/v1/traces", params={"since": "2999-01-01T00:00:00Z"}))["items"] == []


def test_a_narrowed_listing_reads_a_bounded_number_of_events_per_page(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rare match costs several short pages (some empty, each with a cursor), never one long read."""
    monkeypatch.setattr(export_pages, "SCAN_ROWS", 2)
    every, pages = _every(api.client, "/v1/traces", agent="refunds", limit=2)
    assert [e["sandbox_id"] for e in every] == [f"sb-{s}" for s in STATUSES for _ in range(2)]
    assert pages >= len(SPANS) * 3 // 2


def test_spans_filter_by_tree_tool_and_type(api: Api) -> None:
    spans, _ = _every(api.client, "/v1/spans", root_span_id="sp-root", limit=4)
    assert len(spans) == 9 and all(span.get("span_id") for span in spans)
    children, _ = _every(api.client, "/v1/spans", parent_span_id="sp-root", tool="search")
    assert [(s["span_id"], s["sandbox_id"]) for s in children] == [("sp-a", f"sb-{s}") for s in STATUSES]
    (llm,) = _every(api.client, "/v1/spans", span_id="sp-b", trace_id="tr-sp-b", event_type="llm_call")[0][:1]
    assert llm["tool"] == "anthropic.create"
    assert _page(api.client.get("/v1/spans", params={"span_id": "sp-none"}))["items"] == []


def test_one_trace_is_every_event_filed_under_its_id(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = api.client.get("/v1/traces/tr-sp-a")
    assert trace.status_code == 200, trace.text
    body = trace.json()
    assert (body["trace_id"], body["count"], body["truncated"]) == ("tr-sp-a", 3, False)
    assert [e["span_id"] for e in body["events"]] == ["sp-a"] * 3
    monkeypatch.setattr(routes_export, "MAX_TRACE_EVENTS", 2)
    cut = api.client.get("/v1/traces/tr-sp-a").json()
    assert (cut["count"], cut["truncated"]) == (2, True)
    missing = api.client.get("/v1/traces/tr-nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_scenarios_filter_by_status_and_id_and_page(api: Api) -> None:
    every, pages = _every(api.client, "/v1/scenarios", experiment_id=EXPERIMENT_ID, limit=2)
    assert ([s["scenario_id"] for s in every], pages) == (sorted(STATUSES), 2)
    assert every[0]["replicas"][0]["sandbox_id"] == "sb-s-error"
    for status, expected in (("failed", "s-fail"), ("fail", "s-fail"), ("errored", "s-error")):
        page = _page(
            api.client.get("/v1/scenarios", params={"experiment_id": EXPERIMENT_ID, "status": status})
        )
        assert [s["scenario_id"] for s in page["items"]] == [expected]
    one = _page(
        api.client.get("/v1/scenarios", params={"experiment_id": EXPERIMENT_ID, "scenario_id": "s-pass"})
    )
    assert [s["status"] for s in one["items"]] == ["pass"]
    assert api.client.get("/v1/scenarios").status_code == 400
    bad = api.client.get("/v1/scenarios", params={"experiment_id": EXPERIMENT_ID, "status": "nope"})
    assert bad.status_code == 400 and set(bad.json()) >= {"error", "message", "request_id"}
    assert api.client.get("/v1/scenarios", params={"experiment_id": "exp-nope"}).status_code == 404


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        encode_cursor("trace_events", ["abc"]),
        encode_cursor("trace_events", [2**70]),
        encode_cursor("trace_events", [-1]),
        encode_cursor("trace_events", [1, 2]),
        encode_cursor("experiments", ["x", "y"]),
    ],
)
def test_a_forged_cursor_is_a_400_and_limits_are_bounded(api: Api, cursor: str) -> None:
    for path, params in (
        ("/v1/traces", {}),
        ("/v1/spans", {}),
        ("/v1/scenarios", {"experiment_id": EXPERIMENT_ID}),
    ):
        answer = api.client.get(path, params={**params, "cursor": cursor})
        assert answer.status_code == 400, f"{path}: {answer.text}"
        assert set(answer.json()) >= {"error", "message", "request_id"}
    assert api.client.get("/v1/traces", params={"limit": 100_000}).status_code == 400
    assert api.client.get("/v1/spans", params={"limit": 0}).status_code == 400


def test_the_bundle_as_json_holds_experiment_results_scenarios_replicas_and_events(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_export, "BUNDLE_BATCH", 5)  # the events are read in several batches
    answer = api.client.get(f"/v1/experiments/{EXPERIMENT_ID}/export")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json" and "content-length" not in answer.headers
    bundle = answer.json()
    assert list(bundle) == BUNDLE_MEMBERS
    assert bundle["experiment"]["id"] == EXPERIMENT_ID
    assert "scenarios" not in bundle["results"] and bundle["results"]["failed"] == 1
    assert [s["scenario_id"] for s in bundle["scenarios"]] == list(STATUSES)
    assert all("replicas" not in s for s in bundle["scenarios"])
    assert [r["scenario_id"] for r in bundle["replicas"]] == list(STATUSES)
    assert len(bundle["trace_events"]) == 3 * len(SPANS) and bundle["scores"] == []


def test_the_bundle_holds_the_scores_the_experiments_rules_gave(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_export, "BUNDLE_BATCH", 2)  # the scores are read in several batches
    rule = api.client.post("/v1/score-rules", json={"name": "r", "type": "contains", "config": {"text": "x"}})
    scored = api.client.post(f"/v1/experiments/{EXPERIMENT_ID}/score", json={"rule_ids": [rule.json()["id"]]})
    assert scored.status_code == 202, scored.text
    listed = api.client.get(f"/v1/experiments/{EXPERIMENT_ID}/scores").json()

    bundle = api.client.get(f"/v1/experiments/{EXPERIMENT_ID}/export").json()
    assert len(bundle["scores"]) == len(STATUSES) and bundle["scores"] == listed
    lines = api.client.get(f"/v1/experiments/{EXPERIMENT_ID}/export", params={"format": "ndjson"}).text
    typed = [json.loads(line) for line in lines.splitlines()]
    assert [line["data"] for line in typed if line["type"] == "score"] == listed


def test_the_bundle_as_ndjson_is_one_typed_line_per_part(api: Api) -> None:
    answer = api.client.get(f"/v1/experiments/{EXPERIMENT_ID}/export", params={"format": "ndjson"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in answer.text.splitlines()]
    kinds = [line["type"] for line in lines]
    assert len(lines) == 1 + 1 + 3 + 3 + 3 * len(SPANS)  # no score: no rule scored it
    assert kinds[:5] == ["experiment", "results", "scenario", "scenario", "scenario"]
    assert kinds.count("replica") == 3 and kinds.count("trace_event") == 3 * len(SPANS)
    assert (
        api.client.get(f"/v1/experiments/{EXPERIMENT_ID}/export", params={"format": "xml"}).status_code == 400
    )


def test_an_experiment_without_replicas_exports_empty_arrays(api: Api) -> None:
    created = api.client.post(
        "/v1/specs",
        json={
            "yaml": "version: 1\nid: empty\nbase: debian:bookworm-slim\n"
            "task: {prompt: p}\nagent: {type: cli, command: 'true'}\n"
            "invariants:\n  x: {check: {type: file_exists, path: a}}\n"
        },
    )
    assert created.status_code == 201, created.text
    made = api.client.post("/v1/experiments", json={"name": "e", "spec_id": "empty"})
    bundle = api.client.get(f"/v1/experiments/{made.json()['id']}/export").json()
    assert (
        list(bundle) == BUNDLE_MEMBERS
        and bundle["trace_events"] == [] == bundle["replicas"] == bundle["scores"]
    )


def test_another_projects_export_is_invisible(api: Api) -> None:
    store = api.context.store
    store.add_project(ProjectRecord("proj_b", "b", datetime.now(UTC)))
    other = api.as_key(create_api_key(store, "b", "proj_b")[0])
    for path in (f"/v1/experiments/{EXPERIMENT_ID}/export", "/v1/traces/tr-sp-a"):
        assert other.get(path).status_code == 404, path
    assert other.get("/v1/scenarios", params={"experiment_id": EXPERIMENT_ID}).status_code == 404
    assert other.get("/v1/traces", params={"experiment_id": EXPERIMENT_ID}).status_code == 404
    assert other.get("/v1/traces", params={"sandbox_id": "sb-s-pass"}).status_code == 404
    for path in ("/v1/traces", "/v1/spans"):
        assert _page(other.get(path))["items"] == [], path


def test_an_agents_traces_are_its_pinned_runs_and_the_events_naming_it(api: Api) -> None:
    """`GET /v1/agents/{name}/traces`: the events of the sandboxes whose experiment pinned one of the
    agent's snapshots, and the events that name the agent; `version` narrows both; an agent the project
    never uploaded is 404, as on its other routes."""
    store = api.context.store
    first = uploaded(
        api.client, tarball(member("run.sh", b"echo 1\n")), name="refunds", entrypoint=["sh", "run.sh"]
    )
    second = uploaded(
        api.client, tarball(member("run.sh", b"echo 2\n")), name="refunds", entrypoint=["sh", "run.sh"]
    )
    now = datetime.now(UTC)
    store.add_experiment(
        ExperimentRecord(
            "exp_pinned",
            "pinned",
            "export-spec",
            1,
            "completed",
            now,
            "key",
            options={"agent_snapshot": first["id"]},
        )
    )
    store.put_sandbox(
        SandboxRecord(
            "sb-pinned", "export-spec", "destroyed", "key", now, None, {"experiment_id": "exp_pinned"}
        )
    )
    pinned_events = [
        {"event_type": "tool_call", "tool": "lookup"},
        {"event_type": "llm_call", "tool": "openai.create"},
    ]
    store.add_trace_events("sb-pinned", "key", pinned_events)
    store.add_trace_events(
        None, "key", [{"event_type": "tool_call", "tool": "v2-call", "agent": "refunds", "agent_version": 2}]
    )
    store.add_trace_events(
        None,
        "key",
        [{"event_type": "tool_call", "tool": "huge", "agent": "refunds", "agent_version": "9" * 5000}],
    )

    every, _ = _every(api.client, "/v1/agents/refunds/traces", limit=3)
    tools = [event["tool"] for event in every]
    # Each of the seeded experiment's three sandboxes has two events naming `refunds`.
    assert tools == ["anthropic.create", "search"] * 3 + ["lookup", "openai.create", "v2-call", "huge"]

    version_1, _ = _every(api.client, "/v1/agents/refunds/traces", version=1)
    assert [event["tool"] for event in version_1] == ["lookup", "openai.create"]
    version_2, _ = _every(api.client, "/v1/agents/refunds/traces", version=second["version"])
    assert [event["tool"] for event in version_2] == ["v2-call"]

    assert api.client.get("/v1/agents/refunds/traces", params={"version": 9}).status_code == 404
    assert api.client.get("/v1/agents/never-uploaded/traces").status_code == 404
