"""The store contract, run against SQLite and a real Postgres (`store_url` is parametrised over both)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from polarity_keystone.store import (
    ApiKeyRecord,
    Conflict,
    ExperimentRecord,
    InvalidCursor,
    NotFound,
    ReplicaRecord,
    SandboxRecord,
    Store,
    open_store,
)
from tests.store.store_helpers import MovableClock

T = TypeVar("T")
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def race(threads: int, action: Callable[[int], T]) -> list[T]:
    """Run `action(i)` on `threads` threads released at the same instant; their results in order."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results


def experiment(experiment_id: str, minute: int = 0, **fields: Any) -> ExperimentRecord:
    values: dict[str, Any] = {
        "name": f"run {experiment_id}",
        "spec_id": "refunds",
        "spec_version": 1,
        "status": "created",
        "owner": "key-1",
        "created_at": T0 + timedelta(minutes=minute),
    }
    return ExperimentRecord(id=experiment_id, **{**values, **fields})


def sandbox(sandbox_id: str, **fields: Any) -> SandboxRecord:
    values: dict[str, Any] = {
        "spec_id": "refunds",
        "state": "ready",
        "owner": "key-1",
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=1),
    }
    return SandboxRecord(id=sandbox_id, **{**values, **fields})


# -- API keys


def test_api_keys_are_found_by_hash_listed_and_revoked(store: Store) -> None:
    live = ApiKeyRecord("k1", "ci", "ks_live_ab12", "hash-1", "live", None, T0)
    token = ApiKeyRecord("k2", "sandbox sb-1", "ks_sb_cd34", "hash-2", "sandbox", "sb-1", T0 + timedelta(1))
    store.add_api_key(live)
    store.add_api_key(token)

    assert store.api_key_by_hash("hash-2") == token
    assert store.api_key_by_hash("nope") is None
    assert store.list_api_keys() == [live, token]

    store.revoke_api_key("k1")
    revoked = store.api_key_by_hash("hash-1")
    assert revoked is not None and revoked.revoked
    with pytest.raises(NotFound):
        store.revoke_api_key("missing")


def test_an_api_key_id_or_hash_cannot_be_added_twice(store: Store) -> None:
    store.add_api_key(ApiKeyRecord("k1", "ci", "ks_live_ab12", "hash-1", "live", None, T0))
    with pytest.raises(Conflict):
        store.add_api_key(ApiKeyRecord("k1", "other", "ks_live_zz", "hash-9", "live", None, T0))
    with pytest.raises(Conflict):
        store.add_api_key(ApiKeyRecord("k9", "other", "ks_live_zz", "hash-1", "live", None, T0))
    assert len(store.list_api_keys()) == 1


# -- specs


def test_each_distinct_upload_is_a_new_version_and_the_latest_content_again_is_not(store: Store) -> None:
    first = store.put_spec("default", "refunds", "v: 1", "sha-1")
    second = store.put_spec("default", "refunds", "v: 2", "sha-2")
    again = store.put_spec("default", "refunds", "v: 2", "sha-2")
    back_to_first = store.put_spec("default", "refunds", "v: 1", "sha-1")

    assert (first.version, second.version, again.version, back_to_first.version) == (1, 2, 2, 3)
    assert again == second
    assert store.get_spec("default", "refunds") == back_to_first
    assert store.get_spec("default", "refunds", 1) == first
    assert store.get_spec("default", "refunds", 2).yaml == "v: 2"
    with pytest.raises(NotFound):
        store.get_spec("default", "refunds", 4)
    with pytest.raises(NotFound):
        store.get_spec("default", "unknown")


