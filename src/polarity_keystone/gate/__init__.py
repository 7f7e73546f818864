"""The CI gate (`ks gate`): run specs through a Keystone server (embedded by default), compare them with a
baseline, write JUnit, a Markdown summary, outputs and one sticky PR/MR comment, and exit 0/1/2/3/4."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._inputs import INPUTS, GateConfig, GateInput, GateInputError, add_arguments, resolve

if TYPE_CHECKING:
    from ._adaptive import decide_adaptively
    from ._ci import CiContext, detect
    from ._comments import CommentError, GitHubThread, GitLabThread, Marker, StickyComment
    from ._evals import EvalFileError, run_eval_file
    from ._pipeline import Gate, GateInfrastructureError, idempotency_key, report_invalid_inputs, run_gate
    from ._report import REPORT_SCHEMA_VERSION, GateReport, ReportError, read_report, read_runs
    from ._verdict import GateVerdict, Policy, Rate, ScenarioVerdict, SpecRun, SpecVerdict, Test, decide

__all__ = [
    "INPUTS",
    "REPORT_SCHEMA_VERSION",
    "CiContext",
    "CommentError",
    "EvalFileError",
    "Gate",
    "GateConfig",
    "GateInfrastructureError",
    "GateInput",
    "GateInputError",
    "GateReport",
    "GateVerdict",
    "GitHubThread",
    "GitLabThread",
    "Marker",
    "Policy",
    "Rate",
    "ReportError",
    "ScenarioVerdict",
    "SpecRun",
    "SpecVerdict",
    "StickyComment",
    "Test",
    "add_arguments",
    "decide",
    "decide_adaptively",
    "detect",
    "idempotency_key",
    "read_report",
    "read_runs",
    "report_invalid_inputs",
    "resolve",
    "run_eval_file",
    "run_gate",
]

_MODULES = {
    "._adaptive": ("decide_adaptively",),
    "._ci": ("CiContext", "detect"),
    "._comments": ("CommentError", "GitHubThread", "GitLabThread", "Marker", "StickyComment"),
    "._evals": ("EvalFileError", "run_eval_file"),
    "._pipeline": ("Gate", "GateInfrastructureError", "idempotency_key", "report_invalid_inputs", "run_gate"),
    "._report": ("REPORT_SCHEMA_VERSION", "GateReport", "ReportError", "read_report", "read_runs"),
    "._verdict": (
        "GateVerdict",
        "Policy",
        "Rate",
        "ScenarioVerdict",
        "SpecRun",
        "SpecVerdict",
        "Test",
        "decide",
    ),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Everything but the inputs loads on first use (PEP 562): `ks`'s parser needs only `add_arguments`,
    and the pipeline pulls in the SDK and httpx."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
