"""`setup.pip`: pinned packages, their dependencies resolved, downloaded on the host for the image's own
Python and installed without an index and without pip in the image. The real wheels come from PyPI, so
the module builds one image (a unique `setup.commands` line makes it new on every run, after an apt layer
that is reused) and asks everything of it."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, prepare, run_experiment
from polarity_keystone.sandbox import DockerBackend, ImageError, ImageResolver
from polarity_keystone.sandbox import _images as images
from polarity_keystone.spec import Setup, load_spec

pytestmark = pytest.mark.docker

OPENAI = "1.109.1"
"""An openai release whose wheels, and its dependencies', pip finds for CPython 3.11 and 3.12 on manylinux."""

SPEC = f"""
version: 1
id: pip-setup
base: "ubuntu:24.04"
task: {{prompt: "print the openai version"}}
agent:
  type: cli
  command: python3 -c "import openai; print(openai.__version__)"
setup:
  packages: [python3]
  pip: ["openai=={OPENAI}"]
  commands: ["echo {{marker}} > /etc/pip-test-marker"]
invariants:
  ran:
    check:
      type: custom
      command: >-
        python3 -c "import json, openai; print(json.dumps({{'passed': openai.__version__ == '{OPENAI}'}}))"
"""


@dataclass
class Downloads:
    """Calls of the wheel download, counted through a wrapper around the real one."""

    calls: list[tuple[bytes, str]]

    def wrap(self, real: Callable[..., dict[str, bytes]]) -> Callable[..., dict[str, bytes]]:
        def counted(requirements: bytes, architecture: str, **options: object) -> dict[str, bytes]:
            self.calls.append((requirements, architecture))
            return real(requirements, architecture, **options)

        return counted


@pytest.fixture(scope="module")
def downloads() -> Iterator[Downloads]:
    counter = Downloads([])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(images, "download_wheels", counter.wrap(images.download_wheels))
        yield counter


@pytest.fixture(scope="module")
def prepare_spec(
    resolver: ImageResolver, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], PreparedSpec]:
    path = tmp_path_factory.mktemp("pip") / "spec.yaml"
    path.write_text(SPEC.replace("{marker}", uuid.uuid4().hex))
    return lambda: prepare(load_spec(path), resolver)


@pytest.fixture(scope="module")
def built(
    prepare_spec: Callable[[], PreparedSpec], downloads: Downloads, resolver: ImageResolver
) -> Iterator[tuple[PreparedSpec, list[tuple[bytes, str]]]]:
    """The spec prepared once (a real build and download), and the downloads that took; the images made
    for this run's unique setup are removed after (the shared apt layer stays)."""
    prepared = prepare_spec()
    baked = resolver.bake_setup(resolver.resolve(prepared.spec.base), prepared.spec.setup)
    try:
        yield prepared, list(downloads.calls)
    finally:
        for ref in (prepared.agent_image.ref, baked.ref):
            with contextlib.suppress(docker.errors.APIError):
                resolver.client.images.remove(ref, force=True)


def test_the_agent_imports_the_pinned_package(
    built: tuple[PreparedSpec, list[tuple[bytes, str]]], backend: DockerBackend
) -> None:
    prepared, first = built
    ((requirements, _),) = first
    assert requirements.decode().split() == [f"openai=={OPENAI}", "pip"]
    results = run_experiment(prepared, backend, RunOptions(seed=1))
    (replica,) = results.scenarios[0].replicas
    assert (replica.status, replica.agent_output.strip()) == ("pass", OPENAI), (
        replica.reasons,
        replica.agent_stderr,
    )


def test_a_second_prepare_builds_and_downloads_nothing(
    built: tuple[PreparedSpec, list[tuple[bytes, str]]],
    prepare_spec: Callable[[], PreparedSpec],
    downloads: Downloads,
) -> None:
    prepared, first = built
    again = prepare_spec()
    assert again.agent_image.digest == prepared.agent_image.digest
    assert again.fingerprint["agent_image"] == prepared.fingerprint["agent_image"]
    assert downloads.calls == first


def test_an_image_without_python3_is_a_clear_error(backend: DockerBackend, downloads: Downloads) -> None:
    before = list(downloads.calls)
    minimal = ImageResolver(
        backend.client, allow_pull=False, answering={"ubuntu:24.04": "debian:bookworm-slim"}
    )
    base = minimal.resolve("ubuntu:24.04")
    with pytest.raises(
        ImageError, match=re.escape("setup.pip needs python3 in the image: add python3 to setup.packages")
    ):
        minimal.bake_setup(base, Setup(pip=[f"openai=={OPENAI}"]))
    assert downloads.calls == before, "nothing is downloaded for an image that cannot use it"


def test_a_version_pip_cannot_find_is_an_image_error_with_pips_words() -> None:
    with pytest.raises(
        ImageError,
        match=r"(?s)pip could not download the wheels of openai==0\.0\.0\.1, pip: .*openai==0\.0\.0\.1",
    ):
        images.download_wheels(b"openai==0.0.0.1\npip\n", "x86_64", python="3.12", dependencies=True)
