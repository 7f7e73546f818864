"""Helpers for the engine tests: the shipped examples, and running a spec end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, prepare, run_experiment
from polarity_keystone.results import RunResults
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.spec import load_spec
from tests.engine.engine_examples import EXAMPLES, RunSpec


@pytest.fixture(scope="session")
def example(resolver: ImageResolver) -> Callable[[str], PreparedSpec]:
    """A shipped example, prepared: example("hello-world/hello.yaml")."""

    def make(relative: str) -> PreparedSpec:
        return prepare(load_spec(EXAMPLES / relative), resolver)

    return make


@pytest.fixture(scope="session")
def run(backend: DockerBackend) -> RunSpec:
    """run_experiment with small defaults: run(prepared, replicas=2, seed=7)."""

    def execute(prepared: PreparedSpec, **options: Any) -> RunResults:
        options.setdefault("concurrency", 4)
        return run_experiment(prepared, backend, RunOptions(**options))

    return execute
