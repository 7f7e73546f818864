"""Garbage collection of blobs: what a project no longer uses (a deleted spec's bundles, a deleted
snapshot's tarball, an old experiment's bundle) is released from its quota, and a blob no project owns
any more is deleted from the blob store, with the bundle directories written from it; what is still
used, another project's, or claimed within the grace period stays."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone.cli import main
from polarity_keystone.server import BlobCollector, GcPolicy, GcReport
from polarity_keystone.server._blobs import LocalBlobStore
from polarity_keystone.server._project_blobs import ProjectBlobs
from polarity_keystone.spec import BundleFile, Manifest, bundle_digest, canonical_manifest
from polarity_keystone.store import DEFAULT_PROJECT, ExperimentRecord, ProjectRecord, Store, open_store
from tests.server.server_api import Api, MakeApi
from tests.server.test_server_agents import agent_code, uploaded
from tests.server.test_server_blobs import other_project, put_blob
from tests.server.test_server_blobs_s3 import (
    CREDENTIALS,
    s3_client,
    s3_endpoint,  # noqa: F401 (the fixture, registered here)
)
from tests.server.test_server_bundles import FILES, SPEC, digest, manifest

MIB = 1024**2


def gc_server(make_api: MakeApi, tmp_path: Path, **settings: Any) -> Api:
    """A shared server whose every ownership is past the grace period at once, with no scheduled GC."""
    return make_api(data_dir=tmp_path / "data", blob_gc_grace_s=0, blob_gc_interval_s=0, **settings)


def blob_file(tmp_path: Path, data: bytes) -> Path:
    sha = digest(data)
    return tmp_path / "data" / "blobs" / sha[:2] / sha


def upload_spec(api: Api, files: dict[str, bytes], description: str) -> dict[str, Any]:
    for data in files.values():
        assert put_blob(api.client, data).status_code in (200, 201)
    text = SPEC.replace("a spec with local files", description)
    response = api.client.post("/v1/specs", json={"yaml": text, "bundle": manifest(files)})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bundle_manifest(files: dict[str, bytes]) -> Manifest:
    return {path: BundleFile(digest(data), len(data), 0o644) for path, data in files.items()}


def manifest_bytes(files: dict[str, bytes]) -> bytes:
    return canonical_manifest(bundle_manifest(files))


def collect(api: Api, **options: Any) -> GcReport:
    report = api.context.blob_collector.collect(**options)
    assert not report.skipped
    return report


def test_a_deleted_specs_blobs_are_released_and_deleted_but_another_projects_stay(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = gc_server(make_api, tmp_path)
    store = api.context.store
    team_b = other_project(api)
    first, second = os.urandom(MIB), os.urandom(MIB)
    for data in FILES.values():
        assert put_blob(team_b, data).status_code == 201
    team_b_spec = team_b.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(FILES)})
    assert team_b_spec.status_code == 201, team_b_spec.text
    shared = sum(len(data) for data in FILES.values())
    v1 = upload_spec(api, {**FILES, "data/big.bin": first}, "version one")
    v2 = upload_spec(api, {**FILES, "data/big.bin": second}, "version two")
    usage = store.blob_usage(DEFAULT_PROJECT)

    while_used = collect(api)
    assert api.client.delete("/v1/specs/bundled").status_code == 204
    dry = collect(api, dry_run=True)
    unchanged = store.blob_usage(DEFAULT_PROJECT), blob_file(tmp_path, first).exists()
    after = collect(api)

    assert (v1["version"], v2["version"]) == (1, 2)
    assert usage > 2 * MIB
    assert (while_used.released, while_used.deleted_blobs) == ([], 0)
    assert unchanged == (usage, True), "a dry run changes nothing"
    assert [(r.project_id, r.bytes) for r in dry.released] == [(DEFAULT_PROJECT, usage)]
    assert [(r.project_id, r.blobs, r.bytes) for r in after.released] == [(DEFAULT_PROJECT, 6, usage)]
    assert (dry.deleted_blobs, dry.deleted_bytes) == (after.deleted_blobs, after.deleted_bytes)
    assert after.deleted_blobs == 4, "both manifests and both big files: not the files team B owns too"
    assert after.deleted_bytes == usage - shared
    assert store.blob_usage(DEFAULT_PROJECT) == 0
    assert not blob_file(tmp_path, first).exists() and not blob_file(tmp_path, second).exists()
    assert all(blob_file(tmp_path, data).read_bytes() == data for data in FILES.values())
    assert store.blob_usage("prj_team-b") == shared + len(manifest_bytes(FILES))
    shared_digests = [digest(data) for data in FILES.values()]
    assert team_b.post("/v1/blobs/missing", json={"digests": shared_digests}).json()["missing"] == []
    assert dry.removed_dirs == after.removed_dirs == 2
    assert [p.name for p in (tmp_path / "data" / "bundles").iterdir()] == [
        bundle_digest(bundle_manifest(FILES))
    ]


def test_an_experiment_keeps_its_bundle_for_the_retention_window(make_api: MakeApi, tmp_path: Path) -> None:
    api = gc_server(make_api, tmp_path, blob_retention_days=30)
    store = api.context.store
    kept_file, old_file = os.urandom(1000), os.urandom(1000)
    kept_files = {**FILES, "data/x.bin": kept_file}
    kept = upload_spec(api, kept_files, "pinned by a recent experiment")
    old = upload_spec(api, {**FILES, "data/x.bin": old_file}, "pinned by an old experiment")
    now = datetime.now(UTC)
    for name, spec, age in (("recent", kept, timedelta(days=29)), ("old", old, timedelta(days=31))):
        bundle = api.context.specs.bundle(store.get_spec(DEFAULT_PROJECT, "bundled", spec["version"]))
        record = ExperimentRecord(
            f"exp-{name}",
            name,
            "bundled",
            spec["version"],
            "completed",
            now - age,
            "key",
            options={"bundle": bundle},
        )
        store.add_experiment(record)
    assert api.client.delete("/v1/specs/bundled").status_code == 204

    collect(api)

    assert blob_file(tmp_path, kept_file).exists()
    assert not blob_file(tmp_path, old_file).exists()
    kept_bytes = sum(len(data) for data in kept_files.values()) + len(manifest_bytes(kept_files))
    assert store.blob_usage(DEFAULT_PROJECT) == kept_bytes


def test_a_snapshots_tarball_stays_until_the_snapshot_is_deleted(make_api: MakeApi, tmp_path: Path) -> None:
    api = gc_server(make_api, tmp_path)
    tarball = agent_code("print('kept')")
    snapshot = uploaded(api.client, tarball)
    unpacked = api.context.agents.for_run(DEFAULT_PROJECT, {"agent_snapshot": snapshot["id"]})
    assert unpacked is not None and unpacked.directory.is_dir()

    while_live = collect(api)
    kept = blob_file(tmp_path, tarball).exists() and unpacked.directory.is_dir()
    assert api.client.delete(f"/v1/snapshots/{snapshot['id']}").status_code == 204
    after = collect(api)

    assert (while_live.released, kept) == ([], True)
    assert [(r.blobs, r.bytes) for r in after.released] == [(1, len(tarball))]
    assert not blob_file(tmp_path, tarball).exists()
    assert not unpacked.directory.exists()
    assert after.removed_dirs == 1
    assert api.context.store.blob_usage(DEFAULT_PROJECT) == 0


def test_a_blob_claimed_within_the_grace_period_is_never_released(make_api: MakeApi, tmp_path: Path) -> None:
    api = make_api(data_dir=tmp_path / "data", blob_gc_interval_s=0)  # the default grace: an hour
    data = b"uploaded for a spec that is not posted yet\n"
    assert put_blob(api.client, data).status_code == 201

    report = collect(api)

    assert (report.released, report.deleted_blobs) == ([], 0)
    assert blob_file(tmp_path, data).exists()
    assert api.context.store.blob_usage(DEFAULT_PROJECT) == len(data)


def test_asking_which_blobs_are_missing_holds_the_ones_the_project_owns(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = gc_server(make_api, tmp_path)
    data = b"owned, and about to be named by a bundle\n"
    assert put_blob(api.client, data).status_code == 201
    asked_at = datetime.now(UTC)
    before = api.context.store.blobs_held_before(DEFAULT_PROJECT, asked_at)

    answer = api.client.post("/v1/blobs/missing", json={"digests": [digest(data)]})

    assert answer.json() == {"missing": []}
    assert before == {digest(data): len(data)}
    assert api.context.store.blobs_held_before(DEFAULT_PROJECT, asked_at) == {}, "held anew when asked"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_naming_an_owned_blob_again_holds_it_for_another_grace_period(store_url: str, tmp_path: Path) -> None:
    clock = Clock()
    store = open_store(store_url, now=clock)
    backend = LocalBlobStore(tmp_path / "blobs")
    blobs = ProjectBlobs(store, backend, 0)
    collector = BlobCollector(
        store, backend, [tmp_path / "bundles"], GcPolicy(grace=timedelta(hours=1)), now=clock
    )
    held, dropped = b"named again by an upload\n", b"not named again\n"
    try:
        blobs.put(DEFAULT_PROJECT, digest(held), held)
        blobs.put(DEFAULT_PROJECT, digest(dropped), dropped)
        clock.now += timedelta(hours=2)
        missing = blobs.hold(DEFAULT_PROJECT, [digest(held), digest(b"never sent")])
        clock.now += timedelta(minutes=30)
        report = collector.collect()
        usage = store.blob_usage(DEFAULT_PROJECT)
    finally:
        store.close()

    assert missing == [digest(b"never sent")]
    assert [(r.blobs, r.bytes) for r in report.released] == [(1, len(dropped))]
    assert backend.exists(digest(held)) and not backend.exists(digest(dropped))
    assert usage == len(held)


class ReleasedWhileClaiming(LocalBlobStore):
    """A blob store on which the last other owner of a blob releases it, deleting it, right after an
    upload wrote it and before that upload records its claim: the interleaving a collection can hit."""

    def __init__(self, root: Path, store: Store, other_owner: str) -> None:
        super().__init__(root)
        self.store = store
        self.other_owner = other_owner
        self.released: dict[str, int] = {}

    def put(self, digest: str, data: bytes) -> None:
        super().put(digest, data)
        if not self.released:
            later = datetime.now(UTC) + timedelta(days=1)
            self.released = self.store.release_blobs(self.other_owner, [digest], later, self.delete)


def test_a_blob_deleted_between_its_write_and_its_claim_is_stored_again(
    store_url: str, tmp_path: Path
) -> None:
    store = open_store(store_url)
    data = b"claimed while its last other owner released it\n"
    ProjectBlobs(store, LocalBlobStore(tmp_path / "blobs"), 0).put("prj_before", digest(data), data)
    backend = ReleasedWhileClaiming(tmp_path / "blobs", store, "prj_before")
    try:
        ProjectBlobs(store, backend, 0).put(DEFAULT_PROJECT, digest(data), data)
        owners = store.blob_owners([digest(data)])
    finally:
        store.close()

    assert backend.released == {digest(data): len(data)}
    assert owners == {digest(data): {DEFAULT_PROJECT}}
    assert backend.get(digest(data)) == data


def test_one_collector_at_a_time_holds_the_stores_lease(store_url: str) -> None:
    clock = Clock()
    store = open_store(store_url, now=clock)
    try:
        first = store.take_lease("blob-gc", "server-a", timedelta(hours=1))
        refused = store.take_lease("blob-gc", "server-b", timedelta(hours=1))
        renewed = store.take_lease("blob-gc", "server-a", timedelta(hours=1))
        clock.now += timedelta(hours=2)
        expired_taken = store.take_lease("blob-gc", "server-b", timedelta(hours=1))
        store.drop_lease("blob-gc", "server-a")  # no longer its lease: a no-op
        still_b = not store.take_lease("blob-gc", "server-a", timedelta(hours=1))
        store.drop_lease("blob-gc", "server-b")
        free_again = store.take_lease("blob-gc", "server-a", timedelta(hours=1))
    finally:
        store.close()

    assert (first, refused, renewed, expired_taken, still_b, free_again) == (
        True,
        False,
        True,
        True,
        True,
        True,
    )


def test_ks_blobs_gc_prints_what_it_released_and_deleted(
    make_api: MakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = gc_server(make_api, tmp_path)
    data = b"a file of a spec about to be deleted\n"
    upload_spec(api, {**FILES, "data/x.bin": data}, "deleted")
    assert api.client.delete("/v1/specs/bundled").status_code == 204
    store_url = api.context.settings.store_url
    data_dir = str(tmp_path / "data")
    usage = api.context.store.blob_usage(DEFAULT_PROJECT)
    add_project = api.context.store.add_project
    add_project(ProjectRecord("prj_idle", "idle", datetime.now(UTC)))

    command = ["blobs", "gc", "--store", store_url, "--data-dir", data_dir, "--grace-minutes", "0"]
    dry_code = main([*command, "--dry-run"])
    dry = capsys.readouterr().out
    kept = blob_file(tmp_path, data).exists()
    code = main(command)
    real = capsys.readouterr().out

    assert (dry_code, code, kept) == (0, 0, True)
    assert f"default: would release 4 blob(s), {usage} bytes" in dry
    assert "would delete 4 blob(s)" in dry
    assert f"default: release 4 blob(s), {usage} bytes" in real
    assert f"delete 4 blob(s), {usage} bytes, from the blob store" in real
    assert "remove 1 bundle or unpacked snapshot directory(ies)" in real
    assert "idle" not in real
    assert not blob_file(tmp_path, data).exists()


def test_the_scheduled_collection_runs_on_its_interval_and_stops_with_the_server(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = make_api(data_dir=tmp_path / "data", blob_gc_grace_s=0, blob_gc_interval_s=0.05)
    data = b"uploaded, never used\n"
    assert put_blob(api.client, data).status_code == 201

    deadline = time.monotonic() + 10
    while blob_file(tmp_path, data).exists() and time.monotonic() < deadline:
        time.sleep(0.05)

    assert not blob_file(tmp_path, data).exists()
    assert api.context.store.blob_usage(DEFAULT_PROJECT) == 0


@pytest.mark.docker
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_deleted_specs_blobs_are_deleted_from_an_s3_bucket(
    make_api: MakeApi, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint: str = request.getfixturevalue("s3_endpoint")
    for variable, value in CREDENTIALS.items():
        monkeypatch.setenv(variable, value)
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="collected")
    bucket = {"blob_store_url": "s3://collected/blobs", "blob_store_endpoint": endpoint}
    api = gc_server(make_api, tmp_path, **bucket)
    kept = b"uploaded again after the collection\n"
    upload_spec(api, {**FILES, "data/x.bin": os.urandom(1000)}, "deleted")
    stored = s3.list_objects_v2(Bucket="collected")["KeyCount"]
    assert api.client.delete("/v1/specs/bundled").status_code == 204

    report = collect(api)
    left = s3.list_objects_v2(Bucket="collected")["KeyCount"]
    assert put_blob(api.client, kept).status_code == 201

    assert (stored, report.deleted_blobs, left) == (4, 4, 0)
    assert api.context.blobs.backend.exists(digest(kept))
    assert not api.context.blobs.backend.exists(digest(FILES["checks/ok.sh"]))
