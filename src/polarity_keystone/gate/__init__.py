"""The CI gate (`ks gate`): run specs through a Keystone server (embedded by default), compare them with a
baseline, write JUnit, a Markdown summary, outputs and one sticky PR/MR comment, and exit 0/1/2/3/4."""

from ._adaptive import decide_adaptively
from ._ci import CiContext, detect
from ._comments import CommentError, GitHubThread, GitLabThread, Marker, StickyComment
from ._inputs import INPUTS, GateConfig, GateInput, GateInputError, add_arguments, resolve
from ._pipeline import Gate, GateInfrastructureError, idempotency_key, report_invalid_inputs, run_gate
from ._report import REPORT_SCHEMA_VERSION, GateReport, ReportError, read_report, read_runs
from ._verdict import GateVerdict, Policy, Rate, ScenarioVerdict, SpecRun, SpecVerdict, Test, decide

__all__ = [
    "INPUTS",
    "REPORT_SCHEMA_VERSION",
    "CiContext",
    "CommentError",
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
    "run_gate",
]
