"""Argument checks shared by the statistics: counts within their totals, probabilities, p-values."""

from __future__ import annotations

from collections.abc import Sequence


def check_counts(successes: int, n: int, what: str = "successes") -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"{what} must be between 0 and n={n}, got {successes}")


def check_probability(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def check_p_values(p_values: Sequence[float]) -> None:
    for p in p_values:
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p-values must be between 0 and 1, got {p}")
