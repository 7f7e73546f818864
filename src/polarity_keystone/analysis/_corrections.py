"""Multiple-testing corrections: with 30 scenarios compared at once, 30 unchanged ones must not add up
to a false alarm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from ._validate import check_p_values

Correction = Literal["holm", "bh"]
"""`holm`: Holm-Bonferroni (family-wise error rate); `bh`: Benjamini-Hochberg (false discovery rate)."""
CORRECTIONS: tuple[str, ...] = get_args(Correction)


def adjust(p_values: Sequence[float], correction: Correction) -> list[float]:
    """The p-values adjusted by `correction`, in the input order."""
    return benjamini_hochberg(p_values) if correction == "bh" else holm_adjust(p_values)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Controls the family-wise error rate (the chance of *any* false regression among all scenarios)
    without assuming the tests are independent; uniformly more powerful than plain Bonferroni.
    Compare each adjusted value with the unadjusted alpha. Adjusted values are monotone in the
    ranks of the raw p-values and capped at 1.
    """
    check_p_values(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    Controls the false discovery rate (the expected share of false alarms among the flagged
    regressions) under independence or positive dependence of the tests; less strict than Holm when
    many scenarios are compared. Adjusted values are monotone in the ranks of the raw p-values and
    capped at 1.
    """
    check_p_values(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        index = order[rank]
        # m / (rank + 1) >= 1 as a float too, so the product never rounds below the raw p-value.
        running = min(running, p_values[index] * (m / (rank + 1)))
        adjusted[index] = running
    return adjusted
