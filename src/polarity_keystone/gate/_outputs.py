"""Step outputs (`$GITHUB_OUTPUT`, a GitLab dotenv report), the GitHub job summary and annotations.

Outputs: verdict, exit-code, pass-rate, experiment-id (comma-separated with several specs),
results-json (the file's path), comment-url. Annotations are `::error::` / `::warning::` workflow
commands, capped at MAX_ANNOTATIONS (GitHub shows 10 per step anyway) with one line counting the rest.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from ..secrets import Redactor
from ._summary import LABELS, clip, headline
from ._verdict import GateVerdict

OUTPUT_NAMES = ("verdict", "exit-code", "pass-rate", "experiment-id", "results-json", "comment-url")
MAX_ANNOTATIONS = 10


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


def annotation_lines(verdict: GateVerdict, redact: Redactor) -> list[str]:
    """Workflow commands for what did not pass: errors for blocking outcomes, warnings otherwise."""
    lines = []
    level = "error" if verdict.exit_code else "warning"
    if verdict.verdict != "passed":
        lines.append(
            f"::{level} title={_escape_property('Keystone gate')}::{_escape_data(redact(headline(verdict)))}"
        )
    for spec in verdict.specs:
        for problem in [*spec.errors, *spec.reasons]:
            lines.append(
                f"::error title={_escape_property(spec.spec_id)}::{_escape_data(redact(clip(problem)))}"
            )
    for scenario in verdict.scenarios():
        if scenario.outcome == "passed":
            continue
        kind = "warning" if scenario.outcome == "inconclusive" else "error"
        title = _escape_property(f"{scenario.spec_id} / {scenario.scenario_id}: {LABELS[scenario.outcome]}")
        message = clip(scenario.reasons[0]) if scenario.reasons else LABELS[scenario.outcome]
        lines.append(f"::{kind} title={title}::{_escape_data(redact(message))}")
    if len(lines) > MAX_ANNOTATIONS:
        rest = len(lines) - (MAX_ANNOTATIONS - 1)
        lines = [*lines[: MAX_ANNOTATIONS - 1], f"::notice::{rest} more problem(s): see the job summary"]
    return lines


def print_annotations(verdict: GateVerdict, redact: Redactor, stream: TextIO) -> None:
    for line in annotation_lines(verdict, redact):
        stream.write(line + "\n")
    stream.flush()
