"""What replica statuses (`pass` | `fail` | `error`) add up to: the judged counts behind every pass
rate, and one status for a scenario."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

_REPLICA_STATUSES = frozenset({"pass", "fail", "error"})


class Judged(NamedTuple):
    """The replicas that produced a verdict, and how many of them passed."""

    passed: int
    total: int

    @property
    def rate(self) -> float:
        """The pass rate; 0.0 when no replica produced a verdict."""
        return self.passed / self.total if self.total else 0.0


def judged(statuses: Iterable[str]) -> Judged:
    """The one rule behind every pass rate: a replica that errored produced no verdict, so it is left
    out (neither a pass nor a fail); the others count, and those that passed are the passes."""
    verdicts = [status for status in statuses if status != "error"]
    return Judged(passed=sum(status == "pass" for status in verdicts), total=len(verdicts))


def scenario_status(replica_statuses: Sequence[str]) -> Literal["pass", "fail", "flaky", "error"]:
    """Fold the statuses of a scenario's replicas (`pass` | `fail` | `error`) into one status.

    * any replica `error` -> `error`: something could not be evaluated, so the scenario must never
      look green, even if every other replica passed;
    * every replica `pass` -> `pass`;
    * no replica `pass` -> `fail`;
    * otherwise (some pass, some fail) -> `flaky`.

    No replicas at all -> `error` (nothing was evaluated). An unknown status raises ValueError.
    """
    unknown = sorted({s for s in replica_statuses if s not in _REPLICA_STATUSES})
    if unknown:
        raise ValueError(f"unknown replica status(es) {unknown}; expected pass, fail or error")
    if not replica_statuses or "error" in replica_statuses:
        return "error"
    passed = sum(1 for s in replica_statuses if s == "pass")
    if passed == len(replica_statuses):
        return "pass"
    if passed == 0:
        return "fail"
    return "flaky"
