"""What an agent inside a sandbox does with the SDK, against a real server on a socket: build the client
from the injected environment (`Keystone.from_sandbox`) and report tool calls with `traced`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from polarity_keystone import Keystone, KeystoneError, PermissionDeniedError, traced
from polarity_keystone.sdk import _tracing
from polarity_keystone.server import create_sandbox_token
from polarity_keystone.store import SandboxRecord
from tests.sdk.sdk_servers import KeystoneServer

SANDBOX = "sb-agent"


@pytest.fixture
def in_sandbox(socket_server: KeystoneServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeystoneServer]:
    """The environment Keystone injects into an agent: sandbox id, server URL and a `ks_sb_` token."""
    for sandbox_id in (SANDBOX, "sb-neighbour"):
        socket_server.store.put_sandbox(
            SandboxRecord(
                id=sandbox_id,
                spec_id="sdk-spec",
                state="ready",
                owner="test",
                created_at=datetime.now(UTC),
                expires_at=None,
                info={"services": {"db": {"host": "db", "port": 5432, "ready": True}}},
            )
        )
    token, _ = create_sandbox_token(socket_server.store, SANDBOX, "default")
    monkeypatch.setenv("KEYSTONE_SANDBOX_ID", SANDBOX)
    monkeypatch.setenv("KEYSTONE_API_KEY", token)
    monkeypatch.setenv("KEYSTONE_BASE_URL", socket_server.base_url)
    _tracing.reset_tracing()  # as in a fresh agent process
    yield socket_server
    _tracing.reset_tracing()


def _reported(server: KeystoneServer) -> list[dict[str, object]]:
    return [event.model_dump() for event in server.client().sandboxes.get_trace(SANDBOX).events]


def test_from_sandbox_returns_the_client_and_its_sandbox_with_services(in_sandbox: KeystoneServer) -> None:
    ks, sandbox = Keystone.from_sandbox()
    with ks:
        assert ks.base_url == in_sandbox.base_url
        assert (sandbox.id, sandbox.services["db"].host, sandbox.services["db"].port) == (SANDBOX, "db", 5432)
        with pytest.raises(PermissionDeniedError):  # the token reaches its own sandbox only
            ks.sandboxes.get("sb-neighbour")


def test_from_sandbox_accepts_the_newer_variable_name(
    in_sandbox: KeystoneServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEYSTONE_SANDBOX_ID")
    monkeypatch.setenv("POLARITY_SANDBOX_ID", SANDBOX)
    ks, sandbox = Keystone.from_sandbox()
    ks.close()
    assert sandbox.id == SANDBOX


def test_from_sandbox_outside_a_sandbox_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYSTONE_SANDBOX_ID", raising=False)
    monkeypatch.delenv("POLARITY_SANDBOX_ID", raising=False)
    with pytest.raises(KeystoneError, match="KEYSTONE_SANDBOX_ID"):
        Keystone.from_sandbox()


def test_traced_reports_start_and_end_events_for_each_form(in_sandbox: KeystoneServer) -> None:
    @traced
    def lookup(order_id: int, *, verbose: bool = False) -> dict[str, int]:
        return {"order": order_id}

    @traced(name="fetch")
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return f"body of {url}"

    assert lookup(7, verbose=True) == {"order": 7}
    assert asyncio.run(fetch("https://example.test")) == "body of https://example.test"
    with traced(name="step") as span:
        span.set_output("step output")
    assert traced("direct", lambda: 41 + 1) == 42

    events = _reported(in_sandbox)
    assert [(e["tool"], e["phase"]) for e in events] == [
        (name, phase)
        for name in (lookup.__qualname__, "fetch", "step", "direct")
        for phase in ("start", "end")
    ]
    assert all(e["event_type"] == "tool_call" for e in events)
    start, end = events[0], events[1]
    assert start["input"] == "7, verbose=True"
    assert (end["output"], end["status"]) == ("{'order': 7}", "ok")
    assert start["span_id"] == end["span_id"] and end["duration_ms"] >= 0
    assert events[3]["output"] == "body of https://example.test"  # strings as they are, others as repr
    assert events[5]["output"] == "step output"
    assert events[7]["output"] == "42"


def test_nested_spans_link_to_their_parent_and_errors_propagate_and_are_recorded(
    in_sandbox: KeystoneServer,
) -> None:
    @traced(name="inner")
    def inner() -> None:
        raise ValueError("no such order")

    with pytest.raises(ValueError, match="no such order"), traced(name="outer"):
        inner()

    events = {(e["tool"], e["phase"]): e for e in _reported(in_sandbox)}
    outer, failed = events["outer", "end"], events["inner", "end"]
    assert failed["parent_span_id"] == outer["span_id"]
    assert failed["root_span_id"] == outer["span_id"] == outer["root_span_id"]
    assert outer["parent_span_id"] is None
    for event in (outer, failed):
        assert (event["status"], event["error_type"], event["output"]) == (
            "error",
            "ValueError",
            "no such order",
        )
    metrics = in_sandbox.client().sandboxes.get_trace(SANDBOX).metrics
    assert (metrics["total_tool_calls"], metrics["tool_success_rate"]) == (2, 0.0)


def test_traced_is_a_no_op_without_a_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYSTONE_SANDBOX_ID", raising=False)
    monkeypatch.delenv("POLARITY_SANDBOX_ID", raising=False)
    _tracing.reset_tracing()

    @traced
    def work() -> str:
        return "done"

    assert work() == "done"
    assert _tracing.active_tracer() is None


def test_a_report_that_fails_never_breaks_the_traced_code(
    in_sandbox: KeystoneServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KEYSTONE_API_KEY", "ks_sb_revoked-or-wrong")
    with caplog.at_level(logging.WARNING, logger="polarity_keystone.sdk"):
        assert traced("still-runs", lambda: "result") == "result"
    assert "could not report 2 trace event(s)" in caplog.text
    assert _reported(in_sandbox) == []


def test_init_tracing_sends_spans_through_a_given_client(in_sandbox: KeystoneServer) -> None:
    ks = in_sandbox.client()
    assert ks.init_tracing("sb-neighbour")
    traced("via-client", lambda: None)
    assert [e.tool for e in ks.sandboxes.get_trace("sb-neighbour").events] == ["via-client", "via-client"]
    assert _reported(in_sandbox) == []
