"""Names shared by the tests that run the shipped examples (the `example` and `run` fixtures are in
tests/conftest.py): where the examples live, and the type of the `run` fixture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from polarity_keystone.results import RunResults

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

RunSpec = Callable[..., RunResults]
"""run(prepared, replicas=2, seed=7) -> RunResults"""
