"""Spec bundles over the wire: blobs negotiated by digest and checked on upload, a spec uploaded with its
files' manifest and loaded from them on a server that reads no local files, and every limit refused."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

from tests.server.server_api import Api, MakeApi

SPEC = textwrap.dedent(
    """\
    version: 1
    id: bundled
    description: a spec with local files
    base: "debian:bookworm-slim"
    task: {prompt: "run the agent"}
    agent: {type: cli, command: "sh agent/run.sh", path: agent}
    invariants:
      ok: {check: {type: custom, script: checks/ok.sh}}
    """
)
FILES = {"agent/run.sh": b"echo from the bundle > out.txt\n", "checks/ok.sh": b"test -f out.txt\n"}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    return {path: {"sha256": digest(data), "size": len(data), "mode": 0o644} for path, data in files.items()}


def put(api: Api, data: bytes, name: str | None = None) -> Any:
    return api.client.put(
        f"/v1/blobs/{name or digest(data)}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def shared_server(make_api: MakeApi, tmp_path: Path, **settings: Any) -> Api:
    """A shared server: no spec root, no local paths, so only a bundle can bring a spec's files."""
    return make_api(data_dir=tmp_path / "data", **settings)


def test_missing_blobs_are_named_then_stored_once_each(make_api: MakeApi, tmp_path: Path) -> None:
    api = shared_server(make_api, tmp_path)
    one, two = b"one\n", b"two\n"

    before = api.client.post("/v1/blobs/missing", json={"digests": [digest(one), digest(two), digest(one)]})
    stored = put(api, one)
    after = api.client.post("/v1/blobs/missing", json={"digests": [digest(one), digest(two)]})

    assert before.json() == {"missing": [digest(one), digest(two)]}
    assert (stored.status_code, stored.json()) == (201, {"sha256": digest(one), "size": 4})
    assert after.json() == {"missing": [digest(two)]}
    assert (tmp_path / "data" / "blobs" / digest(one)[:2] / digest(one)).read_bytes() == one


def test_a_blob_whose_bytes_have_another_digest_is_400_and_a_large_one_413(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = shared_server(make_api, tmp_path, max_body_bytes=1024)

    mismatch = put(api, b"these bytes", name=digest(b"other bytes"))
    too_large = put(api, b"x" * 2048)
    not_a_digest = put(api, b"x", name="abc")

    assert (mismatch.status_code, mismatch.json()["error"]) == (400, "digest_mismatch")
    assert digest(b"these bytes") in mismatch.json()["message"]
    assert (too_large.status_code, too_large.json()["error"]) == (413, "payload_too_large")
    assert not_a_digest.status_code in (404, 405)
    missing = api.client.post("/v1/blobs/missing", json={"digests": [digest(b"other bytes")]})
    assert missing.json()["missing"] == [digest(b"other bytes")]


def test_a_spec_with_a_bundle_is_loaded_from_its_files_on_a_shared_server(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = shared_server(make_api, tmp_path)
    for data in FILES.values():
        put(api, data)

    without = api.client.post("/v1/specs", json={"yaml": SPEC})
    uploaded = api.client.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(FILES)})

    assert without.status_code == 400 and "no spec root" in without.text
    assert uploaded.status_code == 201, uploaded.text
    record = api.context.store.get_spec("default", "bundled", 1)
    bundle = api.context.specs.bundle(record)
    assert bundle is not None and len(bundle) == 64
    loaded = api.context.specs.load("default", "bundled", 1, None)
    assert loaded.spec_dir == tmp_path / "data" / "bundles" / bundle
    assert {path: (loaded.spec_dir / path).read_bytes() for path in FILES} == FILES
    assert loaded.spec.agent.path == "agent"


def test_an_upload_naming_blobs_the_server_lacks_is_400_with_them(make_api: MakeApi, tmp_path: Path) -> None:
    api = shared_server(make_api, tmp_path)
    put(api, FILES["agent/run.sh"])

    response = api.client.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(FILES)})

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "missing_blobs"
    assert body["details"]["missing"] == [digest(FILES["checks/ok.sh"])]


def refusal(api: Api, bundle: dict[str, Any]) -> tuple[int, str, str]:
    response = api.client.post("/v1/specs", json={"yaml": SPEC, "bundle": bundle})
    body = response.json()
    return response.status_code, body["error"], body["message"]


def test_every_bundle_limit_is_refused_with_its_status_and_reason(make_api: MakeApi, tmp_path: Path) -> None:
    api = shared_server(make_api, tmp_path, max_bundle_files=2, max_bundle_bytes=100)
    entry = manifest({"x": b"x"})["x"]

    too_many = refusal(api, {name: entry for name in ("a", "b", "c")})
    too_large = refusal(api, {"big": {**entry, "size": 101}})
    dotdot = refusal(api, {"agent/../../etc/passwd": entry})
    absolute = refusal(api, {"/etc/passwd": entry})
    clash = refusal(api, {"agent": entry, "agent/run.sh": entry})
    bad_mode = refusal(api, {"a": {**entry, "mode": 0o4755}})

    assert too_many[:2] == (413, "bundle_too_many_files") and "at most 2" in too_many[2]
    assert too_large[:2] == (413, "bundle_too_large") and "at most 100 bytes" in too_large[2]
    assert dotdot[:2] == (400, "invalid_bundle") and "`..`" in dotdot[2]
    assert absolute[:2] == (400, "invalid_bundle") and "not absolute" in absolute[2]
    assert clash[:2] == (400, "invalid_bundle") and "both a file and a directory" in clash[2]
    assert bad_mode[0] == 400


def test_another_server_on_the_same_store_finds_the_bundle_of_a_version_in_its_upload_log(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = shared_server(make_api, tmp_path)
    for data in FILES.values():
        put(api, data)
    api.client.post("/v1/specs", json={"yaml": SPEC, "bundle": manifest(FILES)})

    first = api.client.post("/v1/experiments", json={"name": "x", "spec_id": "bundled"})
    other = shared_server(make_api, tmp_path)
    again = other.client.post("/v1/experiments", json={"name": "y", "spec_id": "bundled"})

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert len(first.json()["options"]["bundle"]) == 64
    assert again.json()["options"]["bundle"] == first.json()["options"]["bundle"]
