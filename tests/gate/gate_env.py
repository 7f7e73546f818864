"""Running `ks gate` in tests: in-process through `run_gate`, with an environment the test spells out
(nothing leaks in from the machine or a CI that runs the tests), output captured (imported by the tests)."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from polarity_keystone.gate import GateInputError, add_arguments, report_invalid_inputs, resolve, run_gate


@dataclass
class GateRun:
    """What one run left: exit code, its log and stdout, and the files it wrote, read at once (the next run
    in the same directory overwrites them; step outputs are appended, so only this run's are kept)."""

    code: int
    log: str
    stdout: str
    junit: str
    results: dict[str, Any]
    outputs: dict[str, str]


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def github_env(
    workdir: Path, run_id: str = "100", attempt: str = "1", pr: int = 5, **extra: str
) -> dict[str, str]:
    """What GitHub Actions sets for a job of a pull_request workflow (the caller points the API elsewhere)."""
    event = workdir / "event.json"
    event.write_text(json.dumps({"number": pr, "pull_request": {"number": pr}}))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": run_id,
        "GITHUB_RUN_ATTEMPT": attempt,
        "GITHUB_RUN_NUMBER": run_id,
        "GITHUB_JOB": "gate",
        "GITHUB_SHA": "0123456789abcdef",
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_REF": f"refs/pull/{pr}/merge",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SERVER_URL": "https://github.test",
        "GITHUB_OUTPUT": str(workdir / "github-output"),
        "GITHUB_STEP_SUMMARY": str(workdir / "step-summary.md"),
        **extra,
    }


def gate(workdir: Path, environ: dict[str, str], *flags: str) -> GateRun:
    """`ks gate` in `workdir` (report paths are relative to it; so is the embedded server's store: the
    caller chdirs there)."""
    args = _namespace(flags)
    defaults = {
        "KEYSTONE_JUNIT": str(workdir / "keystone-junit.xml"),
        "KEYSTONE_SUMMARY": str(workdir / "keystone-summary.md"),
        "KEYSTONE_RESULTS_JSON": str(workdir / "keystone-results.json"),
        "KEYSTONE_DOTENV": str(workdir / "keystone.env"),
    }
    environ = {**defaults, **environ}
    github_output = Path(environ.get("GITHUB_OUTPUT", workdir / "no-github-output"))
    before = len(_read(github_output))
    log, out = io.StringIO(), io.StringIO()
    console = Console(file=log, width=200, soft_wrap=True)
    try:
        config = resolve(args, environ)
    except GateInputError as exc:  # as `ks gate` does
        code = report_invalid_inputs(args, environ, exc, console, out)
    else:
        code = run_gate(config, environ, console, out)
    results = _read(workdir / "keystone-results.json")
    lines = _read(github_output)[before:].splitlines()
    return GateRun(
        code,
        log.getvalue(),
        out.getvalue(),
        _read(workdir / "keystone-junit.xml"),
        json.loads(results) if results else {},
        dict(line.split("=", 1) for line in lines),
    )


def _namespace(flags: tuple[str, ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(flags))
