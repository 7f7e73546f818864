"""`POST /otel/v1/traces`: OTLP/HTTP trace export, so any OpenTelemetry SDK or collector can report an
agent's spans. Each span is filed as one trace event, with the limits of `POST /v1/traces`; a span too
large to keep is refused alone and counted in the answer's `partial_success`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ..scoring import event_problem
from ._deps import Authenticated, Context, Principal
from ._errors import PayloadTooLarge
from ._models import error_responses
from ._otlp import JSON, PROTOBUF, decode_export, encode_answer, media_of, span_events
from ._routes_traces import admit_events, filing_sandbox, store_events

router = APIRouter(prefix="/otel/v1/traces", tags=["traces"])

MAX_SPANS_PER_EXPORT = 10_000
"""As many spans as `POST /v1/traces` takes events in one request."""

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_EXPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportTraceServiceRequest, as protobuf or in OTLP's JSON encoding (hex "
        "ids), optionally with `Content-Encoding: gzip`. A resource attribute `keystone.sandbox_id` files "
        "its spans under that sandbox (a sandbox token's spans go under its own sandbox).",
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}},
                }
            },
            PROTOBUF: _BINARY,
        },
    }
}
_ANSWER = {
    200: {
        "description": "An OTLP ExportTraceServiceResponse in the request's encoding; `partialSuccess` "
        "counts the spans refused (each too large to keep as an event)",
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "partialSuccess": {
                            "type": "object",
                            "properties": {
                                "rejectedSpans": {"type": "string"},
                                "errorMessage": {"type": "string"},
                            },
                        }
                    },
                }
            },
            PROTOBUF: _BINARY,
        },
    },
    **error_responses(403, 404, 413, 415),
}


@router.post(
    "",
    response_class=Response,
    summary="Ingest an OTLP/HTTP trace export (one trace event per span)",
    openapi_extra=_EXPORT_BODY,
    responses=_ANSWER,
)
async def export_traces(request: Request, context: Context, caller: Authenticated) -> Response:
    media = media_of(request.headers.get("content-type", ""))
    body = await request.body()
    answer = await run_in_threadpool(
        _ingest, context, caller, media, request.headers.get("content-encoding", ""), body
    )
    return Response(answer, media_type=media)


def _ingest(context: Context, caller: Principal, media: str, encoding: str, body: bytes) -> bytes:
    export = decode_export(media, encoding, body, context.settings.max_body_bytes)
    groups = span_events(export)
    spans = sum(map(len, groups.values()))
    if spans > MAX_SPANS_PER_EXPORT:
        raise PayloadTooLarge(f"an export may hold {MAX_SPANS_PER_EXPORT} spans, not {spans}")
    kept: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    problems: list[str] = []
    for sandbox, events in groups.items():
        filed = kept[filing_sandbox(context, caller, sandbox)]
        for event in events:
            problem = event_problem(event)
            filed.extend([] if problem else [event])
            problems.extend([problem] if problem else [])
    for sandbox, events in kept.items():
        admit_events(context.store, sandbox, events)
    for sandbox, events in kept.items():
        store_events(context, caller, sandbox, events)
    message = f"{len(problems)} spans refused; the first: {problems[0]}" if problems else ""
    return encode_answer(media, len(problems), message)
