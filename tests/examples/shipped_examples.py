"""Names shared by the tests that run the shipped examples (the `example` and `run` fixtures are in
tests/conftest.py, `edited_example` in tests/examples/conftest.py): where the examples live, and the
types of those fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from polarity_keystone.engine import PreparedSpec
from polarity_keystone.results import RunResults

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

RunSpec = Callable[..., RunResults]
"""run(prepared, replicas=2, seed=7) -> RunResults"""

EditedExample = Callable[[str, str, str, str], PreparedSpec]
"""edited_example(spec, file, old, new) -> PreparedSpec: a copy of an example with one edit, prepared"""
