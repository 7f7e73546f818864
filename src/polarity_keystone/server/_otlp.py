"""OTLP/HTTP trace exports read into Keystone trace events, and the export's answer.

A request is an `ExportTraceServiceRequest`, as protobuf (`application/x-protobuf`) or in OTLP's JSON
encoding (`application/json`: lowerCamelCase field names, and trace and span ids as hex, where
protobuf's own JSON mapping has base64), optionally gzip-compressed. `decode_export` reads it (never past a
decompressed size); `span_events` turns each span into one event, grouped by the sandbox its resource
names (`keystone.sandbox_id`); `encode_answer` writes the `ExportTraceServiceResponse` in the request's
encoding.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ._errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SANDBOX_ATTRIBUTE = "keystone.sandbox_id"
"""The resource attribute with which an exporter holding a live key names the sandbox its spans are of."""
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def media_of(content_type: str) -> str:
    """The request's encoding (415 for any but OTLP's two)."""
    media = content_type.split(";")[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise UnsupportedMediaType(f"send OTLP traces as {PROTOBUF} or {JSON}, not {media or 'no type'}")
    return media


def decode_export(
    media: str, content_encoding: str, body: bytes, max_bytes: int
) -> ExportTraceServiceRequest:
    """The export request in `body`; a gzip body may not inflate past `max_bytes` (413)."""
    data = _inflated(content_encoding, body, max_bytes)
    request = ExportTraceServiceRequest()
    try:
        if media == PROTOBUF:
            request.ParseFromString(data)
        else:
            json_format.ParseDict(_with_base64_ids(json.loads(data)), request)
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidRequest(f"not an OTLP ExportTraceServiceRequest in {media}: {exc}"[:1000]) from None
    return request


def _inflated(content_encoding: str, body: bytes, max_bytes: int) -> bytes:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding may be gzip or identity, not {encoding}")
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"the gzip body cannot be decompressed: {exc}") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the gzip body decompresses to more than {max_bytes} bytes")
    if not inflater.eof:
        raise InvalidRequest("the gzip body is truncated")
    return data


def _with_base64_ids(document: Any) -> Any:
    """OTLP JSON's hex span and trace ids (of spans and their links) as protobuf's JSON mapping reads
    them; anything not shaped as an export is left for the parser to refuse."""
    spans = [
        span
        for resource in _dicts(document, "resourceSpans", "resource_spans")
        for scope in _dicts(resource, "scopeSpans", "scope_spans")
        for span in _dicts(scope, "spans")
    ]
    for item in [*spans, *(link for span in spans for link in _dicts(span, "links"))]:
        for field in _ID_FIELDS:
            if isinstance(item.get(field), str):
                item[field] = _hex_to_base64(item[field])
    return document


def _dicts(parent: Any, *keys: str) -> list[dict[str, Any]]:
    if not isinstance(parent, dict):
        return []
    items: Any = next((parent[key] for key in keys if key in parent), [])
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _hex_to_base64(text: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(text)).decode()
    except ValueError:
        raise InvalidRequest(f"an OTLP JSON id is hex, not {text[:100]!r}") from None


def span_events(request: ExportTraceServiceRequest) -> dict[str | None, list[dict[str, Any]]]:
    """One event per span, by the sandbox its resource names (None: none)."""
    grouped: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for resource_spans in request.resource_spans:
        resource = attribute_dict(resource_spans.resource.attributes)
        sandbox = resource.get(SANDBOX_ATTRIBUTE)
        service = resource.get("service.name")
        for scope_spans in resource_spans.scope_spans:
            grouped[str(sandbox) if sandbox else None].extend(
                span_event(span, service) for span in scope_spans.spans
            )
    return dict(grouped)


def span_event(span: Span, service: Any = None) -> dict[str, Any]:
    """The span as a trace event: its attributes (where `normalise_event` finds the GenAI conventions),
    name, ids, start as `ts`, length as `duration_ms` and status as `ok`/`error`."""
    event: dict[str, Any] = {
        "span_name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "status": "error" if span.status.code == Status.STATUS_CODE_ERROR else "ok",
        "attributes": attribute_dict(span.attributes),
    }
    if span.parent_span_id:
        event["parent_span_id"] = span.parent_span_id.hex()
    if span.start_time_unix_nano:
        event["ts"] = datetime.fromtimestamp(span.start_time_unix_nano / 1e9, UTC).isoformat()
        if span.end_time_unix_nano >= span.start_time_unix_nano:
            event["duration_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    if span.status.message:
        event["status_message"] = span.status.message
    if isinstance(service, str) and service:
        event["service"] = service
    return event


def attribute_dict(attributes: Any) -> dict[str, Any]:
    """OTLP key-values as a flat dict of JSON values."""
    pairs: list[KeyValue] = list(attributes)
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attribute_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def encode_answer(media: str, rejected: int, message: str) -> bytes:
    """The ExportTraceServiceResponse, with `partial_success` when spans were refused."""
    answer = ExportTraceServiceResponse()
    if rejected:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    if media == PROTOBUF:
        return bytes(answer.SerializeToString())
    return str(json_format.MessageToJson(answer, indent=None)).encode()
