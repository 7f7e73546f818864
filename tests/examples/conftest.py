"""Fixtures of the example tests: a shipped example with one edit, to show how it fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from polarity_keystone.engine import PreparedSpec, prepare
from polarity_keystone.sandbox import ImageResolver
from polarity_keystone.spec import load_spec
from tests.examples.shipped_examples import EXAMPLES, EditedExample


@pytest.fixture
def edited_example(tmp_path: Path, resolver: ImageResolver) -> EditedExample:
    """A copy of a shipped example with `old` replaced by `new` in one of its files, prepared:
    edited_example("s3-reports/s3-reports.yaml", "agent/report.py", old, new)."""

    def make(spec: str, file: str, old: str, new: str) -> PreparedSpec:
        copy = tmp_path / "example"
        shutil.copytree(EXAMPLES / Path(spec).parent, copy)
        edited = copy / file
        source = edited.read_text()
        assert old in source, f"{file} of the example no longer has the text this test edits"
        edited.write_text(source.replace(old, new))
        return prepare(load_spec(copy / Path(spec).name), resolver)

    return make
