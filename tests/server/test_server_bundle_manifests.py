"""`GET /v1/bundles/{sha256}`: the manifest of a bundle the caller's project uploaded; another project's
bundle, an unknown digest and a blob that is a file rather than a manifest answer 404 alike."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from polarity_keystone.server import create_api_key
from polarity_keystone.spec import BundleFile, bundle_digest
from polarity_keystone.store import ProjectRecord
from tests.server.server_api import Api, MakeApi
from tests.server.test_server_bundles import FILES, SPEC, digest, manifest


def project_client(api: Api, project_id: str) -> httpx.Client:
    store = api.context.store
    store.add_project(ProjectRecord(project_id, project_id.replace("_", "-"), datetime.now(UTC)))
    return api.as_key(create_api_key(store, project_id, project_id)[0])


def upload_bundled_spec(client: httpx.Client) -> str:
    """A spec with its two files; the bundle's digest, as a run's fingerprint records it."""
    for data in FILES.values():
        assert client.put(f"/v1/blobs/{digest(data)}", content=data).status_code == 201
    uploaded = client.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(FILES)})
    assert uploaded.status_code == 201, uploaded.text
    return bundle_digest({path: BundleFile(digest(data), len(data), 0o644) for path, data in FILES.items()})


def test_the_owner_gets_the_manifest_and_every_other_caller_404(make_api: MakeApi, tmp_path: Path) -> None:
    api = make_api(data_dir=tmp_path / "data")
    a, b = project_client(api, "proj_a"), project_client(api, "proj_b")
    bundle = upload_bundled_spec(a)

    owner = a.get(f"/v1/bundles/{bundle}")
    other_project = b.get(f"/v1/bundles/{bundle}")
    unknown = a.get(f"/v1/bundles/{digest(b'no such bundle')}")
    a_file = a.get(f"/v1/bundles/{digest(FILES['agent/run.sh'])}")

    assert owner.status_code == 200, owner.text
    assert owner.json() == {"digest": bundle, "files": manifest(FILES)}
    assert (other_project.status_code, other_project.json()["error"]) == (404, "not_found")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    assert a_file.status_code == 404  # A owns that blob, but it is a file, not a bundle's manifest
