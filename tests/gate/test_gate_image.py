"""The Dockerfile builds and `docker run <image> ks gate --help` works.

The image is really built: nothing else proves the Dockerfile. What would tie the test to one machine is
kept out of the build: pip in a build here cannot reach PyPI (HTTPS goes through the host's proxy) and no
registry answers, so the test builds on Keystone's local base image (Debian with Python; the Dockerfile
adds venv from apt) and installs offline from wheels prepared on the host. Those are the project's own,
built with the host's setuptools (no index), and those of requirements/gate.txt (the lock the image
installs with hashes checked), for the image's CPython 3.11 on the engine's architecture, fetched once
and then reused from a cache, so later runs need no package index at all. On a normal machine
`docker build .` needs none of that."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from polarity_keystone.sandbox import DockerBackend, ImageResolver

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"),
    "aarch64": ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"),
}
"""Wheel platform tags a Debian bookworm image runs, by the engine's architecture."""
ARCHITECTURE_NAMES = {"amd64": "x86_64", "arm64": "aarch64"}
"""Other names engines report for those architectures."""
IMAGE_PYTHON = "3.11"
"""Debian bookworm's python3, in Keystone's local base image."""


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True, capture_output=True
    )


LOCK = ROOT / "requirements" / "gate.txt"


def prepare_wheels(target: Path, architecture: str) -> None:
    """The project's wheel, built now from the cached build backend, and its dependencies' wheels."""
    key = f"{LOCK.read_text()}{architecture}{(ROOT / 'pyproject.toml').read_text()}"
    cache = ROOT / ".keystone" / "gate-image-wheels" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if not cache.is_dir():
        fill_cache(cache, architecture)
    offline = ("--no-index", "--find-links", str(cache))
    _pip("wheel", "--quiet", "--no-deps", *offline, "-w", str(target), str(ROOT))
    for wheel in cache.iterdir():
        shutil.copy(wheel, target / wheel.name)


def fill_cache(cache: Path, architecture: str) -> None:
    """The one step that needs the package index: the locked dependencies' wheels, hashes checked, for
    the image; and the project's build backend, so its wheel builds offline from then on."""
    partial = cache.with_name(cache.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    platforms = [arg for tag in (*PLATFORMS[architecture], "any") for arg in ("--platform", tag)]
    _pip(
        "download", "--quiet", "--only-binary=:all:", "--python-version", IMAGE_PYTHON,
        "--implementation", "cp", *platforms, "--no-deps", "--require-hashes", "-r", str(LOCK),
        "-d", str(partial),
    )  # fmt: skip
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    _pip("download", "--quiet", "--only-binary=:all:", "-d", str(partial), *backend)
    partial.rename(cache)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("image")
    shutil.copy(ROOT / "Dockerfile", context / "Dockerfile")
    (context / "requirements").mkdir()
    shutil.copy(LOCK, context / "requirements" / LOCK.name)
    backend = DockerBackend()
    architecture = str(backend.client.info()["Architecture"])
    prepare_wheels(context / ".wheels", ARCHITECTURE_NAMES.get(architecture, architecture))
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
