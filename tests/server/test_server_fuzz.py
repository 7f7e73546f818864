"""Fuzzed bodies on every POST route, with and without a key: JSON values deep, wide, huge, with odd
Unicode and NUL characters, valid bodies with one field replaced, and bytes that are not JSON. None may get
a 5xx, a traceback or anything but the error body, or take long. (schemathesis covers what the OpenAPI
document describes, in test_server_openapi.py; this covers what it does not.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polarity_keystone.server import ServerSettings, close_app, create_api_key, create_app
from tests.asgi_sync import SyncASGITransport
from tests.server.server_api import spec_yaml, unreachable_engine

MISSING = "fuzz-missing"
"""Every id the bodies and paths name: nothing with it exists, so no valid body starts real work."""
TEMPLATES: dict[str, dict[str, Any]] = {
    "/v1/specs": {"yaml": spec_yaml("fuzzed"), "name": "fuzzed"},
    "/v1/traces": {"events": [{"event_type": "tool_call", "tool": "t", "phase": "end"}], "trace_id": "tr_1"},
    "/otel/v1/traces": {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "name": "s"}]}]}
        ]
    },
    "/v1/experiments": {"name": "n", "spec_id": MISSING, "replicas": 1, "seed": 1, "metadata": {}},
    "/v1/experiments/{experiment_id}/run": {},
    "/v1/experiments/{experiment_id}/extend": {"replicas": {MISSING: 2}, "secrets": {}},
    "/v1/experiments/compare": {"baseline_id": MISSING, "candidate_id": MISSING},
    "/v1/blobs/missing": {"digests": ["0" * 64]},
    "/v1/agents": {"metadata": '{"name": "a", "entrypoint": ["true"]}', "bundle": "not a tarball"},
    "/v1/runs": {"spec_id": MISSING, "seed": "1", "inputs": {}, "secrets": {}, "metadata": {}},
    "/v1/runs/{run_id}/replay": {"secrets": {"K": "v"}},
    "/v1/replicas": {"spec_id": MISSING, "n_replicas": 2, "concurrency": 1},
    "/v1/sandboxes": {"spec_id": MISSING, "timeout": "1m", "secrets": {}},
    "/v1/sandboxes/{sandbox_id}/commands": {"command": "true", "timeout": "5s", "background": False},
    "/v1/sandboxes/{sandbox_id}/files": {"path": "a.txt", "content": "x", "encoding": "utf-8"},
    "/v1/sandboxes/{sandbox_id}/trace": {"events": [{"type": "tool_call", "tool": "t"}]},
    "/v1/sandboxes/{sandbox_id}/timeout": {"timeout": "1m"},
    "/v1/sandboxes/{sandbox_id}/checks": {"invariants": {"out": {"type": "file_exists", "path": "a.txt"}}},
    "/v1/webhooks": {"url": "http://93.184.215.14/hook", "events": ["run.completed"], "secret": "s" * 16},
    "/v1/alerts": {
        "name": "n",
        "condition": "pass_rate < 0.8",
        "window": "last_5_runs",
        "notify": "webhook",
        "webhook_url": "http://93.184.215.14/hook",
    },
    "/v1/score-rules": {"name": "n", "type": "regex", "config": {"pattern": "done|finished"}},
    "/v1/experiments/{experiment_id}/score": {"rule_ids": [MISSING]},
    "/v1/datasets": {"name": "fuzzed", "description": "d"},
    "/v1/datasets/{dataset_id}/records": {
        "records": [{"input": {"id": "a"}, "expected": {"ok": True}, "tags": ["t"], "metadata": {}}]
    },
    "/v1/prompts": {
        "slug": "fuzzed",
        "template": "Hi {name} {#items}{_it}{/items}",
        "tag": "t",
        "metadata": {},
    },
    "/v1/prompts/{prompt_id}/render": {"variables": {"name": "n", "items": [1, {"k": "v"}]}},
    "/v1/evals": {"name": "fuzzed", "total_cases": 2, "scorers": ["exact"], "metadata": {"branch": "b"}},
    "/v1/evals/{experiment_id}/cases": {
        "cases": [
            {
                "index": 0,
                "input": {"q": "a"},
                "expected": "b",
                "output": "b",
                "wall_ms": 1.5,
                "scores": [{"name": "exact", "score": 1.0, "passed": True, "message": "m"}],
            }
        ]
    },
    "/v1/evals/{experiment_id}/complete": {},
    "/v1/projects": {"name": "fuzzed-project"},
    "/v1/keys": {"name": "k", "project_id": "default", "admin": False},
}
"""A valid body for each POST route; the fuzz replaces one field of it, or all of it."""
SECONDS_PER_REQUEST = 10


def nested(depth: int, kind: str) -> str:
    """JSON text `depth` levels deep (built as text: json.dumps itself cannot go that deep)."""
    opening, closing = ("[", "]") if kind == "list" else ('{"k": ', "}")
    return opening * depth + '"leaf"' + closing * depth


text = st.text(st.characters(exclude_categories=()), max_size=40)
"""Any code point: NUL, control characters, lone surrogates, right-to-left marks, emoji."""
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(text, children, max_size=6),
    max_leaves=40,
).map(json.dumps)
deep = st.builds(nested, st.integers(0, 5000), st.sampled_from(["list", "dict"]))
wide = st.builds(
    lambda n, item: "[" + ", ".join([json.dumps(item)] * n) + "]", st.integers(0, 300_000), scalars
) | st.builds(
    lambda n, item: "{" + ", ".join(f'"k{i}": {json.dumps(item)}' for i in range(n)) + "}",
    st.integers(0, 300_000),
    scalars,
)
huge = st.builds(
    lambda n, char: json.dumps(char * n, ensure_ascii=False),
    st.integers(0, 4 * 1024**2),
    st.sampled_from("x\x00é😀\u202e"),
)
"""Strings around the body limit (8 MiB): up to 4 Mi characters of up to 6 bytes each."""
values = json_values | deep | wide | huge
"""JSON text."""


class Body(bytes):
    """A request body whose repr stays short, so a failing example of 10 MB can be reported."""

    def __repr__(self) -> str:
        return f"Body({len(self)} bytes: {bytes(self[:200])!r}...)"


@st.composite
def bodies(draw: st.DrawFn, template: dict[str, Any]) -> bytes:
    """JSON: the template with one field replaced or added, or any value; or bytes that may not be JSON."""
    shape = draw(st.sampled_from(["field", "value", "bytes"]))
    if shape == "bytes":
        return Body(draw(st.binary(max_size=200)))
    value = draw(values)
    if shape == "value":
        return Body(value.encode())
    field = draw(st.sampled_from([*template, "unknown"]))
    rest = json.dumps({key: item for key, item in template.items() if key != field})
    return Body(f"{rest[:-1]}{', ' if len(rest) > 2 else ''}{json.dumps(field)}: {value}}}".encode())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """An API-only server (no sandbox engine, no rate limit in the way): a client with a key, one without."""
    store = tmp_path_factory.mktemp("fuzz") / "keystone.db"
    settings_ = ServerSettings(
        store_url=f"sqlite://{store}", backend_factory=unreachable_engine, read_rate=1e9, write_rate=1e9
    )
    app = create_app(settings_)
    key, _ = create_api_key(app.state.keystone.store, "fuzz", admin=True)
    with start_blocking_portal() as portal:
        transport = SyncASGITransport(app, portal)
        options: dict[str, Any] = {"base_url": "http://keystone.test", "transport": transport, "timeout": 60}
        with (
            httpx.Client(headers={"Authorization": f"Bearer {key}"}, **options) as keyed,
            httpx.Client(**options) as anonymous,
        ):
            yield keyed, anonymous
    close_app(app)


def test_every_post_route_is_fuzzed(served: tuple[httpx.Client, httpx.Client]) -> None:
    keyed, _ = served
    paths = keyed.get("/openapi.json").json()["paths"]

    assert {path for path, operations in paths.items() if "post" in operations} == set(TEMPLATES)


@pytest.mark.parametrize("route", list(TEMPLATES))
def test_fuzzed_bodies_never_get_a_5xx_or_a_traceback(
    served: tuple[httpx.Client, httpx.Client], route: str
) -> None:
    keyed, anonymous = served
    path = route.format(
        experiment_id=MISSING, run_id=MISSING, sandbox_id=MISSING, dataset_id=MISSING, prompt_id=MISSING
    )

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies(TEMPLATES[route]), with_key=st.booleans())
    def post(body: bytes, with_key: bool) -> None:
        client = keyed if with_key else anonymous
        started = time.monotonic()
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        elapsed = time.monotonic() - started

        assert response.status_code < 500, response.text[:500]
        assert "Traceback" not in response.text
        assert elapsed < SECONDS_PER_REQUEST
        if not with_key:
            assert response.status_code == 401
        if response.status_code >= 400:
            error = response.json()
            assert {"error", "message", "request_id"} <= set(error)
            assert len(response.content) < 64 * 1024, "an error body echoes the input"

    post()
