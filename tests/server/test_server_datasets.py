"""`/v1/datasets` on both stores: create, list, get, delete; appends making versions that stay readable;
the tags filter; paging; the bounds on names, tags, records and totals; one project never reaching
another's datasets."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.server import create_api_key
from polarity_keystone.store import DatasetEntry, DatasetQuota, ProjectRecord
from tests.server.server_api import Api


def _create(client: httpx.Client, name: str = "customer-emails", **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/datasets", json={"name": name, **body})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _add(client: httpx.Client, dataset_id: str, *records: dict[str, Any]) -> httpx.Response:
    return client.post(f"/v1/datasets/{dataset_id}/records", json={"records": list(records)})


def _records(client: httpx.Client, dataset_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/datasets/{dataset_id}/records", params=params)
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()
    return records


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) >= {"error", "message", "request_id"}
    message: str = body["message"]
    return message


def test_create_list_get_and_delete_with_its_records(api: Api) -> None:
    first = _create(api.client, description="Renewal scenarios")
    second = _create(api.client, "refunds")
    assert _add(api.client, first["id"], {"input": {"id": "alice"}}).status_code == 201

    assert first["id"].startswith("ds_")
    assert (first["name"], first["description"], first["version"], first["record_count"]) == (
        "customer-emails",
        "Renewal scenarios",
        1,
        0,
    )
    assert first["user_id"] and second["description"] == ""
    assert [d["id"] for d in api.client.get("/v1/datasets").json()] == [first["id"], second["id"]]
    page = api.client.get("/v1/datasets", params={"limit": 1})
    assert [d["id"] for d in page.json()] == [first["id"]]
    rest = api.client.get("/v1/datasets", params={"limit": 1, "cursor": page.headers["X-Next-Cursor"]})
    assert [d["id"] for d in rest.json()] == [second["id"]]
    got = api.client.get(f"/v1/datasets/{first['id']}").json()
    assert (got["version"], got["record_count"]) == (2, 1)

    assert api.client.delete(f"/v1/datasets/{first['id']}").status_code == 204
    assert "no dataset" in _error(api.client.get(f"/v1/datasets/{first['id']}"), 404)
    _error(api.client.get(f"/v1/datasets/{first['id']}/records"), 404)
    _error(api.client.delete(f"/v1/datasets/{first['id']}"), 404)
    assert [d["id"] for d in api.client.get("/v1/datasets").json()] == [second["id"]]


def test_each_append_makes_a_version_and_earlier_versions_stay_readable(api: Api) -> None:
    dataset = _create(api.client)["id"]
    added = _add(
        api.client,
        dataset,
        {"input": {"id": "alice"}, "expected": {"subject": "Renewal"}, "tags": ["pro"], "metadata": {"n": 1}},
        {"input": "bob"},
    )
    assert added.status_code == 201, added.text
    assert added.json() == {"added": 2, "version": 2}
    assert _add(api.client, dataset, {"input": [1, 2]}).json() == {"added": 1, "version": 3}

    latest = _records(api.client, dataset)
    assert [(r["input"], r["version"]) for r in latest] == [({"id": "alice"}, 2), ("bob", 2), ([1, 2], 3)]
    alice = latest[0]
    assert (alice["expected"], alice["tags"], alice["metadata"]) == (
        {"subject": "Renewal"},
        ["pro"],
        {"n": 1},
    )
    assert latest[1]["expected"] is None and latest[1]["tags"] == [] and latest[1]["metadata"] == {}
    assert len({r["id"] for r in latest}) == 3 and all(r["id"].startswith("rec_") for r in latest)
    assert all(r["dataset_id"] == dataset for r in latest)
    assert _records(api.client, dataset, version=2) == latest[:2]
    assert _records(api.client, dataset, version=1) == []
    assert _records(api.client, dataset, version=3) == latest

    message = _error(api.client.get(f"/v1/datasets/{dataset}/records", params={"version": 4}), 404)
    assert "no version 4" in message and "latest is 3" in message
    _error(api.client.get(f"/v1/datasets/{dataset}/records", params={"version": 0}), 400)


def test_the_tags_filter_keeps_records_with_every_tag(api: Api) -> None:
    dataset = _create(api.client)["id"]
    _add(api.client, dataset, {"input": 1, "tags": ["pro"]}, {"input": 2, "tags": ["pro", "eu", "pro"]})
    _add(api.client, dataset, {"input": 3, "tags": ["eu"]}, {"input": 4, "tags": [" pro "]})

    def inputs(**params: Any) -> list[Any]:
        return [record["input"] for record in _records(api.client, dataset, **params)]

    assert inputs(tags="pro") == [1, 2, 4]
    assert inputs(tags="pro,eu") == [2]
    assert inputs(tags=" eu , pro,") == [2]
    assert inputs(tags="eu") == [2, 3]
    assert inputs(tags="pro", version=2) == [1, 2]
    assert inputs(tags="missing") == []
    assert _records(api.client, dataset, tags="pro")[1]["tags"] == ["pro", "eu"]
    too_many = ",".join(f"t{i}" for i in range(33))
    assert "at most 32 tags" in _error(
        api.client.get(f"/v1/datasets/{dataset}/records", params={"tags": too_many}), 400
    )


def _pages(client: httpx.Client, dataset: str, **params: Any) -> list[list[Any]]:
    """The inputs of each page of the dataset's records, following the cursors."""
    pages, query = [], dict(params)
    while True:
        page = client.get(f"/v1/datasets/{dataset}/records", params=query)
        pages.append([record["input"] for record in page.json()])
        if "X-Next-Cursor" not in page.headers:
            return pages
        query = {**params, "cursor": page.headers["X-Next-Cursor"]}