def test_deleting_a_spec_hides_every_version_and_a_new_upload_starts_above_them(store: Store) -> None:
    store.put_spec("default", "refunds", "v: 1", "sha-1")
    store.put_spec("default", "refunds", "v: 2", "sha-2")
    store.put_spec("default", "other", "v: 1", "sha-o")

    store.delete_spec("default", "refunds")

    for version in (None, 1, 2):
        with pytest.raises(NotFound):
            store.get_spec("default", "refunds", version)
    assert [spec.id for spec in store.list_specs("default", cursor=None, limit=10).items] == ["other"]
    with pytest.raises(NotFound):
        store.delete_spec("default", "refunds")

    revived = store.put_spec("default", "refunds", "v: 2", "sha-2")
    assert revived.version == 3
    assert store.get_spec("default", "refunds") == revived
    with pytest.raises(NotFound):
        store.get_spec("default", "refunds", 2)
    assert [spec.id for spec in store.list_specs("default", cursor=None, limit=10).items] == [
        "other",
        "refunds",
    ]


def test_concurrent_uploads_of_one_spec_get_distinct_versions(store: Store) -> None:
    specs = race(6, lambda index: store.put_spec("default", "refunds", f"v: {index}", f"sha-{index}"))

    assert sorted(spec.version for spec in specs) == [1, 2, 3, 4, 5, 6]
    assert store.get_spec("default", "refunds").version == 6


def test_concurrent_uploads_of_the_same_content_make_one_version(store: Store) -> None:
    specs = race(6, lambda _: store.put_spec("default", "refunds", "v: 1", "sha-1"))

    assert {spec.version for spec in specs} == {1}


def test_specs_list_the_latest_versions_by_id_in_pages_stable_under_inserts(store: Store) -> None:
    for spec_id in ("b", "d", "f", "h"):
        store.put_spec("default", spec_id, "v: 1", "sha-1")
    store.put_spec("default", "d", "v: 2", "sha-2")

    first = store.list_specs("default", cursor=None, limit=2)
    assert [(spec.id, spec.version) for spec in first.items] == [("b", 1), ("d", 2)]
    assert first.next_cursor is not None and "d" not in first.next_cursor

    store.put_spec("default", "a", "v: 1", "sha-1")  # before the cursor: not shown again, nothing shifts
    store.put_spec("default", "e", "v: 1", "sha-1")  # after it: shown in its place
    second = store.list_specs("default", cursor=first.next_cursor, limit=2)
    assert [spec.id for spec in second.items] == ["e", "f"]
    assert second.next_cursor is not None
    third = store.list_specs("default", cursor=second.next_cursor, limit=2)
    assert [spec.id for spec in third.items] == ["h"]
    assert third.next_cursor is None


def test_a_cursor_not_issued_for_the_listing_or_an_empty_page_is_refused(store: Store) -> None:
    store.add_experiment(experiment("e1"))
    store.add_experiment(experiment("e2"))
    experiments_cursor = store.list_experiments("default", cursor=None, limit=1).next_cursor
    assert experiments_cursor is not None

    for cursor in ("not a cursor", "", "eyJ4Ijox", experiments_cursor):
        with pytest.raises(InvalidCursor):
            store.list_specs("default", cursor=cursor, limit=5)
    with pytest.raises(ValueError, match="at least one"):
        store.list_specs("default", cursor=None, limit=0)


# -- experiments


