"""The gate's results JSON (`results-json`): the verdict, the CI context and the candidate RunResults.

Versioned (`schema_version`), because it outlives the job: it is the artifact a later run on another
branch reads as its baseline (`baseline: file:...`), and the input of the fork-safe comment workflow
(`from-results`), which runs with write access and must therefore only *read* it, never run anything
from it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError

from .._version import __version__
from ..results import RunResults
from ..secrets import Redactor
from ._ci import CiContext
from ._problems import Problem
from ._verdict import GateVerdict

REPORT_SCHEMA_VERSION = 1
REPORT_KIND = "keystone-gate-results"


class GateReport(BaseModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    kind: Literal["keystone-gate-results"] = "keystone-gate-results"
    keystone_version: str = __version__
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    verdict: GateVerdict
    ci: CiContext = Field(default_factory=CiContext)
    runs: list[SerializeAsAny[RunResults]] = Field(default_factory=list)
    """Each run as the server returned it: its results plus the experiment's record (id, name, times,
    metadata), which a plain RunResults would drop on writing."""
    problems: list[Problem] = Field(default_factory=list)
    """Why the run could not decide (exit 2 or 3); empty when the verdict stands on the runs."""


class ReportError(ValueError):
    """Raised for a results file the gate cannot read; an input error (exit 2)."""


def write_report(path: Path, report: GateReport, redact: Redactor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(report.model_dump_json(indent=2)) + "\n", encoding="utf-8")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None


def read_report(path: Path) -> GateReport:
    data = _load_json(path)
    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        raise ReportError(f"{path} is not a results JSON written by ks gate (no kind: {REPORT_KIND})")
    if int(data.get("schema_version", 0)) > REPORT_SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema_version {data['schema_version']}; "
            f"this ks gate reads up to {REPORT_SCHEMA_VERSION}"
        )
    try:
        return GateReport.model_validate(data)
    except ValidationError as exc:
        raise ReportError(f"{path} is not a valid gate results JSON: {exc}") from None


def read_runs(path: Path) -> list[RunResults]:
    """RunResults from a baseline file: the gate's results JSON, `ks eval run -o` output (one RunResults
    or a list of them)."""
    data = _load_json(path)
    if isinstance(data, dict) and data.get("kind") == REPORT_KIND:
        return read_report(path).runs
    items = data if isinstance(data, list) else [data]
    try:
        return [RunResults.model_validate(item) for item in items]
    except ValidationError as exc:
        raise ReportError(f"{path} holds neither gate results nor RunResults: {exc}") from None
