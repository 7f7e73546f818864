"""The README's Scorers snippet runs and prints what its comments say (no judge key configured)."""

from __future__ import annotations

import pytest

from tests.sdk.readme_snippets import run_readme_snippet


def test_the_readme_snippet_prints_what_its_comments_say(
    monkeypatch: pytest.MonkeyPatch, no_keys: None
) -> None:
    printed, expected = run_readme_snippet("Scorers", None, monkeypatch)
    assert printed == expected
    assert len(printed) == 6