def test_an_experiment_round_trips_with_its_json_fields_and_utc_times(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    record = experiment(
        "e1",
        metadata={"repo": "acme/agents", "ci_run": "42", "draft": False},
        options={"replicas": 3, "seed": 7, "matrix": {"model": ["a", "b"]}},
        progress={"total": 6, "done": 0},
        created_at=datetime(2025, 3, 1, 18, 30, 15, 123456, tzinfo=tokyo),
    )
    store.add_experiment(record)

    stored = store.get_experiment("e1")
    assert stored == record
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    with pytest.raises(NotFound):
        store.get_experiment("missing")
    with pytest.raises(Conflict):
        store.add_experiment(experiment("e1", name="again"))


def test_updating_an_experiment_sets_only_the_given_fields(store: Store) -> None:
    store.add_experiment(experiment("e1", options={"replicas": 1}))
    finished = T0 + timedelta(minutes=5)

    updated = store.update_experiment(
        "e1", status="completed", results={"scenarios": [{"id": "s", "passed": True}]}, finished_at=finished
    )

    assert updated == store.get_experiment("e1")
    assert (updated.status, updated.finished_at, updated.options) == ("completed", finished, {"replicas": 1})
    assert updated.results == {"scenarios": [{"id": "s", "passed": True}]}
    assert store.update_experiment("e1", results=None, error="boom").results is None
    with pytest.raises(NotFound):
        store.update_experiment("missing", status="failed")
    with pytest.raises(TypeError, match="owner"):
        store.update_experiment("e1", owner="someone-else")


def test_a_transition_happens_only_from_the_given_statuses(store: Store) -> None:
    store.add_experiment(experiment("e1"))
    started = T0 + timedelta(minutes=1)

    running = store.transition_experiment("e1", ("created", "queued"), "running", started_at=started)
    assert running is not None and (running.status, running.started_at) == ("running", started)
    assert store.transition_experiment("e1", ("created", "queued"), "running") is None
    assert store.transition_experiment("e1", (), "failed") is None
    assert store.get_experiment("e1").status == "running"
    with pytest.raises(NotFound):
        store.transition_experiment("missing", ("created",), "running")


def test_of_racing_transitions_exactly_one_wins(store: Store) -> None:
    store.add_experiment(experiment("e1"))

    outcomes = race(
        8, lambda index: store.transition_experiment("e1", ("created",), "queued", error=str(index))
    )

    winners = [outcome for outcome in outcomes if outcome is not None]
    assert len(winners) == 1
    assert store.get_experiment("e1") == winners[0]


def test_experiments_list_newest_first_in_pages_stable_under_inserts(store: Store) -> None:
    for index in range(5):
        store.add_experiment(experiment(f"e{index}", minute=index))
    store.add_experiment(experiment("e3b", minute=3))  # same time as e3: the id breaks the tie

    first = store.list_experiments("default", cursor=None, limit=3)
    assert [item.id for item in first.items] == ["e4", "e3b", "e3"]

    store.add_experiment(experiment("e9", minute=9))
    second = store.list_experiments("default", cursor=first.next_cursor, limit=3)
    assert [item.id for item in second.items] == ["e2", "e1", "e0"]
    assert second.next_cursor is None
    assert [item.id for item in store.list_experiments("default", cursor=None, limit=1).items] == ["e9"]


def test_experiments_filter_on_spec_status_and_every_given_metadata_pair(store: Store) -> None:
    gate = {"repo": "acme/agents", "branch": "main", "ci.run": "7", "note": 'it\'s "quoted"'}
    store.add_experiment(experiment("main", 0, metadata=gate))
    store.add_experiment(experiment("feature", 1, metadata={**gate, "branch": "feat/x"}, status="completed"))
    store.add_experiment(experiment("numeric", 2, metadata={"repo": "acme/agents", "ci.run": 7}))
    store.add_experiment(experiment("other-spec", 3, spec_id="search", metadata=gate))

    def ids(**filters: Any) -> list[str]:
        return [item.id for item in store.list_experiments("default", cursor=None, limit=10, **filters).items]

    assert ids(metadata={"repo": "acme/agents"}) == ["other-spec", "numeric", "feature", "main"]
    assert ids(metadata={"repo": "acme/agents", "branch": "main"}) == ["other-spec", "main"]
    assert ids(metadata={"ci.run": "7"}) == ["other-spec", "feature", "main"]
    assert ids(metadata={"note": 'it\'s "quoted"'}) == ["other-spec", "feature", "main"]
    assert ids(metadata={"branch": "main", "missing": "x"}) == []
    assert ids(spec_id="refunds", metadata={"branch": "main"}) == ["main"]
    assert ids(status="completed") == ["feature"]
    assert ids(spec_id="refunds", status="created") == ["numeric", "main"]

    page = store.list_experiments("default", cursor=None, limit=1, metadata={"repo": "acme/agents"})
    rest = store.list_experiments(
        "default", cursor=page.next_cursor, limit=10, metadata={"repo": "acme/agents"}
    )
    assert [item.id for item in page.items + rest.items] == ["other-spec", "numeric", "feature", "main"]


def test_adding_a_replica_again_keeps_the_first_result(store: Store) -> None:
    store.add_experiment(experiment("e1"))
    first = ReplicaRecord("e1", "refund", 0, {"passed": True, "seed": 1}, T0)
    store.add_replica(first)
    store.add_replica(ReplicaRecord("e1", "refund", 0, {"passed": False}, T0 + timedelta(1)))
    store.add_replica(ReplicaRecord("e1", "lookup", 1, {"passed": True}, T0))
    store.add_replica(ReplicaRecord("e1", "lookup", 0, {"passed": False}, T0))
    store.add_replica(ReplicaRecord("e2", "refund", 0, {"passed": True}, T0))

    replicas = store.replicas("e1")
    assert [(r.scenario_id, r.replica_index) for r in replicas] == [
        ("lookup", 0),
        ("lookup", 1),
        ("refund", 0),
    ]
    assert replicas[2] == first
    assert store.replicas("missing") == []


# -- sandboxes and trace events


def test_sandboxes_are_inserted_replaced_and_listed_by_owner(store: Store) -> None:
    store.put_sandbox(sandbox("sb-1", state="creating"))
    store.put_sandbox(sandbox("sb-2", owner="key-2", created_at=T0 + timedelta(1)))
    store.put_sandbox(sandbox("sb-3", state="destroyed", created_at=T0 + timedelta(2)))
    ready = sandbox("sb-1", state="ready", info={"services": [{"name": "db", "port": 5432}]}, expires_at=None)
    store.put_sandbox(ready)

    assert store.get_sandbox("sb-1") == ready
    assert [s.id for s in store.list_sandboxes(project_id=None)] == ["sb-1", "sb-2"]
    assert [s.id for s in store.list_sandboxes(project_id=None, owner="key-1")] == ["sb-1"]
    assert [s.id for s in store.list_sandboxes(project_id=None, owner="key-1", include_destroyed=True)] == [
        "sb-1",
        "sb-3",
    ]
    with pytest.raises(NotFound):
        store.get_sandbox("missing")


def test_trace_events_are_kept_per_sandbox_in_order(store: Store) -> None:
    assert store.add_trace_events("sb-1", "key-1", [{"type": "llm", "n": 1}, {"type": "tool", "n": 2}]) == 2
    assert store.add_trace_events(None, "key-1", [{"type": "llm", "n": 9}]) == 1
    assert store.add_trace_events("sb-1", "key-1", [{"type": "llm", "n": 3}]) == 1
    assert store.add_trace_events("sb-1", "key-1", []) == 0

    assert [event["n"] for event in store.trace_events("sb-1")] == [1, 2, 3]
    assert store.trace_events("sb-2") == []


# -- events


def test_event_ids_increase_across_streams_and_each_stream_resumes_after_an_id(store: Store) -> None:
    appended = [
        store.append_event(f"experiment:e{index % 2}", "progress", {"n": index}) for index in range(6)
    ]
    ids = [event.id for event in appended]
    assert ids == sorted(set(ids))

    stream = store.events_after("experiment:e0", 0)
    assert stream == appended[0::2]
    assert all(event.created_at.utcoffset() == timedelta(0) for event in stream)
    assert store.events_after("experiment:e0", appended[2].id) == [appended[4]]
    assert store.events_after("experiment:e1", 0, limit=2) == appended[1:4:2]
    assert store.events_after("experiment:e1", appended[5].id) == []


def test_a_reader_following_a_stream_misses_no_event_appended_concurrently(store: Store) -> None:
    writers, per_writer = 4, 40
    seen: list[int] = []
    done = threading.Event()

    def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()
            for event in store.events_after("experiment:e1", after):
                seen.append(event.id)
                after = event.id
            if finished:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    appended = race(
        writers,
        lambda w: [
            store.append_event("experiment:e1", "tick", {"w": w, "i": i}).id for i in range(per_writer)
        ],
    )
    done.set()
    reader.join()

    assert seen == sorted(id for ids in appended for id in ids)


# -- idempotency


def test_an_idempotency_key_is_claimed_once_then_answered_from_its_record(store: Store) -> None:
    assert store.begin_idempotent("key-1", "idem-1", "POST", "/v1/experiments", "body-a") is None

    pending = store.begin_idempotent("key-1", "idem-1", "POST", "/v1/experiments", "body-b")
    assert pending is not None and (pending.state, pending.body_hash) == ("pending", "body-a")
    assert store.begin_idempotent("key-2", "idem-1", "POST", "/v1/experiments", "body-a") is None

    store.finish_idempotent("key-1", "idem-1", 201, b'{"id": "e1"}\x00\xff', "application/json")
    done = store.begin_idempotent("key-1", "idem-1", "POST", "/v1/experiments", "body-a")
    assert done is not None
    assert (done.state, done.status_code, done.response_body) == ("done", 201, b'{"id": "e1"}\x00\xff')
    assert (done.content_type, done.method, done.path) == ("application/json", "POST", "/v1/experiments")

    store.abandon_idempotent("key-1", "idem-1")  # only pending claims can be abandoned
    assert store.begin_idempotent("key-1", "idem-1", "POST", "/v1/experiments", "body-a") == done


def test_an_abandoned_claim_can_be_claimed_again(store: Store) -> None:
    assert store.begin_idempotent("key-1", "idem-1", "POST", "/v1/sandboxes", "body") is None
    store.abandon_idempotent("key-1", "idem-1")
    store.finish_idempotent("key-1", "idem-1", 201, b"{}", "application/json")  # gone: nothing to finish

    assert store.begin_idempotent("key-1", "idem-1", "POST", "/v1/sandboxes", "body") is None


def test_of_racing_claims_of_one_key_exactly_one_gets_it(store: Store) -> None:
    claims = race(8, lambda _: store.begin_idempotent("key-1", "idem-1", "POST", "/v1/experiments", "body"))

    assert sum(claim is None for claim in claims) == 1


def test_idempotency_records_expire_after_24_hours(store: Store, clock: MovableClock) -> None:
    assert store.begin_idempotent("key-1", "old", "POST", "/v1/experiments", "body") is None
    store.finish_idempotent("key-1", "old", 201, b"{}", "application/json")
    clock.advance(timedelta(hours=23, minutes=59))
    assert store.begin_idempotent("key-1", "young", "POST", "/v1/experiments", "body") is None
    assert store.begin_idempotent("key-1", "old", "POST", "/v1/experiments", "body") is not None

    clock.advance(timedelta(minutes=2))

    assert store.begin_idempotent("key-1", "old", "POST", "/v1/experiments", "other-body") is None
    young = store.begin_idempotent("key-1", "young", "POST", "/v1/experiments", "body")
    assert young is not None and young.created_at == clock.moment - timedelta(minutes=2)


# -- persistence


def test_everything_survives_closing_and_reopening(store_url: str, store: Store) -> None:
    store.put_spec("default", "refunds", "v: 1", "sha-1")
    store.add_experiment(experiment("e1", status="running"))
    store.add_replica(ReplicaRecord("e1", "refund", 0, {"passed": True}, T0))
    event = store.append_event("experiment:e1", "progress", {"done": 1})
    store.close()

    reopened = open_store(store_url)
    try:
        assert reopened.get_spec("default", "refunds").version == 1
        assert reopened.get_experiment("e1").status == "running"
        assert len(reopened.replicas("e1")) == 1
        assert reopened.events_after("experiment:e1", 0) == [event]
        assert reopened.append_event("experiment:e1", "progress", {"done": 2}).id > event.id
    finally:
        reopened.close()
