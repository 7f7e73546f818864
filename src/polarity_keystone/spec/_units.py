"""Durations (`5m`, `1h30m`, `90s`) and sizes (`1Gi`, `512Mi`, `2GB`) as the spec writes them."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?|[KMGT]B|B)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1024**4,
}


def _finite(value: float) -> float:
    """A YAML number as a float; `.inf` and integers too large for a float come out as infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


SHOWN_CHARACTERS = 40
"""Of an invalid value quoted in an error: enough to recognise it, never the whole of a huge input."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "…")


def parse_duration(value: Any) -> float:
    """Seconds from a Go-style duration (`5m`, `1h30m`, `250ms`) or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '5m' or '1h', not a boolean")
    if isinstance(value, int | float):
        seconds = _finite(value)
    elif isinstance(value, str):
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"invalid duration {_shown(value)}: use a number with a unit, e.g. '30s', '5m', '1h30m'"
            )
        seconds = sum(float(n) * _DURATION_SECONDS[u] for n, u in parts)
    else:
        raise ValueError(f"expected a duration such as '30s' or '5m', got {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from a Kubernetes/Docker-style size (`1Gi`, `512Mi`, `2GB`, `1g`) or a bare byte count."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '512Mi' or '2Gi', not a boolean")
    if isinstance(value, int | float):
        number = _finite(value)
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"invalid size {value!r}: use a number with a unit, e.g. '512Mi', '2Gi', '1GB'")
        number = float(match.group(1)) * _SIZE_FACTOR[(match.group(2) or "").lower()]
    else:
        raise ValueError(f"expected a size such as '512Mi' or '2Gi', got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError(f"a size must be a finite number of bytes, got {value!r}")
    size = int(number)
    if size <= 0:
        raise ValueError("a size must be greater than zero")
    return size


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
"""A duration in seconds; serialised back to the spec's notation."""

Size = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes."""
