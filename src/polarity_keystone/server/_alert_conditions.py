"""An alert rule's condition (`<metric> <op> <value>`) and window (`last_N_runs`, `last_Nh`, `last_Nd`):
parsed strictly, and evaluated over the metrics of a spec's completed experiments.

A metric is read from each experiment's stored results (`RunResults.metrics`, the numbers the
experiment's metrics route reports too). Over a window of several experiments, the totals
(`total_cost_usd`, `side_effect_violations`) are summed and every other metric is the mean of the
experiments' values, each experiment counting once.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

METRICS = (
    "pass_rate",
    "mean_wall_ms",
    "p95_wall_ms",
    "total_cost_usd",
    "mean_cost_per_run_usd",
    "tool_success_rate",
    "side_effect_violations",
    "mean_tool_calls",
)
SUMMED_METRICS = frozenset({"total_cost_usd", "side_effect_violations"})
"""Metrics added up over a window; the others are averaged."""
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
MAX_WINDOW_RUNS = 50
MAX_WINDOW_DAYS = 30
DEFAULT_WINDOW = "last_1_runs"
"""Without a window, a rule looks at the experiment that just completed."""

_CONDITION = re.compile(r"^\s*([A-Za-z_0-9]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
_NUMBER = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
_RUNS_WINDOW = re.compile(r"^last_([1-9][0-9]*)_runs$")
_TIME_WINDOW = re.compile(r"^last_([1-9][0-9]*)(h|d)$")


class InvalidAlert(ValueError):
    """A condition or window that does not parse; `field` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Window:
    """Either the last `runs` completed experiments, or those that finished within `period`."""

    runs: int | None = None
    period: timedelta | None = None


def parse_condition(text: str) -> Condition:
    """`text` as a Condition; InvalidAlert naming the allowed metrics and operators otherwise."""
    allowed = f"allowed metrics: {', '.join(METRICS)}; operators: {' '.join(sorted(OPERATORS, key=len))}"
    match = _CONDITION.match(text)
    if match is None:
        raise InvalidAlert("condition", f"{text!r} is not '<metric> <operator> <number>' ({allowed})")
    metric, op, raw = match.groups()
    if metric not in METRICS:
        raise InvalidAlert("condition", f"unknown metric {metric!r} ({allowed})")
    if not _NUMBER.match(raw) or not math.isfinite(threshold := float(raw)):
        raise InvalidAlert("condition", f"{raw!r} is not a finite number ({allowed})")
    return Condition(metric, op, threshold)


def parse_window(text: str) -> Window:
    """`last_N_runs` (N up to MAX_WINDOW_RUNS), `last_Nh` or `last_Nd` (up to MAX_WINDOW_DAYS days)."""
    if match := _RUNS_WINDOW.match(text):
        runs = int(match.group(1))
        if runs > MAX_WINDOW_RUNS:
            raise InvalidAlert("window", f"at most last_{MAX_WINDOW_RUNS}_runs, not {text!r}")
        return Window(runs=runs)
    if match := _TIME_WINDOW.match(text):
        count, unit = int(match.group(1)), match.group(2)
        period = timedelta(hours=count) if unit == "h" else timedelta(days=count)
        if period > timedelta(days=MAX_WINDOW_DAYS):
            raise InvalidAlert("window", f"at most {MAX_WINDOW_DAYS} days, not {text!r}")
        return Window(period=period)
    raise InvalidAlert(
        "window", f"{text!r} is not a window; use last_N_runs (e.g. last_5_runs), last_Nh or last_Nd"
    )


def window_value(metric: str, values: list[float]) -> float:
    """The metric over a window's experiments (one value each, at least one)."""
    total = math.fsum(values)
    return total if metric in SUMMED_METRICS else total / len(values)
