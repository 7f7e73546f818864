"""Exit codes of every `ks` command: one meaning per number, shared by the CLI and the gate."""

from collections.abc import Iterable

PASSED = 0
FAILED = 1
INVALID_INPUT = 2
INFRASTRUCTURE = 3
INCONCLUSIVE = 4


def for_statuses(statuses: Iterable[str]) -> int:
    """3 when anything could not be evaluated, else 1 when anything failed or was flaky, else 0."""
    seen = set(statuses)
    if "error" in seen:
        return INFRASTRUCTURE
    if seen & {"fail", "flaky"}:
        return FAILED
    return PASSED
