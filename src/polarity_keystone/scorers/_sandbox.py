"""The sandbox-family scorers: `FileExists`, `FileContains`, `CommandExits`, `SQLEquals`, `LLMJudge`.

Each stands for one spec invariant and serialises as it (`to_invariant()`: `{key: {description,
check}}`, ready for a spec's `invariants`, the key being the scorer's name with `:`, `/` and spaces as
`_`). Scoring never re-implements a check here: a case from a finished scenario answers with the result
of the same-keyed invariant the spec ran; a case with a live sandbox and a `SandboxChecker` (the SDK's
`ks.sandboxes`) asks the server to run the check in it now; any other case is skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..results import InvariantResult
from ._base import DEFAULT_PASS_THRESHOLD, Case, Score, Scorer, invariant_key


class SandboxChecker(Protocol):
    """Runs spec invariants in a live sandbox on a Keystone server (`ks.sandboxes` is one)."""

    def check(self, sandbox_id: str, invariants: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]: ...


class SandboxScorer(Scorer):
    """A scorer that is one spec check (`_check()`), answered by the server's run of that check."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)

    @property
    def key(self) -> str:
        """The invariant's key in a spec, and in a scenario's invariant results."""
        return invariant_key(self.name)

    def _check(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_invariant(self) -> dict[str, dict[str, Any]]:
        return {self.key: {"description": self.name, "check": self._check()}}

    def _score(self, case: Case) -> Score:
        if case.scenario is not None:
            ran = next((result for result in case.scenario.invariants if result.name == self.key), None)
            if ran is not None:
                return self._from_result(ran)
        if case.sandbox_id and case.sandbox_checker is not None:
            answers = case.sandbox_checker.check(case.sandbox_id, self.to_invariant())
            return self._from_result(InvariantResult.model_validate(answers[0]))
        if case.scenario is not None:
            why = f"the scenario ran no invariant {self.key!r}: add this scorer's to_invariant() to the spec"
        else:
            why = "the case has no finished scenario, nor a live sandbox and a checker to run the check in"
        return Score(self.name, None, passed=None, message=why, skipped=True)

    def _from_result(self, result: InvariantResult) -> Score:
        metadata = {"invariant": result.name, "evidence": result.evidence}
        if result.skipped:
            return Score(
                self.name, None, passed=None, message=result.message, metadata=metadata, skipped=True
            )
        return Score(self.name, result.score, passed=result.passed, message=result.message, metadata=metadata)


class FileExists(SandboxScorer):
    """Does `path` (relative to /workspace) exist? The `file_exists` check."""

    def __init__(self, path: str, *, name: str | None = None) -> None:
        super().__init__(name or f"file_exists:{path}")
        self.path = path

    def _check(self) -> dict[str, Any]:
        return {"type": "file_exists", "path": self.path}


class FileContains(SandboxScorer):
    """Does the file at `path` contain `contains`, not contain `not_contains`, match the regular
    expression `pattern`? (At least one.) The `file_content` check."""

    def __init__(
        self,
        path: str,
        contains: str | None = None,
        *,
        not_contains: str | None = None,
        pattern: str | None = None,
        name: str | None = None,
    ) -> None:
        if contains is None and not_contains is None and pattern is None:
            raise ValueError("FileContains needs at least one of contains, not_contains or pattern")
        super().__init__(name or f"file_contains:{path}")
        self.path, self.contains, self.not_contains, self.pattern = path, contains, not_contains, pattern

    def _check(self) -> dict[str, Any]:
        given = {"contains": self.contains, "not_contains": self.not_contains, "pattern": self.pattern}
        return {"type": "file_content", "path": self.path, **_present(given)}


class CommandExits(SandboxScorer):
    """Does `command` (run with `sh -c` from /workspace) exit with `exit_code`? The `command_exit` check."""

    def __init__(self, command: str, exit_code: int = 0, *, name: str | None = None) -> None:
        super().__init__(name or f"command_exits:{command}")
        self.command, self.exit_code = command, exit_code

    def _check(self) -> dict[str, Any]:
        return {"type": "command_exit", "command": self.command, "exit_code": self.exit_code}


_UNSET: Any = object()


class SQLEquals(SandboxScorer):
    """Does `query` on the Postgres service `service` return `equals` as its first value (`None`: NULL)?
    The `sql` check; `expected=` is accepted for `equals=`, which is what it serialises as."""

    def __init__(
        self,
        service: str,
        query: str,
        equals: Any = _UNSET,
        *,
        expected: Any = _UNSET,
        name: str | None = None,
    ) -> None:
        if (equals is _UNSET) == (expected is _UNSET):
            raise ValueError("SQLEquals takes the expected value once: equals= (or its alias expected=)")
        super().__init__(name or f"sql_equals:{service}:{query}")
        self.service, self.query = service, query
        self.equals = expected if equals is _UNSET else equals

    def _check(self) -> dict[str, Any]:
        return {"type": "sql", "service": self.service, "query": self.query, "equals": self.equals}


class LLMJudge(SandboxScorer):
    """Does a model rate what `input_from` selects (by default the whole workspace) at or above
    `pass_threshold` against `criteria`? The `llm_as_judge` check, judged on the server with its keys
    (skipped when it has none)."""

    def __init__(
        self,
        criteria: str,
        *,
        rubric: Mapping[str, str] | None = None,
        input_from: str = "workspace",
        model: str = "paragon-fast",
        pass_threshold: float = DEFAULT_PASS_THRESHOLD,
        name: str | None = None,
    ) -> None:
        super().__init__(name or "llm_judge")
        self.criteria, self.input_from, self.model = criteria, input_from, model
        self.rubric = None if rubric is None else dict(rubric)
        self.pass_threshold = pass_threshold

    def _check(self) -> dict[str, Any]:
        check = {
            "type": "llm_as_judge",
            "criteria": self.criteria,
            "input_from": self.input_from,
            "model": self.model,
            "pass_threshold": self.pass_threshold,
        }
        return check if self.rubric is None else {**check, "rubric": self.rubric}


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}
