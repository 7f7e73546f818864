"""The SSE parser, and following a stream across a dropped connection, against a real uvicorn app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from polarity_keystone import Keystone
from polarity_keystone.sdk import StreamEvent
from polarity_keystone.sdk._sse import RawEvent, parse_events
from tests.asgi_server import serve_app


def test_parser_follows_the_event_stream_format() -> None:
    lines = [
        ": stream open",
        "",
        "id: 1",
        "event: progress",
        'data: {"done": 1,',
        'data:  "total": 2}',
        "",
        "data:no space after the colon",
        "retry: 2500",
        "",
        "id: 2",
        "event: done",
        "",
        "trailing: never dispatched without a blank line",
    ]
    assert list(parse_events(lines)) == [
        RawEvent("1", "progress", '{"done": 1,\n "total": 2}', None),
        RawEvent("1", "message", "no space after the colon", 2500),
        RawEvent("2", "done", "", None),
    ]


def test_stream_events_decode_json_and_take_the_type_from_the_data_when_no_event_line() -> None:
    seed_style = StreamEvent.from_raw(RawEvent(None, "message", '{"event_type": "status", "data": {}}', None))
    assert (seed_style.event, seed_style.data) == ("status", {"event_type": "status", "data": {}})
    assert StreamEvent.from_raw(RawEvent("3", "note", "plain text", None)).data == {"text": "plain text"}
    assert StreamEvent.from_raw(RawEvent("4", "n", "[1, 2]", None)).data == {"value": [1, 2]}


class DroppingStream:
    """Sends events 1-2 then breaks the connection mid-stream; a reconnect gets the rest from
    Last-Event-ID, like a server whose process restarted."""

    def __init__(self) -> None:
        self.last_event_ids: list[str | None] = []
        self.app = Starlette(routes=[Route("/v1/experiments/exp-1/stream", self.stream)])

    async def stream(self, request: Request) -> Response:
        after = request.headers.get("last-event-id")
        self.last_event_ids.append(after)
        start = int(after or 0) + 1

        async def body() -> AsyncIterator[str]:
            for number in range(start, 5):
                kind = "done" if number == 4 else "progress"
                yield f'id: {number}\nevent: {kind}\ndata: {{"n": {number}}}\n\n'
                await asyncio.sleep(0.01)
                if number == 2 and after is None:
                    raise RuntimeError("connection lost")  # uvicorn aborts the chunked response

        return StreamingResponse(body(), media_type="text/event-stream")


def test_a_dropped_stream_resumes_from_the_last_event_id_without_gaps_or_repeats() -> None:
    server = DroppingStream()
    with serve_app(server.app) as url, Keystone(api_key="k", base_url=url) as ks:
        events = list(ks.experiments.stream("exp-1"))
    assert [(e.id, e.event, e.data["n"]) for e in events] == [
        ("1", "progress", 1),
        ("2", "progress", 2),
        ("3", "progress", 3),
        ("4", "done", 4),
    ]
    assert server.last_event_ids == [None, "2"]


def test_a_stream_can_start_after_a_given_event_id() -> None:
    server = DroppingStream()
    with serve_app(server.app) as url, Keystone(api_key="k", base_url=url) as ks:
        events = list(ks.experiments.stream("exp-1", last_event_id="3"))
    assert [e.id for e in events] == ["4"]
    assert server.last_event_ids == ["3"]
