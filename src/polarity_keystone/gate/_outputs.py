"""Step outputs (`$GITHUB_OUTPUT`, a GitLab dotenv report), the GitHub job summary and annotations.

Outputs: verdict, exit-code, pass-rate, experiment-id (comma-separated with several specs),
results-json (the file's path), comment-url, and how many scenarios passed, failed (regressed or a
threshold failed), errored and came out inconclusive, and how many specs the changed-paths filter
skipped (unchanged since the baseline: not counted as passed). A run that could not decide (exit 2 or 3) says
`error` with its exit code. Annotations are `::error::` / `::warning::` workflow commands, capped at
MAX_ANNOTATIONS (GitHub shows 10 per step anyway) with one line counting the rest; an error that points
at a spec line (a spec error, a failing invariant) carries `file=`, `line=` and `col=`, so GitHub shows
it on that line of the PR's diff.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from ..secrets import Redactor
from ._report import GateReport
from ._summary import LABELS, clip, could_not_run, headline
from ._verdict import GateVerdict, Outcome, ScenarioVerdict

OUTPUT_NAMES = (
    "verdict",
    "exit-code",
    "pass-rate",
    "experiment-id",
    "results-json",
    "comment-url",
    "passed",
    "failed",
    "errored",
    "inconclusive",
    "skipped",
)
MAX_ANNOTATIONS = 10
COUNTED: dict[str, tuple[Outcome, ...]] = {
    "passed": ("passed",),
    "failed": ("regressed", "threshold_failed"),
    "errored": ("error",),
    "inconclusive": ("inconclusive",),
}
"""The scenario counts among the outputs, by the outcomes each adds up."""

Location = tuple[str, int | None, int | None]
"""A file (relative to the workspace), line and column."""
Locate = Callable[[str, str], Location | None]
"""(spec id, invariant name) -> where the invariant is written, when known."""


def outputs(verdict: GateVerdict, results_json: Path, comment_url: str | None) -> dict[str, str]:
    passed = sum(spec.candidate.passed for spec in verdict.specs)
    total = sum(spec.candidate.total for spec in verdict.specs)
    values = {
        "verdict": verdict.verdict,
        "exit-code": str(verdict.exit_code),
        "pass-rate": f"{passed / total:.4f}" if total else "",
        "experiment-id": ",".join(spec.experiment_id for spec in verdict.specs if spec.experiment_id),
        "results-json": str(results_json),
        "comment-url": comment_url or "",
    }
    for name, counted in COUNTED.items():
        values[name] = str(sum(s.outcome in counted for s in verdict.scenarios()))
    values["skipped"] = str(sum(bool(spec.unchanged_since) for spec in verdict.specs))
    return values


def dotenv_name(output: str) -> str:
    return "KEYSTONE_" + output.upper().replace("-", "_")


def write_github_output(path: Path, values: Mapping[str, str], redact: Redactor) -> None:
    """Append `name=value` lines; a value with a newline uses the heredoc form with a random delimiter."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            value = redact(value)
            if "\n" in value:
                delimiter = f"ks_{secrets.token_hex(8)}"
                handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                handle.write(f"{name}={value}\n")


def write_dotenv(path: Path, values: Mapping[str, str], redact: Redactor) -> None:
    """GitLab's dotenv report: one `NAME=value` per line, single-line values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{dotenv_name(name)}={' '.join(redact(value).split())}" for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(kind: str, title: str, message: str, where: Location | None = None) -> str:
    properties = []
    if where is not None:
        file, line, column = where
        named = {"file": file, "line": line, "col": column}
        properties = [f"{key}={_escape_property(str(value))}" for key, value in named.items() if value]
    properties.append(f"title={_escape_property(title)}")
    return f"::{kind} {','.join(properties)}::{_escape_data(message)}"


def _failing_invariant(scenario: ScenarioVerdict) -> str | None:
    """The invariant to point at: a gate invariant that failed, else any that failed."""
    failing = [stat for stat in scenario.invariants if stat.candidate.passed < stat.candidate.total]
    failing.sort(key=lambda stat: not stat.gate)
    return failing[0].name if failing else None


def annotation_lines(report: GateReport, redact: Redactor, locate: Locate | None = None) -> list[str]:
    """Workflow commands for what did not pass: errors for blocking outcomes, warnings otherwise; a spec
    error, and a failed scenario's failing invariant, at their line of the spec (when `locate` knows it)."""
    verdict = report.verdict
    if report.problems:
        title = "Keystone gate could not run"
        lines = [_command("error", title, redact(clip(could_not_run(report))))]
        for error in report.problems:
            where = (error.file, error.line, error.column) if error.file else None
            lines.append(_command("error", title, redact(clip(error.message)), where))
        return _capped(lines)
    lines = []
    level = "error" if verdict.exit_code else "warning"
    if verdict.verdict != "passed":
        lines.append(_command(level, "Keystone gate", redact(headline(verdict))))
    for spec in verdict.specs:
        for problem in [*spec.errors, *spec.reasons]:
            lines.append(_command("error", spec.spec_id, redact(clip(problem))))
    for scenario in verdict.scenarios():
        if scenario.outcome == "passed":
            continue
        kind = "warning" if scenario.outcome == "inconclusive" else "error"
        title = f"{scenario.spec_id} / {scenario.scenario_id}: {LABELS[scenario.outcome]}"
        message = clip(scenario.reasons[0]) if scenario.reasons else LABELS[scenario.outcome]
        invariant = _failing_invariant(scenario)
        where = locate(scenario.spec_id, invariant) if locate is not None and invariant else None
        lines.append(_command(kind, title, redact(message), where))
    return _capped(lines)


def _capped(lines: list[str]) -> list[str]:
    if len(lines) > MAX_ANNOTATIONS:
        rest = len(lines) - (MAX_ANNOTATIONS - 1)
        lines = [*lines[: MAX_ANNOTATIONS - 1], f"::notice::{rest} more problem(s): see the job summary"]
    return lines


def print_annotations(report: GateReport, redact: Redactor, stream: TextIO, locate: Locate | None) -> None:
    for line in annotation_lines(report, redact, locate):
        stream.write(line + "\n")
    stream.flush()
