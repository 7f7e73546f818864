"""OTLP/HTTP trace ingest, `POST /otel/v1/traces`: the real OpenTelemetry SDK and OTLP exporter report
spans to a server on a socket, and they are listed as trace events; OTLP's JSON encoding, gzip, the
bounds (a gzip bomb, an oversized span), content types, keys and projects."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from polarity_keystone.scoring import normalise_event
from polarity_keystone.server import create_api_key
from polarity_keystone.server._keys import create_sandbox_token
from polarity_keystone.store import ProjectRecord, SandboxRecord
from tests.server.server_api import Api, MakeApi

ENDPOINT = "/otel/v1/traces"
TRACE_ID = "5b8efff798038103d269b633813fc60c"


def _sandbox(api: Api, sandbox_id: str, project_id: str = "default") -> None:
    api.context.store.put_sandbox(
        SandboxRecord(sandbox_id, "s", "ready", "key", datetime.now(UTC), None, {}, project_id=project_id)
    )


def _agent_spans(resource: dict[str, str]) -> Sequence[ReadableSpan]:
    """An agent's turn as the OpenTelemetry SDK records it: a chat call, then a tool call that fails."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent refunds"):
        with tracer.start_as_current_span("chat claude-sonnet-4") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "claude-sonnet-4",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 80,
                    "gen_ai.response.finish_reasons": ["tool_use"],
                }
            )
        with tracer.start_as_current_span("execute_tool refund") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund"})
            tool.set_attribute("refund.amount", 12.5)
            tool.set_status(Status(StatusCode.ERROR, "card declined"))
    provider.shutdown()
    return recorded.get_finished_spans()


def _export(api: Api, key: str, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    exporter = OTLPSpanExporter(
        endpoint=api.base_url + ENDPOINT,
        headers={"Authorization": f"Bearer {key}"},
        compression=Compression.Gzip,
        timeout=10,
    )
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]


def test_the_otlp_exporter_files_spans_as_events_with_tools_tokens_and_status(make_api: MakeApi) -> None:
    api = make_api(socket=True)
    _sandbox(api, "sb-agent")
    spans = _agent_spans({"service.name": "refund-agent", "keystone.sandbox_id": "sb-agent"})

    assert _export(api, api.key, spans) == SpanExportResult.SUCCESS

    stored = api.client.get("/v1/traces", params={"sandbox_id": "sb-agent"}).json()["items"]
    events = {event["span_name"]: normalise_event(event) for event in stored}
    assert set(events) == {"invoke_agent refunds", "chat claude-sonnet-4", "execute_tool refund"}
    chat, tool, agent = (
        events[name] for name in ("chat claude-sonnet-4", "execute_tool refund", "invoke_agent refunds")
    )
    assert (chat["event_type"], chat["model"], chat["input_tokens"], chat["output_tokens"]) == (
        "llm_call",
        "claude-sonnet-4",
        1200,
        80,
    )
    assert chat["metadata"]["gen_ai.response.finish_reasons"] == ["tool_use"]
    assert (tool["event_type"], tool["tool"], tool["status"]) == ("tool_call", "refund", "error")
    assert tool["metadata"]["refund.amount"] == 12.5
    assert chat["parent_span_id"] == tool["parent_span_id"] == agent["span_id"]
    assert {event["trace_id"] for event in events.values()} == {f"{spans[0].context.trace_id:032x}"}
    assert all(event["duration_ms"] >= 0 and event["ts"] for event in events.values())
    assert {event["service"] for event in stored} == {"refund-agent"}
    listed = api.client.get("/v1/traces", params={"event_type": "tool_call", "tool": "refund"})
    listed = listed.json()["items"]
    assert [event["span_name"] for event in listed] == ["execute_tool refund"]


def test_a_sandbox_token_exports_into_its_own_sandbox_only(make_api: MakeApi) -> None:
    api = make_api(socket=True)
    _sandbox(api, "sb-mine")
    _sandbox(api, "sb-theirs")
    token, _ = create_sandbox_token(api.context.store, "sb-mine", "default")

    assert _export(api, token, _agent_spans({"service.name": "a"})) == SpanExportResult.SUCCESS
    assert len(api.context.store.trace_events("sb-mine")) == 3
    refused = _export(api, token, _agent_spans({"keystone.sandbox_id": "sb-theirs"}))
    assert refused == SpanExportResult.FAILURE
    assert api.context.store.trace_events("sb-theirs") == []


