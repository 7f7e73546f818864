"""Blobs per project: content is stored once, but a project uses only the blobs it sent the bytes of (so
`missing` is no oracle of another project's files, and a manifest cannot borrow them), and each project's
blobs are held to its byte quota."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from polarity_keystone.server import ServerSettings, create_api_key
from polarity_keystone.store import ProjectRecord, open_store
from tests.server.server_api import Api, MakeApi
from tests.server.test_server_bundles import FILES, SPEC, digest, manifest, shared_server


def put_blob(client: httpx.Client, data: bytes, name: str | None = None) -> httpx.Response:
    return client.put(
        f"/v1/blobs/{name or digest(data)}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def missing(client: httpx.Client, *blobs: bytes) -> list[str]:
    response = client.post("/v1/blobs/missing", json={"digests": [digest(data) for data in blobs]})
    assert response.status_code == 200, response.text
    found: list[str] = response.json()["missing"]
    return found


def other_project(api: Api, name: str = "team-b") -> httpx.Client:
    """A client with a key of a new project, which shares nothing with the fixture key's."""
    api.context.store.add_project(ProjectRecord(f"prj_{name}", name, datetime.now(UTC)))
    key, _ = create_api_key(api.context.store, name, f"prj_{name}")
    return api.as_key(key)


def test_a_blob_of_another_project_is_missing_until_this_one_sends_its_bytes(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = shared_server(make_api, tmp_path)
    team_b = other_project(api)
    secret = b"a file only team A has\n"
    assert put_blob(api.client, secret).status_code == 201

    seen_by_b = missing(team_b, secret)
    forged = put_blob(team_b, b"not the file", name=digest(secret))
    after_forgery = missing(team_b, secret)
    proven = put_blob(team_b, secret)

    assert missing(api.client, secret) == []
    assert seen_by_b == [digest(secret)]
    assert (forged.status_code, forged.json()["error"]) == (400, "digest_mismatch")
    assert after_forgery == [digest(secret)]
    assert (proven.status_code, proven.json()) == (201, {"sha256": digest(secret), "size": len(secret)})
    assert missing(team_b, secret) == []


def test_a_manifest_naming_another_projects_blobs_is_refused_like_missing_ones(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = shared_server(make_api, tmp_path)
    team_b = other_project(api)
    for data in FILES.values():
        assert put_blob(api.client, data).status_code == 201
    never_uploaded = {"agent/run.sh": b"nobody sent this\n", "checks/ok.sh": b"nor this\n"}

    own = api.client.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(FILES)})
    borrowed = team_b.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(FILES)})
    absent = team_b.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(never_uploaded)})

    assert own.status_code == 201, own.text
    assert (borrowed.status_code, borrowed.json()["error"]) == (absent.status_code, absent.json()["error"])
    assert (borrowed.status_code, borrowed.json()["error"]) == (400, "missing_blobs")
    assert borrowed.json()["details"]["missing"] == [digest(data) for data in FILES.values()]


def test_an_upload_past_the_projects_quota_is_413_and_writes_nothing(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = shared_server(make_api, tmp_path, max_blob_bytes_per_project=100)
    team_b = other_project(api)
    first, second = b"1" * 60, b"2" * 60

    stored = put_blob(api.client, first)
    again = put_blob(api.client, first)
    refused = put_blob(api.client, second)
    other_projects = put_blob(team_b, second)

    assert (stored.status_code, again.status_code) == (201, 201)
    assert (refused.status_code, refused.json()["error"]) == (413, "quota_exceeded")
    assert "60 bytes of its 100 bytes quota" in refused.json()["message"]
    assert other_projects.status_code == 201
    assert missing(api.client, first, second) == [digest(second)]
    assert api.context.store.blob_usage("prj_team-b") == 60


def test_a_refused_blob_is_not_written(make_api: MakeApi, tmp_path: Path) -> None:
    api = shared_server(make_api, tmp_path, max_blob_bytes_per_project=100)
    too_big = b"x" * 101

    refused = put_blob(api.client, too_big)

    assert refused.status_code == 413
    assert not (tmp_path / "data" / "blobs" / digest(too_big)[:2] / digest(too_big)).exists()


def test_a_quota_of_0_is_none(make_api: MakeApi, tmp_path: Path) -> None:
    api = shared_server(make_api, tmp_path, max_blob_bytes_per_project=0)

    assert put_blob(api.client, b"y" * 4096).status_code == 201


def claim_at_once(store_url: str, digests: list[str], quota: int | None) -> tuple[list[bool], int]:
    """Each digest (60 bytes) claimed by the default project from its own thread, all at once: what each
    claim answered, and the project's usage after."""
    store = open_store(store_url)
    barrier = threading.Barrier(len(digests))
    results: list[bool] = []

    def claim(digest: str) -> None:
        barrier.wait()
        results.append(store.add_blob_owner("default", digest, 60, quota))

    threads = [threading.Thread(target=claim, args=(digest,)) for digest in digests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = store.blob_usage("default")
    store.close()
    return results, usage


def test_concurrent_claims_of_one_project_cannot_overshoot_its_quota(store_url: str) -> None:
    results, usage = claim_at_once(store_url, [f"{index:064x}" for index in range(8)], 100)

    assert sorted(results) == [False] * 7 + [True]
    assert usage == 60


def test_concurrent_claims_of_one_blob_count_it_once(store_url: str) -> None:
    results, usage = claim_at_once(store_url, [f"{blob:064x}" for blob in range(5) for _ in range(8)], None)

    assert results == [True] * 40
    assert usage == 5 * 60


def test_a_blob_store_url_that_is_not_s3_and_an_endpoint_without_one_are_refused(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/db"
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        ServerSettings(store_url=store_url, blob_store_url="https://bucket.example/x")
    with pytest.raises(ValueError, match="needs blob_store_url"):
        ServerSettings(store_url=store_url, blob_store_endpoint="http://127.0.0.1:9000")
