"""The SDK against the real Keystone app (in-process, over SQLite and Postgres): specs, experiments
(without running them), compare/metrics, the trace endpoints and the typed models they return."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polarity_keystone import BadRequestError, ConflictError, Keystone, NotFoundError
from polarity_keystone.sdk import Experiment, ExperimentResults, Spec, TraceEvent
from polarity_keystone.store import SandboxRecord
from tests.sdk.sdk_servers import KeystoneServer, spec_yaml


def test_health(server: KeystoneServer) -> None:
    assert server.client().health()["status"] == "ok"


def test_specs_upload_version_get_list_delete(server: KeystoneServer) -> None:
    ks = server.client()
    first = ks.specs.create(spec_yaml("alpha", description="first"))
    assert isinstance(first, Spec)
    assert (first.id, first.version, first.description) == ("alpha", 1, "first")
    assert ks.specs.create(spec_yaml("alpha", description="first")).version == 1  # same content
    assert ks.specs.create(spec_yaml("alpha", description="second")).version == 2
    ks.specs.create(spec_yaml("beta"))

    assert ks.specs.get("alpha").description == "second"
    assert ks.specs.get("alpha", version=1).description == "first"
    assert [(s.id, s.version) for s in ks.specs.list()] == [("alpha", 2), ("beta", 1)]
    assert [s.id for s in ks.specs.list(limit=1)] == ["alpha"]

    ks.specs.delete("alpha")
    with pytest.raises(NotFoundError) as caught:
        ks.specs.get("alpha")
    assert caught.value.error == "not_found"
    assert [s.id for s in ks.specs.list()] == ["beta"]


def test_listing_follows_cursors_across_pages(server: KeystoneServer) -> None:
    ks = server.client()
    for index in range(5):
        ks.specs.create(spec_yaml(f"paged-{index}"))
    first_page = ks._http.request("GET", "/v1/specs", params={"limit": 2})
    assert len(first_page.json()) == 2 and first_page.headers["X-Next-Cursor"]

    # Pages of two: the SDK follows X-Next-Cursor to the end, or stops at `limit` items.
    every = ks._http.list_items("/v1/specs", params={"limit": 2})
    assert [item["id"] for item in every] == [f"paged-{i}" for i in range(5)]
    some = ks._http.list_items("/v1/specs", params={"limit": 2}, limit=3)
    assert [item["id"] for item in some] == ["paged-0", "paged-1", "paged-2"]
    assert [s.id for s in ks.specs.list()] == [f"paged-{i}" for i in range(5)]
    assert [s.id for s in ks.specs.list(limit=1)] == ["paged-0"]
    lazily = ks.specs.iter_all()
    assert next(lazily).id == "paged-0"
    assert [s.id for s in lazily] == [f"paged-{i}" for i in range(1, 5)]


def test_sandbox_listing_pages_hold_still_while_sandboxes_come_and_go(server: KeystoneServer) -> None:
    for index in range(5):
        _sandbox_record(server, f"sb-{index}")
    ks = server.client()

    first = ks._http.request("GET", "/v1/sandboxes", params={"limit": 2})
    server.store.put_sandbox(dataclasses.replace(server.store.get_sandbox("sb-1"), state="destroyed"))
    _sandbox_record(server, "sb-5")
    rest = ks._http.list_items("/v1/sandboxes", params={"limit": 2, "cursor": first.headers["X-Next-Cursor"]})

    assert [s["id"] for s in first.json()] == ["sb-0", "sb-1"]
    assert [s["id"] for s in rest] == ["sb-2", "sb-3", "sb-4", "sb-5"]
    assert [s.id for s in ks.sandboxes.list(limit=3)] == ["sb-0", "sb-2", "sb-3"]
    with pytest.raises(BadRequestError) as caught:
        ks._http.request("GET", "/v1/sandboxes", params={"cursor": "not-a-cursor"})
    assert caught.value.error == "invalid_cursor"
    assert [s.id for s in ks.experiments.iter_all(spec_id="none")] == []


def test_experiments_create_get_list_with_metadata_filter(server: KeystoneServer) -> None:
    ks = server.client()
    ks.specs.create(spec_yaml("exp-spec", replicas=3))
    main = ks.experiments.create(
        "baseline", "exp-spec", metadata={"branch": "main", "commit": "abc"}, seed=42, concurrency=2
    )
    other = ks.experiments.create("candidate", "exp-spec", metadata={"branch": "feature"}, replicas=2)

    assert isinstance(main, Experiment)
    assert (main.name, main.spec_id, main.status, main.metadata["branch"]) == (
        "baseline",
        "exp-spec",
        "created",
        "main",
    )
    results = ks.experiments.get(main.id)
    assert isinstance(results, ExperimentResults)
    assert (results.experiment_id, results.spec_id, results.status, results.seed) == (
        main.id,
        "exp-spec",
        "created",
        42,
    )
    assert results.total_scenarios == 1 and results.scenarios == []
    assert results.progress["total"] == 3
    assert not results.finished

    assert [e.id for e in ks.experiments.list()] == [other.id, main.id]  # newest first
    assert [e.id for e in ks.experiments.list(metadata={"branch": "main"})] == [main.id]
    assert [e.id for e in ks.experiments.list(metadata={"branch": "main", "commit": "zzz"})] == []
    assert [e.id for e in ks.experiments.list(spec_id="nope")] == []
    assert [e.id for e in ks.experiments.list(status="created", limit=1)] == [other.id]


def test_compare_needs_finished_experiments_and_metrics_of_a_new_one_are_empty(
    server: KeystoneServer,
) -> None:
    ks = server.client()
    ks.specs.create(spec_yaml())
    first = ks.experiments.create("a", "sdk-spec")
    second = ks.experiments.create("b", "sdk-spec")

    with pytest.raises(ConflictError) as caught:
        ks.experiments.compare(first.id, second.id)
    assert "finished" in caught.value.message

    metrics = ks.experiments.metrics(first.id)
    assert metrics.experiment_id == first.id
    assert metrics.summary.total_runs == 0
    assert metrics.tool_breakdown == {}


def test_create_forwards_declared_secrets_from_spec_path_and_explicit_ones_win(
    server: KeystoneServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec_yaml())
    monkeypatch.setenv("SDK_TEST_TOKEN", "from-the-env")
    ks = server.client()
    ks.specs.create(spec_file.read_text())

    from_spec = ks.experiments.create("fwd", "sdk-spec", spec_path=spec_file)
    explicit = ks.experiments.create(
        "win", "sdk-spec", spec_path=spec_file, secrets={"SDK_TEST_TOKEN": "explicit", "EXTRA": "x"}
    )

    # The server keeps secret names only (values are never stored or returned).
    assert ks._http.json("GET", f"/v1/experiments/{from_spec.id}")  # readable
    stored = {e["id"]: e for e in ks._http.json("GET", "/v1/experiments")}
    assert stored[from_spec.id]["options"]["secret_names"] == ["SDK_TEST_TOKEN"]
    assert stored[explicit.id]["options"]["secret_names"] == ["EXTRA", "SDK_TEST_TOKEN"]
    assert "from-the-env" not in str(stored) and "explicit" not in str(stored)


def _sandbox_record(server: KeystoneServer, sandbox_id: str) -> None:
    """A sandbox as the store knows it, without booting containers (the trace endpoints need no more)."""
    server.store.put_sandbox(
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


def test_sandbox_get_list_and_trace_round_trip(server: KeystoneServer) -> None:
    _sandbox_record(server, "sb-trace")
    ks = server.client()

    sandbox = ks.sandboxes.get("sb-trace")
    assert (sandbox.id, sandbox.state, sandbox.services["db"].port) == ("sb-trace", "ready", 5432)
    assert "sb-trace" in [s.id for s in ks.sandboxes.list()]

    accepted = ks.sandboxes.ingest_trace(
        "sb-trace",
        [
            TraceEvent(tool="search", phase="end", duration_ms=12.0),
            {
                "event_type": "tool_call",
                "tool": "search",
                "phase": "end",
                "status": "error",
                "duration_ms": 4,
            },
            {"event_type": "llm_call", "tool": "anthropic.create", "phase": "complete"},
        ],
    )
    assert accepted == 3
    trace = ks.sandboxes.get_trace("sb-trace")
    assert [e.tool for e in trace.events] == ["search", "search", "anthropic.create"]
    assert trace.metrics["total_tool_calls"] == 2
    assert trace.metrics["tool_breakdown"]["search"]["error_rate"] == 0.5

    with pytest.raises(NotFoundError):
        ks.sandboxes.ingest_trace("sb-missing", [TraceEvent(tool="x")])


def test_file_paths_outside_the_workspace_reach_the_server_as_written_and_are_refused(
    server: KeystoneServer,
) -> None:
    _sandbox_record(server, "sb-files")
    ks = server.client()
    for path in ("/etc/passwd", "../outside.txt", "notes/../../outside.txt", "/workspace/../etc/passwd"):
        with pytest.raises(BadRequestError) as caught:
            ks.sandboxes.read_file("sb-files", path)
        assert caught.value.error == "invalid_path", path


def test_an_unconfigured_client_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSTONE_BASE_URL", "http://env.example:9/")
    monkeypatch.setenv("KEYSTONE_API_KEY", "ks_live_from_env")
    with Keystone() as ks:
        assert ks.base_url == "http://env.example:9"
        assert "ks_live_from_env" not in repr(ks)
    monkeypatch.delenv("KEYSTONE_BASE_URL")
    with Keystone(base_url="http://explicit:1") as ks:
        assert ks.base_url == "http://explicit:1"
    with Keystone() as ks:
        assert ks.base_url == "https://keystone.polarity.so"  # the Keystone SDK's default
