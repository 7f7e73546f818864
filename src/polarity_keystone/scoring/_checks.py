"""Invariant checks as registered plug-ins: each reads the sandbox after the agent ran and returns
what it saw, so a failure explains itself without re-running."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._registry import Registry
from ..results import InvariantResult
from ..sandbox import Sandbox, SandboxError
from ..services import SqlError, postgres
from ..spec import (
    CommandExitCheck,
    CustomCheck,
    FileAbsentCheck,
    FileContentCheck,
    FileExistsCheck,
    Invariant,
    LocalPathError,
    Service,
    SqlCheck,
    confine,
    read_regular,
)
from ._prefetch import PREFETCHED_TYPES, Prefetched, content_path, exists_path, leading_stretch, prefetch

EXCERPT = 2000


@dataclass
class CheckContext:
    """What a check may look at: the sandbox, the run's output, the spec's services and directory."""

    sandbox: Sandbox
    services: dict[str, Service]
    spec_dir: Path
    agent_output: str = ""
    redact: Callable[[str], str] = lambda text: text
    """For text a check sends out of Keystone (an LLM judge). What a check returns is raw: the engine
    redacts the finished replica result as a whole."""
    prefetched: Prefetched = field(default_factory=Prefetched)
    """Answers fetched for a stretch of checks at once (`run_checks`); a check reads for itself otherwise."""


@dataclass
class Outcome:
    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    skipped: bool = False
    """The check could not be evaluated here (e.g. no judge key): never passed, left out of the score."""


CheckFn = Callable[[Any, CheckContext], Outcome]
_CHECKS: Registry[CheckFn] = Registry()
register = _CHECKS.register
supported_checks = _CHECKS.names


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[:EXCERPT] + f"... ({len(text) - EXCERPT} more characters)"


def run_checks(
    invariants: Mapping[str, Invariant], ctx: CheckContext, first: Prefetched | None = None
) -> list[InvariantResult]:
    """`run_check` of each invariant in order, with what each stretch of read-only checks needs fetched
    in one go before its first check (a check that runs commands may change what the next ones read).
    `first`, when given, is what the caller fetched for the leading stretch (`first_fetch`)."""
    items = list(invariants.items())
    checks = [invariant.check for _, invariant in items]
    results = []
    for index, (name, invariant) in enumerate(items):
        if invariant.check.type not in PREFETCHED_TYPES:
            ctx = dataclasses.replace(ctx, prefetched=Prefetched())
        elif index == 0 and first is not None:
            ctx = dataclasses.replace(ctx, prefetched=first)
        elif index == 0 or items[index - 1][1].check.type not in PREFETCHED_TYPES:
            stretch = leading_stretch(checks[index:])
            ctx = dataclasses.replace(ctx, prefetched=prefetch(stretch, ctx.sandbox, ctx.services))
        results.append(run_check(name, invariant, ctx))
    return results


def first_fetch(
    invariants: Mapping[str, Invariant],
    sandbox: Sandbox,
    services: dict[str, Service],
    ahead: Mapping[str, Sequence[str]],
) -> Prefetched:
    """What `run_checks` fetches for its leading stretch of read-only checks, with the caller's `ahead`
    queries run first in the batches of the services those checks query (see `prefetch`)."""
    return prefetch(
        leading_stretch([invariant.check for invariant in invariants.values()]), sandbox, services, ahead
    )


def leading_sql_services(invariants: Mapping[str, Invariant]) -> set[str]:
    """Services the leading stretch of read-only checks queries: where `first_fetch` runs `ahead` queries."""
    stretch = leading_stretch([invariant.check for invariant in invariants.values()])
    return {check.service for check in stretch if isinstance(check, SqlCheck)}


def run_check(name: str, invariant: Invariant, ctx: CheckContext) -> InvariantResult:
    """Run one invariant's check; an infrastructure failure while checking fails it with the reason."""
    check = invariant.check
    fn = _CHECKS.get(check.type)
    if fn is None:
        outcome = Outcome(False, f"check type {check.type!r} is not supported by this Keystone version")
    else:
        try:
            outcome = fn(check, ctx)
        except SandboxError as exc:
            outcome = Outcome(False, f"could not evaluate: {exc}")
    score = outcome.score if outcome.score is not None else (1.0 if outcome.passed else 0.0)
    message = outcome.message
    return InvariantResult(
        name=name,
        passed=outcome.passed and not outcome.skipped,
        skipped=outcome.skipped,
        gate=invariant.gate,
        weight=invariant.weight,
        score=score,
        message=message,
        reason="" if outcome.passed and not outcome.skipped else message,
        evidence=outcome.evidence,
    )


