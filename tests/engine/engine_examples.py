"""Names shared by the engine tests (fixtures are in conftest.py): where the shipped examples live, and
the type of the `run` fixture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from polarity_keystone.results import RunResults

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

RunSpec = Callable[..., RunResults]
"""run(prepared, replicas=2, seed=7) -> RunResults"""
