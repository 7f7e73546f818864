"""The Dockerfile builds and `docker run <image> ks gate --help` works.

Here no registry is reachable and pip in a build cannot reach PyPI (HTTPS goes through the host's proxy),
so the test builds on Keystone's local base image (Debian with Python; the Dockerfile adds venv from apt)
and installs from wheels prepared on the host: the project's, and its dependencies' from `pip download`
for the image's CPython 3.11. On a normal machine `docker build .` needs none of that."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from polarity_keystone.sandbox import DockerBackend, ImageResolver

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
WHEEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "any")
IMAGE_PYTHON = "3.11"
"""Debian bookworm's python3, in Keystone's local base image."""


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True, capture_output=True
    )


def prepare_wheels(target: Path) -> None:
    """The project's wheel, built now, and its dependencies', cached per pyproject.toml."""
    _pip("wheel", "--quiet", "--no-deps", "-w", str(target), str(ROOT))
    (own,) = target.glob("polarity_keystone-*.whl")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    cache = ROOT / ".keystone" / "gate-image-wheels" / digest
    if not cache.is_dir():
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
        _pip(
            "download", "--quiet", "--only-binary=:all:", "--python-version", IMAGE_PYTHON,
            "--implementation", "cp", *platforms, "-d", str(partial), str(own),
        )  # fmt: skip
        (partial / own.name).unlink()
        partial.rename(cache)
    for wheel in cache.iterdir():
        shutil.copy(wheel, target / wheel.name)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("image")
    shutil.copy(ROOT / "Dockerfile", context / "Dockerfile")
    prepare_wheels(context / ".wheels")
    backend = DockerBackend()
    base = ImageResolver(backend.client).local("base").ref
    tag = "keystone-gate-test:" + hashlib.sha256(str(context).encode()).hexdigest()[:12]
    try:
        backend.client.images.build(
            path=str(context), buildargs={"BASE": base}, tag=tag, rm=True, forcerm=True
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        pytest.fail(f"docker build failed: {exc}\n{log[-4000:]}")
    try:
        yield tag
    finally:
        backend.client.images.remove(tag, force=True)


def test_the_image_runs_ks_gate_help(image: str) -> None:
    client = docker.from_env()
    try:
        text = client.containers.run(image, ["ks", "gate", "--help"], remove=True).decode()
        assert "usage: ks gate" in text and "--baseline BASELINE" in text and "KEYSTONE_API_KEY" in text
        version = client.containers.run(image, ["ks", "--version"], remove=True).decode()
        assert version.startswith("ks 0.")
    finally:
        client.close()
