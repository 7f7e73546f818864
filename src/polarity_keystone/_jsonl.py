"""JSON Lines written by processes Keystone does not control (the gateway, mocks, agents, the command
log): one object per line, and a line that is not one — cut short by a writer still at work, or
whatever else was appended — is skipped rather than failing the run."""

from __future__ import annotations

import json
from typing import Any


def json_objects(text: str) -> list[dict[str, Any]]:
    objects = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    return objects
