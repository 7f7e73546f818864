"""Why a gate run could not decide (exit 2 or 3): its first errors, each with the file:line it points at.

They travel in the results JSON (so the fork-safe comment step can tell them too) and are what the
summary, the PR/MR comment, the outputs and the annotations show instead of a verdict, so a failed run
never leaves an earlier run's green comment standing.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..spec import SpecIssue

MAX_PROBLEMS = 10
"""Errors listed; the rest are counted (the full list is in the job's log)."""


class Problem(BaseModel):
    message: str
    file: str = ""
    line: int | None = None
    column: int | None = None

    @classmethod
    def of_issue(cls, issue: SpecIssue) -> Problem:
        message = f"{issue.field}: {issue.message}" if issue.field else issue.message
        if issue.suggestion:
            message += f" — hint: {issue.suggestion}"
        return cls(message=message, file=issue.file, line=issue.line, column=issue.column)

    def where(self) -> str:
        """`file:line:column` as far as known, or empty."""
        parts = [self.file, *(str(n) for n in (self.line, self.column) if n is not None)] if self.file else []
        return ":".join(parts)

    def describe(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message
