"""A `type: snapshot` agent runs only as its server resolved it: the engine alone has no snapshot to run."""

from __future__ import annotations

from typing import Any

import pytest

from polarity_keystone.engine import prepare
from polarity_keystone.spec import SpecError, parse_spec

SPEC = """
version: 1
id: snap
base: "debian:bookworm-slim"
task: {prompt: "greet"}
agent: {type: snapshot, name: greeter}
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""


def test_an_unresolved_snapshot_agent_is_refused_before_anything_is_built() -> None:
    untouched: Any = object()  # no image resolver is reached
    with pytest.raises(SpecError, match="runs on a Keystone server that holds the snapshot"):
        prepare(parse_spec(SPEC), untouched)
