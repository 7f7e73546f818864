"""Fixtures of the gate's tests: a fake GitHub/GitLab, and a checkout with the hello-world spec."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.shipped_examples import EXAMPLES
from tests.gate.gate_forges import Forge, running_forge


@pytest.fixture
def forge() -> Iterator[Forge]:
    with running_forge() as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with the hello-world spec, as the working directory (the embedded server's home)."""
    shutil.copytree(EXAMPLES / "hello-world", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    return tmp_path
