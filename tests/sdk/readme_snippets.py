"""Runs a README section's Python snippet against a served server and reads what it printed, for the
tests that check each `print(...)  # expected` line's comment."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.sdk_servers import KeystoneServer

README = Path(__file__).parents[2] / "README.md"


def run_readme_snippet(
    section: str, server: KeystoneServer | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], list[str]]:
    """(what the snippet under `## {section}` printed, what its comments say it prints); its client
    (`ks`) is closed afterwards. Without a server, the snippet runs with the environment as it is."""
    snippet = README.read_text().split(f"## {section}\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    expected = [line.rsplit("  # ", 1)[1] for line in snippet.splitlines() if line.startswith("print(")]
    if server is not None:
        monkeypatch.setenv("KEYSTONE_BASE_URL", server.base_url)
        monkeypatch.setenv("KEYSTONE_API_KEY", server.key)
    printed, names = io.StringIO(), dict[str, Any]()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet, str(README), "exec"), names)
    finally:
        if "ks" in names:
            names["ks"].close()
    return printed.getvalue().splitlines(), expected