def _read_text(ctx: CheckContext, path: str) -> str | None:
    answer = ctx.prefetched.file(content_path(path))
    if answer is not None and answer.content is not None:
        return answer.content.decode("utf-8", errors="replace")
    try:
        return ctx.sandbox.read_file(path).decode("utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return None


def _exists(ctx: CheckContext, path: str) -> bool:
    absolute = exists_path(path)
    answer = ctx.prefetched.file(absolute)
    return answer.exists if answer is not None else ctx.sandbox.exec(["test", "-e", absolute]).exit_code == 0


@register("file_exists")
def _file_exists(check: FileExistsCheck, ctx: CheckContext) -> Outcome:
    exists = _exists(ctx, check.path)
    return Outcome(exists, f"{check.path} {'exists' if exists else 'does not exist'}", {"path": check.path})


@register("file_absent")
def _file_absent(check: FileAbsentCheck, ctx: CheckContext) -> Outcome:
    absent = not _exists(ctx, check.path)
    return Outcome(absent, f"{check.path} {'is absent' if absent else 'exists'}", {"path": check.path})


@register("file_content")
def _file_content(check: FileContentCheck, ctx: CheckContext) -> Outcome:
    text = _read_text(ctx, check.path)
    if text is None:
        return Outcome(False, f"{check.path} does not exist", {"path": check.path})
    problems = []
    if check.contains is not None and check.contains not in text:
        problems.append(f"does not contain {check.contains!r}")
    if check.not_contains is not None and check.not_contains in text:
        problems.append(f"contains {check.not_contains!r}")
    if check.pattern is not None and not re.search(check.pattern, text, re.MULTILINE):
        problems.append(f"does not match /{check.pattern}/")
    message = f"{check.path} " + ("; ".join(problems) if problems else "matches")
    return Outcome(not problems, message, {"path": check.path, "content": _excerpt(text)})


@register("command_exit")
def _command_exit(check: CommandExitCheck, ctx: CheckContext) -> Outcome:
    result = ctx.sandbox.exec(check.command, timeout=check.timeout)
    passed = result.exit_code == check.exit_code and not result.timed_out
    if result.timed_out:
        message = f"`{check.command}` timed out after {check.timeout:g}s"
    else:
        message = f"`{check.command}` exited {result.exit_code} (expected {check.exit_code})"
    evidence = {
        "command": check.command,
        "exit_code": result.exit_code,
        "stdout": _excerpt(result.stdout),
        "stderr": _excerpt(result.stderr),
    }
    if not passed and (result.stdout or result.stderr):
        message += f"\n{_excerpt((result.stdout + result.stderr).strip())}"
    return Outcome(passed, message, evidence)


def _matches(actual: str | None, expected: Any) -> bool:
    """Compare psql's text output with the YAML value by the YAML value's type."""
    if expected is None:
        return actual is None
    if actual is None:
        return False
    if isinstance(expected, bool):
        return actual.lower() in (("t", "true", "1") if expected else ("f", "false", "0"))
    if isinstance(expected, int | float):
        try:
            return float(actual) == float(expected)
        except ValueError:
            return False
    return actual == str(expected)


@register("sql")
def _sql(check: SqlCheck, ctx: CheckContext) -> Outcome:
    service = ctx.services[check.service]
    try:
        rows = ctx.prefetched.query(service.name, check.query)
        if rows is None:
            rows = postgres.query(ctx.sandbox, service, check.query)
        elif isinstance(rows, SqlError):
            raise rows
    except SqlError as exc:
        return Outcome(False, f"{exc}: {exc.output}", {"query": check.query, "error": exc.output})
    actual = rows[0][0] if rows and rows[0] else None
    passed = bool(rows) and _matches(actual, check.equals)
    evidence = {"query": check.query, "rows": rows[:20], "expected": check.equals}
    return Outcome(passed, f"query returned {actual!r}, expected {check.equals!r}", evidence)


@register("custom")
def _custom(check: CustomCheck, ctx: CheckContext) -> Outcome:
    command = check.command
    if check.script is not None:
        target = f"/keystone/checks/{Path(check.script).name}"
        try:  # confined again here: the file may have changed since the spec was validated
            script = read_regular(confine(ctx.spec_dir, check.script, "file"))
        except LocalPathError as exc:
            return Outcome(False, f"custom check script: {exc.message}", {"script": check.script})
        ctx.sandbox.write_file(target, script, 0o755)
        command = f"{check.interpreter} {target}"
    assert command is not None  # the model requires command or script
    result = ctx.sandbox.exec(command, timeout=check.timeout)
    evidence: dict[str, Any] = {
        "command": command,
        "exit_code": result.exit_code,
        "stderr": _excerpt(result.stderr),
    }
    lines = [line for line in result.stdout.strip().splitlines() if line.strip()]
    try:
        verdict = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        verdict = None
    if not isinstance(verdict, dict) or "passed" not in verdict:
        message = (
            'custom check must print a JSON object such as {"passed": true, "score": 1.0, "message": "..."} '
            f"as its last line; it printed {_excerpt(result.stdout)!r} and exited {result.exit_code}"
        )
        return Outcome(False, message, {**evidence, "stdout": _excerpt(result.stdout)})
    passed = bool(verdict["passed"])
    score = verdict.get("score")
    score = min(1.0, max(0.0, float(score))) if isinstance(score, int | float) else None
    return Outcome(passed, str(verdict.get("message", "")), {**evidence, "result": verdict}, score)