def _json_export(spans: list[dict[str, object]], resource: dict[str, str] | None = None) -> dict[str, object]:
    """An export in OTLP's JSON encoding: lowerCamelCase fields, hex ids, 64-bit integers as strings."""
    attributes = [{"key": k, "value": {"stringValue": v}} for k, v in (resource or {}).items()]
    return {
        "resourceSpans": [
            {"resource": {"attributes": attributes}, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}
        ]
    }


def _json_value(value: object) -> dict[str, str]:
    """An OTLP JSON AnyValue of a string or an integer (a 64-bit integer is a JSON string)."""
    return {"intValue": str(value)} if isinstance(value, int) else {"stringValue": str(value)}


def _json_span(span_id: str, **attributes: object) -> dict[str, object]:
    return {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "name": "execute_tool lookup",
        "kind": 1,
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225600250000000",
        "attributes": [{"key": k, "value": _json_value(v)} for k, v in attributes.items()],
        "status": {"code": 1},
    }


def test_the_json_encoding_is_read_and_an_oversized_span_is_a_partial_success(api: Api) -> None:
    spans = [
        _json_span(
            "eee19b7ec3c1b174", **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}
        ),
        _json_span("eee19b7ec3c1b175", **{"blob": "x" * 70_000}),
    ]
    answer = api.client.post(ENDPOINT, json=_json_export(spans))

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "over the limit" in partial["errorMessage"]
    (event,) = api.client.get("/v1/traces", params={"trace_id": TRACE_ID}).json()["items"]
    assert (event["span_id"], event["ts"], event["duration_ms"]) == (
        "eee19b7ec3c1b174",
        "2026-01-01T00:00:00+00:00",
        250.0,
    )
    assert (normalise_event(event)["tool"], event["status"]) == ("lookup", "ok")

    whole = api.client.post(ENDPOINT, json=_json_export(spans[:1]))
    assert (whole.status_code, whole.json()) == (200, {})


def test_a_gzip_body_is_bounded_when_inflated(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=64 * 1024)
    body = json.dumps(_json_export([_json_span("00000000000000aa")])).encode()
    gzip_json = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    assert api.client.post(ENDPOINT, content=gzip.compress(body), headers=gzip_json).status_code == 200
    bomb = gzip.compress(b" " * (64 * 1024 + 1))
    refused = api.client.post(ENDPOINT, content=bomb, headers=gzip_json)
    assert refused.status_code == 413, refused.text
    assert len(bomb) < 1024
    truncated = api.client.post(ENDPOINT, content=gzip.compress(body)[:-8], headers=gzip_json)
    assert truncated.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/plain"}, {"Content-Type": "application/json", "Content-Encoding": "br"}],
)
def test_other_content_types_and_encodings_are_415(api: Api, headers: dict[str, str]) -> None:
    answer = api.client.post(ENDPOINT, content=b"{}", headers=headers)

    assert answer.status_code == 415, answer.text


def test_malformed_exports_are_400(api: Api) -> None:
    protobuf = {"Content-Type": "application/x-protobuf"}
    assert api.client.post(ENDPOINT, content=b"\xff\xff\xff", headers=protobuf).status_code == 400
    bad_id = _json_export([{**_json_span("00000000000000aa"), "spanId": "not hex"}])
    assert api.client.post(ENDPOINT, json=bad_id).status_code == 400
    assert api.client.post(ENDPOINT, json={"resourceSpans": "no"}).status_code == 400


def test_another_projects_sandbox_is_not_found_and_a_key_is_needed(api: Api) -> None:
    store = api.context.store
    store.add_project(ProjectRecord("proj_b", "proj-b", datetime.now(UTC)))
    key_b, _ = create_api_key(store, "b", "proj_b")
    _sandbox(api, "sb-a")
    export = _json_export([_json_span("00000000000000aa")], {"keystone.sandbox_id": "sb-a"})

    assert api.as_key(key_b).post(ENDPOINT, json=export).status_code == 404
    assert api.as_key(None).post(ENDPOINT, json=export).status_code == 401
    assert store.trace_events("sb-a") == []
    assert api.client.post(ENDPOINT, json=export).status_code == 200
    assert len(store.trace_events("sb-a")) == 1
