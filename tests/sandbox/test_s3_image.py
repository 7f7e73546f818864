"""Keystone's local S3 image: its tag hashes the Dockerfile and the pinned wheel list, never the wheels,
so an existing image is reused without downloading anything."""

from __future__ import annotations

import pytest

from polarity_keystone.sandbox import ImageResolver
from polarity_keystone.sandbox import _images as images

pytestmark = pytest.mark.docker


def test_the_context_holds_the_dockerfile_and_a_fully_pinned_wheel_list() -> None:
    context = images._local_context("s3")
    assert set(context) == {"Dockerfile", images.WHEELS_FILE}
    requirements = [
        line.strip()
        for line in context[images.WHEELS_FILE].decode().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert requirements[0].startswith("moto[s3]==")
    assert all("==" in line for line in requirements), requirements


def test_an_existing_image_is_reused_without_downloading_wheels(
    resolver: ImageResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = resolver.local("s3")  # builds (downloading the wheels) only if the context changed
    tag = images._hash_tree(images._local_context("s3"))[:16]
    assert built.ref == f"{images.LOCAL_REPO}/s3:{tag}"

    def no_download(requirements: bytes, architecture: str) -> dict[str, bytes]:
        raise AssertionError("wheels downloaded for an image that exists")

    monkeypatch.setattr(images, "download_wheels", no_download)
    assert resolver.local("s3") == built


def test_an_unknown_architecture_is_an_image_error() -> None:
    with pytest.raises(images.ImageError, match="architecture 's390x'"):
        images.download_wheels(b"moto==5.0.28\n", "s390x")
