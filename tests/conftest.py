"""Shared fixtures. Docker-backed tests need an engine (`scripts/bootstrap` starts one); in CI they
run for real, and a missing engine is a failure, never a skip."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polarity_keystone.engine import PreparedSpec, prepare
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.spec import load_spec


@pytest.fixture(scope="session")
def backend() -> Iterator[DockerBackend]:
    backend = DockerBackend()
    yield backend
    backend.reap()


@pytest.fixture(scope="session")
def resolver(backend: DockerBackend) -> ImageResolver:
    return ImageResolver(backend.client)


WriteSpec = Callable[..., Path]


@pytest.fixture
def write_spec(tmp_path: Path) -> WriteSpec:
    """Write a spec (and any side files, e.g. agent scripts) into a temp dir; returns the spec path."""

    def write(yaml_text: str, files: dict[str, str] | None = None, name: str = "spec.yaml") -> Path:
        for relative, content in (files or {}).items():
            target = tmp_path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(content))
        path = tmp_path / name
        path.write_text(textwrap.dedent(yaml_text))
        return path

    return write


@pytest.fixture
def prepared_from(resolver: ImageResolver, write_spec: WriteSpec) -> Callable[..., PreparedSpec]:
    def make(yaml_text: str, files: dict[str, str] | None = None) -> PreparedSpec:
        return prepare(load_spec(write_spec(yaml_text, files)), resolver)

    return make
