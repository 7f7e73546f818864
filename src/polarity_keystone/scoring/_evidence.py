"""Keeping secret values out of the evidence checks and rules attach to results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def redact_all(value: Any, redact: Callable[[str], str]) -> Any:
    """Redact every string in the evidence itself (not its JSON text, where escaping hides values)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): redact_all(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(item, redact) for item in value]
    return value