def test_records_page_across_versions(api: Api) -> None:
    dataset = _create(api.client)["id"]
    _add(api.client, dataset, *({"input": i} for i in range(3)))
    _add(api.client, dataset, *({"input": i} for i in range(3, 5)))
    assert _pages(api.client, dataset, limit=2) == [[0, 1], [2, 3], [4]]
    bad = api.client.get(f"/v1/datasets/{dataset}/records", params={"cursor": "bm90LWEtY3Vyc29y"})
    _error(bad, 400)


def test_a_records_page_stops_at_its_byte_budget(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("polarity_keystone.server._routes_datasets.MAX_RECORDS_PAGE_BYTES", 400)
    dataset = _create(api.client)["id"]
    small = [f"{i}" * 100 for i in range(6)]  # about 150 bytes of JSON each
    _add(api.client, dataset, *({"input": text} for text in [*small[:2], "big" * 400, *small[2:]]))
    pages = _pages(api.client, dataset)
    assert pages == [small[:2], ["big" * 400], small[2:4], small[4:]]
    assert _pages(api.client, dataset, limit=1) == [[text] for page in pages for text in page]


BAD_DATASETS: list[tuple[dict[str, Any], str]] = [
    ({"name": "n", "owner": "someone"}, "owner"),
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": "n", "description": "d" * 4001}, "description"),
    ({"name": "nul\x00"}, "NUL"),
]
BAD_RECORDS: list[tuple[list[dict[str, Any]], str]] = [
    ([{"input": 1, "inputs": 2}], "inputs"),
    ([{"expected": 1}], "input"),
    ([{"input": None}], "may not be null"),
    ([{"input": 1, "tags": [f"t{i}" for i in range(33)]}], "tags"),
    ([{"input": 1, "tags": ["a,b"]}], "tags"),
    ([{"input": 1, "tags": ["t" * 101]}], "tags"),
    ([{"input": 1, "tags": ["  "]}], "tags"),
    ([{"input": 1, "metadata": []}], "metadata"),
    ([], "records"),
    ([{"input": 1}] * 10_001, "records"),
]


def test_a_dataset_body_out_of_bounds_is_refused(api: Api) -> None:
    for body, complaint in BAD_DATASETS:
        assert complaint in _error(api.client.post("/v1/datasets", json=body), 400), body
    assert api.client.get("/v1/datasets").json() == []


def test_records_out_of_bounds_are_refused_and_nothing_is_added(api: Api) -> None:
    dataset = _create(api.client)["id"]
    for records, complaint in BAD_RECORDS:
        assert complaint in _error(_add(api.client, dataset, *records), 400), records[:1]
    assert api.client.get(f"/v1/datasets/{dataset}").json()["version"] == 1


def test_an_unknown_field_next_to_the_records_is_refused(api: Api) -> None:
    dataset = _create(api.client)["id"]
    answer = api.client.post(
        f"/v1/datasets/{dataset}/records", json={"records": [{"input": 1}], "version": 9}
    )
    assert "version" in _error(answer, 400)


def test_a_record_over_256_kib_is_refused_by_its_index(api: Api) -> None:
    dataset = _create(api.client)["id"]
    fits = {"input": "x" * (255 * 1024)}
    answer = _add(api.client, dataset, fits, {"input": "é" * (129 * 1024)})
    message = _error(answer, 413)
    assert "records[1]" in message and "256.0 KiB" in message
    assert _add(api.client, dataset, fits).status_code == 201


def test_a_full_dataset_and_a_full_project_refuse_more(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "polarity_keystone.server._routes_datasets.DATASET_QUOTA", DatasetQuota(max_entries=3, max_bytes=200)
    )
    monkeypatch.setattr("polarity_keystone.server._routes_datasets.MAX_DATASETS_PER_PROJECT", 2)
    dataset = _create(api.client)["id"]
    assert _add(api.client, dataset, {"input": 1}, {"input": 2}).status_code == 201
    assert "limit of 3 records" in _error(_add(api.client, dataset, {"input": 3}, {"input": 4}), 409)
    assert "or 200 bytes" in _error(_add(api.client, dataset, {"input": "x" * 300}), 409)
    assert _add(api.client, dataset, {"input": 3}).json() == {"added": 1, "version": 3}
    assert len(_records(api.client, dataset)) == 3

    _create(api.client, "second")
    assert "the most it may have (2)" in _error(api.client.post("/v1/datasets", json={"name": "third"}), 409)


def test_concurrent_appends_each_make_their_own_version(api: Api) -> None:
    store = api.context.store
    dataset = _create(api.client)["id"]
    quota = DatasetQuota(max_entries=1000, max_bytes=10**6)
    versions: list[int] = []

    def append(index: int) -> None:
        entry = DatasetEntry(f"rec_{index}", {"i": index}, None, {}, ("t",), 10)
        versions.append(store.append_dataset_entries("default", dataset, [entry], quota).version)

    threads = [threading.Thread(target=append, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(versions) == list(range(2, 10))
    stored = _records(api.client, dataset, tags="t")
    assert sorted(record["version"] for record in stored) == list(range(2, 10))
    for record in stored:  # each version holds exactly the entry its append stored
        assert [r["id"] for r in _records(api.client, dataset, version=record["version"])][-1] == record["id"]


def test_another_projects_datasets_answer_404_and_never_list(api: Api) -> None:
    store = api.context.store
    store.add_project(ProjectRecord("proj_b", "proj-b", datetime.now(UTC)))
    other = api.as_key(create_api_key(store, "b", "proj_b")[0])
    dataset = _create(api.client)["id"]
    _add(api.client, dataset, {"input": 1, "tags": ["pro"]})

    assert other.get("/v1/datasets").json() == []
    assert "no dataset" in _error(other.get(f"/v1/datasets/{dataset}"), 404)
    _error(other.get(f"/v1/datasets/{dataset}/records", params={"version": 1}), 404)
    _error(_add(other, dataset, {"input": 2}), 404)
    _error(other.delete(f"/v1/datasets/{dataset}"), 404)
    mine = _create(other, "customer-emails")
    assert [d["id"] for d in other.get("/v1/datasets").json()] == [mine["id"]]
    assert [r["input"] for r in _records(api.client, dataset)] == [1]
    assert json.dumps(_records(other, mine["id"])) == "[]"
