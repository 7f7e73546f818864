"""The fast read path of `GET /v1/experiments/{id}`: a finished experiment's results are encoded once and
answered from memory while it stays finished, never to another project; its head is read once a second,
and a write through the server's store is answered at the next request; a key is looked up once a second,
and a revocation still refuses the next request."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from polarity_keystone.server import create_api_key, create_sandbox_token
from polarity_keystone.server._known_keys import KnownKeys
from polarity_keystone.server._results_cache import EncodedResults, json_object
from polarity_keystone.store import ProjectRecord, open_store
from tests.gate.gate_results import run
from tests.server.server_api import Api
from tests.server.stored_results import store_finished

EXPERIMENT_FIELDS = {
    "id",
    "name",
    "spec_id",
    "spec_version",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "metadata",
    "progress",
    "error",
}
"""What the experiment adds to its results in the document (its `spec_id` replaces theirs)."""


def _get(api: Api, experiment_id: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/experiments/{experiment_id}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = json.loads(response.content)
    return body


def test_a_finished_experiment_answers_its_stored_results_and_its_own_fields_each_time(api: Api) -> None:
    results = run({"s1": "PPF", "s2": "PP"}, experiment_id="exp-done")
    store_finished(api.context.store, results)
    stored = results.model_dump(mode="json")

    first, again = _get(api, "exp-done"), _get(api, "exp-done")

    assert first == again
    assert len(api.context.encoded_results) == 1
    results_part = {key: value for key, value in first.items() if key not in EXPERIMENT_FIELDS}
    assert results_part == {key: value for key, value in stored.items() if key != "spec_id"}
    record = api.context.store.get_experiment("exp-done")
    assert (first["id"], first["status"], first["spec_version"]) == ("exp-done", "completed", 1)
    assert datetime.fromisoformat(first["finished_at"]) == record.finished_at


def test_results_that_change_with_a_new_finish_are_answered_not_the_cached_ones(api: Api) -> None:
    store = api.context.store
    store_finished(store, run({"s1": "PP"}, experiment_id="exp-grown"))
    assert _get(api, "exp-grown")["scenarios"][0]["replicas_total"] == 2

    store.update_experiment("exp-grown", status="running", results=None)
    assert _get(api, "exp-grown")["status"] == "running"
    grown = run({"s1": "PPFF"}, experiment_id="exp-grown").model_dump(mode="json")
    later = datetime.now(UTC) + timedelta(seconds=1)
    store.update_experiment("exp-grown", status="completed", results=grown, finished_at=later)

    body = _get(api, "exp-grown")
    assert (body["status"], body["scenarios"][0]["replicas_total"]) == ("completed", 4)


def test_a_finished_experiment_read_a_moment_ago_is_answered_without_reading_the_store(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_finished(api.context.store, run({"s1": "PF"}, experiment_id="exp-again"))
    first = _get(api, "exp-again")

    def unread(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the store was read")

    monkeypatch.setattr(api.context.store, "get_experiment_head", unread)
    monkeypatch.setattr(api.context.store, "get_experiment", unread)
    assert _get(api, "exp-again") == first


def test_the_answer_from_memory_is_the_routes_answer_byte_for_byte(api: Api) -> None:
    store_finished(api.context.store, run({"s1": "PPF"}, experiment_id="exp-bytes"))
    from_route = api.client.get("/v1/experiments/exp-bytes")
    from_memory = api.client.get("/v1/experiments/exp-bytes", headers={"X-Request-ID": "req-mine"})

    assert from_memory.content == from_route.content
    for name in ("content-type", "content-length"):
        assert from_memory.headers[name] == from_route.headers[name]
    assert from_memory.headers["x-request-id"] == "req-mine"


def test_what_the_route_refuses_is_still_refused_for_an_experiment_in_memory(api: Api) -> None:
    store_finished(api.context.store, run({"s1": "P"}, experiment_id="exp-guarded"))
    _get(api, "exp-guarded")
    token, _ = create_sandbox_token(api.context.store, "sb-any", "default")

    as_sandbox = api.as_key(token).get("/v1/experiments/exp-guarded")
    unstorable = api.client.get("/v1/experiments/exp-guarded", params={"q": "a\x00b"})
    unauthenticated = api.as_key("ks_live_wrong").get("/v1/experiments/exp-guarded")

    assert (as_sandbox.status_code, as_sandbox.json()["error"]) == (403, "forbidden")
    assert (unstorable.status_code, unstorable.json()["error"]) == (400, "invalid_request")
    assert (unauthenticated.status_code, unauthenticated.json()["error"]) == (401, "unauthorized")


def test_a_transition_through_the_servers_store_is_answered_at_the_next_request(api: Api) -> None:
    store = api.context.store
    store_finished(store, run({"s1": "PP"}, experiment_id="exp-extended"))
    assert _get(api, "exp-extended")["status"] == "completed"

    assert store.transition_experiment("exp-extended", ("completed",), "queued") is not None

    assert _get(api, "exp-extended")["status"] == "queued"


def test_a_remembered_head_answers_its_project_only_and_only_while_fresh_and_unwritten() -> None:
    now = [0.0]
    cache = EncodedResults(head_ttl_s=1.0, clock=lambda: now[0])
    key = ("proj_a", "exp-1", "completed", None)
    cache.put(key, b'"passed":true')
    cache.remember_head(key, b'"id":"exp-1"', writes=3)
    document = json_object(b'"passed":true', b'"id":"exp-1"')

    assert json.loads(document) == {"passed": True, "id": "exp-1"}
    assert cache.recent_document("proj_a", "exp-1", writes=3) == document
    assert cache.recent_document("proj_b", "exp-1", writes=3) is None
    assert cache.recent_document("proj_a", "exp-1", writes=4) is None  # written since: read again
    cache.remember_head(key, b'"id":"exp-1"', writes=4)
    now[0] = 0.9
    assert cache.recent_document("proj_a", "exp-1", writes=4) == document
    now[0] = 1.9  # another process's write is seen once the head is a second old
    assert cache.recent_document("proj_a", "exp-1", writes=4) is None


def test_experiment_writes_count_the_writes_through_the_store_object_itself(store_url: str) -> None:
    server_store, other_process = open_store(store_url), open_store(store_url)
    try:
        store_finished(server_store, run({"s1": "P"}, experiment_id="exp-counted"))
        before = server_store.experiment_writes("exp-counted")

        other_process.update_experiment("exp-counted", progress={"done": 1})
        assert server_store.experiment_writes("exp-counted") == before  # seen once a head is a second old
        server_store.update_experiment("exp-counted", progress={"done": 2})
        updated = server_store.experiment_writes("exp-counted")
        server_store.transition_experiment("exp-counted", ("completed",), "queued")

        assert before != updated != server_store.experiment_writes("exp-counted")
    finally:
        server_store.close()
        other_process.close()


def test_another_projects_key_gets_404_for_a_cached_experiment(api: Api) -> None:
    store = api.context.store
    store_finished(store, run({"s1": "P"}, experiment_id="exp-mine"))
    _get(api, "exp-mine")
    store.add_project(ProjectRecord("proj_other", "other", datetime.now(UTC)))
    other, _ = create_api_key(store, "other", "proj_other")

    response = api.as_key(other).get("/v1/experiments/exp-mine")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_key_revoked_through_the_servers_store_is_refused_at_the_next_request(api: Api) -> None:
    assert api.client.get("/v1/specs").status_code == 200  # the key is remembered now
    (record,) = [key for key in api.context.store.list_api_keys() if key.kind == "live"]

    api.context.store.revoke_api_key(record.id)

    response = api.client.get("/v1/specs")
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_a_key_revoked_from_another_process_is_refused_once_the_memory_of_it_expires(store_url: str) -> None:
    now = [0.0]
    server_store, other_process = open_store(store_url), open_store(store_url)
    try:
        key, record = create_api_key(server_store, "k")
        known = KnownKeys(server_store, ttl_s=1.0, clock=lambda: now[0])
        assert known.look_up(key) == record and known.remembered(key) == record

        other_process.revoke_api_key(record.id)
        now[0] = 0.9
        assert known.remembered(key) == record  # within the second: not seen yet
        now[0] = 1.0
        assert known.remembered(key) is None
        looked_up = known.look_up(key)
        assert looked_up is not None and looked_up.revoked
        assert known.remembered(key) is None  # a revoked key is never remembered
    finally:
        server_store.close()
        other_process.close()


def test_the_encoded_results_stay_within_their_size_dropping_the_least_recently_used() -> None:
    cache = EncodedResults(max_bytes=10)
    first, second, third = (("p", name, "completed", None) for name in ("a", "b", "c"))
    cache.put(first, b"1234")
    cache.put(second, b"5678")
    assert cache.get(first) == b"1234"  # now the most recently used

    cache.put(third, b"90ab")

    assert (cache.get(first), cache.get(second), cache.get(third)) == (b"1234", None, b"90ab")
    cache.put(("p", "huge", "completed", None), b"x" * 11)
    assert len(cache) == 2
