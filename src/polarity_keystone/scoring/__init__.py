"""Scoring: invariant checks and forbidden rules as registered plug-ins, and the composite verdict."""

from ._checks import CheckContext, Outcome, register, run_check, supported_checks
from ._composite import Verdict, score_run
from ._forbidden import RunRecord, check_forbidden, supported_rules
from ._http_mock import json_subset

__all__ = [
    "CheckContext",
    "Outcome",
    "RunRecord",
    "Verdict",
    "check_forbidden",
    "json_subset",
    "register",
    "run_check",
    "score_run",
    "supported_checks",
    "supported_rules",
]
