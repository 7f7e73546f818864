"""Bounds on what a spec may ask for, so a valid spec cannot exhaust the machine that runs it.

A value past one of these would otherwise validate and then fail mid-run as an infrastructure error
(Docker refusing a 1-byte memory limit, a 12,000-character container name) or take the server's
memory (a huge expected value compared in every replica); here it is a spec error with its line.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue

from ._units import Duration, Size

MAX_ID_LENGTH = 100
MAX_PATH_LENGTH = 4096
"""Characters in any path a spec names (Linux's PATH_MAX)."""
MAX_SERVICES = 64
MAX_FIXTURES = 256
MAX_INVARIANTS = 256
MAX_SCENARIOS = 1000
"""Cells of `parallelism.matrix`: the product of the lengths of its axes."""
MIN_MEMORY = 6 * 1024**2
"""Docker refuses a memory limit below 6 MiB."""
MAX_MEMORY = 1024**4
MAX_CPU = 256.0
MIN_CPU = 0.01
"""Docker's smallest CPU quota."""
MAX_TIMEOUT_S = 24 * 3600.0
JSON_MAX_DEPTH = 32
JSON_MAX_NODES = 10_000


def _at_most_a_day(seconds: float) -> float:
    if seconds > MAX_TIMEOUT_S:
        raise ValueError(f"a timeout of {seconds:g}s is longer than the limit of 24h")
    return seconds


def _memory(size: int) -> int:
    if size < MIN_MEMORY:
        raise ValueError(f"memory {size} bytes is below Docker's minimum of 6Mi; use e.g. 512Mi")
    if size > MAX_MEMORY:
        raise ValueError(f"memory {size} bytes is above the limit of 1Ti")
    return size


Timeout = Annotated[Duration, AfterValidator(_at_most_a_day)]
"""A duration of at most 24 hours."""
Memory = Annotated[Size, AfterValidator(_memory)]
"""A container memory limit Docker accepts: 6Mi to 1Ti."""
Cpu = Annotated[float, Field(ge=MIN_CPU, le=MAX_CPU, allow_inf_nan=False)]
SpecPath = Annotated[str, Field(min_length=1, max_length=MAX_PATH_LENGTH)]
"""A path on the machine (relative to the spec) or in the sandbox."""


def _text_dates(value: Any) -> Any:
    """YAML reads `2025-01-01` as a date; an expected value means the text psql or JSON would show."""
    return str(value) if isinstance(value, date | datetime | time) else value


def _bounded_json(value: Any) -> Any:
    """Refuse a value deeper than JSON_MAX_DEPTH or larger than JSON_MAX_NODES, walking it without
    recursion, then turn its dates into text (now safe to recurse)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while pending:
        item, depth = pending.pop()
        nodes += 1
        if depth > JSON_MAX_DEPTH:
            raise ValueError(f"the value nests deeper than {JSON_MAX_DEPTH} levels")
        if nodes > JSON_MAX_NODES:
            raise ValueError(f"the value has more than {JSON_MAX_NODES} items")
        if isinstance(item, dict):
            pending += [(child, depth + 1) for child in item.values()]
        elif isinstance(item, list):
            pending += [(child, depth + 1) for child in item]
    return _without_dates(value)


def _without_dates(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_dates(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_without_dates(child) for child in value]
    return _text_dates(value)


JsonData = Annotated[JsonValue, BeforeValidator(_bounded_json)]
"""A JSON value (what `json:` of an http_mock assertion matches), bounded in depth and size."""
SqlValue = Annotated[str | bool | int | float | None, BeforeValidator(_text_dates)]
"""What a `sql` check compares the first cell of its query with: one scalar."""
