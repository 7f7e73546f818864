"""What a spec problem looks like to the user: one `SpecIssue` per problem, all raised together.

Every issue carries the file, line and dotted field so an editor (or a CI log) can jump straight
to it, and an optional hint so the message says how to fix it, not only what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    field: str
    """Dotted path of the offending key, e.g. `invariants.hello.check.path` or `services[0].image`."""
    message: str
    suggestion: str | None = None

    def format(self) -> str:
        """`file:line:col: field: message — hint: suggestion`, the shape compilers and editors use."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text} — hint: {self.suggestion}" if self.suggestion else text


class SpecError(Exception):
    """A spec that cannot be run; `issues` lists every problem found, not only the first."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(issue.format() for issue in issues))
