"""Blobs in an S3 bucket (Keystone's local `s3` image: moto in server mode, on a published port): a spec's
bundle uploaded to one server materialises from the bucket with identical files, and a second server on
the same store and bucket, with a data directory of its own, holds the same blobs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from docker.models.containers import Container

from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.spec import BundleFile, bundle_digest
from tests.server.server_api import MakeApi
from tests.server.test_server_blobs import missing, put_blob
from tests.server.test_server_bundles import FILES, SPEC, digest, manifest
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
S3_READY_TIMEOUT_S = 60


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


@pytest.fixture(scope="module")
def s3_endpoint(backend: DockerBackend, resolver: ImageResolver) -> Iterator[str]:
    """The URL of a moto S3 server on a random port of 127.0.0.1, labelled like a sandbox of this process
    so the reaper removes it if the session crashes."""
    name = f"blobs-{secrets.token_hex(4)}"
    backend.hold_lease()
    container = backend.client.containers.run(
        resolver.local("s3").ref,
        detach=True,
        ports={"9000/tcp": ("127.0.0.1", None)},
        labels={
            **labels.sandbox_labels(name, f"test-{name}", "", 3600, backend.owner),
            labels.ROLE: "test-blob-store",
        },
    )
    try:
        endpoint = wait_until(lambda: _answering(container), S3_READY_TIMEOUT_S, "the test S3 server", 0.1)
        assert endpoint is not None
        yield endpoint
    finally:
        container.remove(force=True, v=True)


def _answering(container: Container) -> str | None:
    container.reload()
    if container.status in ("exited", "dead"):
        raise RuntimeError(f"the test S3 server exited: {container.logs().decode(errors='replace')[-2000:]}")
    bindings = container.ports.get("9000/tcp")
    if not bindings:
        return None
    endpoint = f"http://127.0.0.1:{bindings[0]['HostPort']}"
    try:
        s3_client(endpoint).list_buckets()
    except (BotoCoreError, ClientError):
        return None
    return endpoint


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_bundle_in_s3_materialises_on_this_server_and_another_one(
    make_api: MakeApi, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in CREDENTIALS.items():
        monkeypatch.setenv(variable, value)
    s3_client(s3_endpoint).create_bucket(Bucket="keystone")
    bucket = {"blob_store_url": "s3://keystone/team/blobs", "blob_store_endpoint": s3_endpoint}
    first = make_api(data_dir=tmp_path / "first", **bucket)
    second = make_api(data_dir=tmp_path / "second", **bucket)
    bundle = manifest(FILES)
    digest_of_bundle = bundle_digest({path: BundleFile(**entry) for path, entry in bundle.items()})

    stored = [put_blob(first.client, data).status_code for data in FILES.values()]
    uploaded = first.client.post("/v1/specs", json={"yaml": SPEC, "bundle": bundle})
    on_first = first.context.bundles.directory(digest_of_bundle)
    on_second = second.context.bundles.directory(digest_of_bundle)
    reuploaded = second.client.post("/v1/specs", json={"yaml": SPEC, "bundle": bundle})

    assert stored == [201, 201] and uploaded.status_code == 201, uploaded.text
    keys = {item["Key"] for item in s3_client(s3_endpoint).list_objects_v2(Bucket="keystone")["Contents"]}
    wanted = [*(digest(data) for data in FILES.values()), digest_of_bundle]
    assert keys == {f"team/blobs/{name[:2]}/{name}" for name in wanted}
    assert not (tmp_path / "first" / "blobs").exists()
    assert on_first == tmp_path / "first" / "bundles" / digest_of_bundle
    assert on_second == tmp_path / "second" / "bundles" / digest_of_bundle
    for directory in (on_first, on_second):
        assert {path: (directory / path).read_bytes() for path in FILES} == FILES
    assert missing(second.client, *FILES.values()) == []
    assert reuploaded.status_code == 201, reuploaded.text
