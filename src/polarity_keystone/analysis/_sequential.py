"""Adaptive replicas: a group-sequential design that looks at the data several times and adds replicas
only where they can still change the decision.

The candidate's replicas per scenario grow in looks (5, 10, 20, 40, 80 by default: doubling from the
first count to the most). At each look the whole family of tests (every scenario and the suite) is
decided at that look's share of alpha, spent with the power family of Kim and DeMets over the planned
information fraction t = replicas / most: alpha(t) = alpha * t^3. Little is spent early, most is kept
for the last look (0.0437 of 0.05 with the default looks), and a broken scenario is still caught at the
first look (5 of 5 replicas failing against a baseline that passed: p ~ 1e-7, against a share of 1e-5).
Unlike O'Brien-Fleming-type spending, which spends next to nothing before half-way, this lets a
plain regression stop at once.

Why peeking stays honest: the look-k test rejects with probability at most its share alpha_k under the
null hypothesis, whatever happened at the other looks, so by the union bound the chance of any false
regression over all looks is at most the sum of the shares: alpha. No assumption on how the looks'
p-values depend on each other is needed, which matters for exact tests on small discrete counts.

Stopping early is free for that bound: a scenario whose data no longer lean towards a drop (raw p-value
above the look's futility threshold) gets no more replicas, and stopping only removes chances to
reject. The thresholds are loose at first and tighten as the counts grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._validate import check_probability

LookKind = Literal["fixed", "interim", "final"]

FUTILITY_P = (1.0, 0.6, 0.45, 0.3)
"""Raw p-value above which a scenario stops at the first, second, third and later looks: its data do
not lean towards a drop enough to be worth more replicas. Nothing stops at the first look: five
replicas of a scenario that dropped from 90% to 70% all pass one time in six, and stopping those would
cost a sixth of the power."""

SPENDING_POWER = 3
"""The exponent of the spending function alpha * t^SPENDING_POWER (3: close to O'Brien-Fleming's)."""


def alpha_spent(fraction: float, alpha: float) -> float:
    """Alpha spent by information fraction `fraction` (0-1): alpha * fraction^SPENDING_POWER."""
    check_probability(alpha, "alpha")
    return alpha * min(1.0, max(0.0, fraction)) ** SPENDING_POWER


@dataclass(frozen=True)
class Look:
    """What one look of a design tests at: its share of alpha, the futility threshold, and its kind.

    * fixed: the one look of a fixed design, or the look a design was cut short at (a leaning drop is
      `inconclusive`, as without looks);
    * interim: more replicas can follow (a leaning drop asks for them: `inconclusive`);
    * final: the design's last look (a drop still not significant is `unchanged`: the design had its
      replicas, and calling it inconclusive would block at random).
    """

    alpha: float
    kind: LookKind = "fixed"
    futility_p: float = 1.0


@dataclass(frozen=True)
class SequentialDesign:
    """Candidate replicas per scenario at each look, e.g. (5, 10, 20, 40, 80); one look: a fixed design."""

    looks: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.looks or self.looks[0] < 1 or list(self.looks) != sorted(set(self.looks)):
            raise ValueError(f"looks must be increasing replica counts from 1 up, got {self.looks}")

    @classmethod
    def doubling(cls, first: int, most: int) -> SequentialDesign:
        """Looks at `first`, then doubling up to `most` (reached exactly); `most <= first`: fixed."""
        if first < 1:
            raise ValueError(f"the first look needs a replica at least, got {first}")
        looks = [first]
        while looks[-1] < most:
            looks.append(min(most, looks[-1] * 2))
        return cls(tuple(looks))

    @property
    def adaptive(self) -> bool:
        return len(self.looks) > 1

    @property
    def most(self) -> int:
        return self.looks[-1]

    def look(self, index: int, alpha: float, *, cut_short: bool = False) -> Look:
        """Look `index` (0-based). `cut_short`: the design ends here before its last look (time ran out,
        or no more replicas could be had), so a leaning drop is reported `inconclusive`."""
        if not self.adaptive:
            return Look(alpha=alpha)
        spent_before = alpha_spent(self.looks[index - 1] / self.most, alpha) if index else 0.0
        share = alpha_spent(self.looks[index] / self.most, alpha) - spent_before
        if cut_short:
            return Look(alpha=share)
        kind: LookKind = "final" if index == len(self.looks) - 1 else "interim"
        return Look(alpha=share, kind=kind, futility_p=FUTILITY_P[min(index, len(FUTILITY_P) - 1)])

    def final(self, index: int, alpha: float) -> Look:
        """Look `index` as the last one: nothing asked for more replicas there."""
        return Look(alpha=self.look(index, alpha).alpha, kind="final")
