"""Scoring: invariant checks and forbidden rules as registered plug-ins, and the composite verdict."""

from ._checks import CheckContext, Outcome, register, run_check, supported_checks
from ._composite import Verdict, score_run
from ._forbidden import RunRecord, check_forbidden, supported_rules
from ._http_mock import json_subset
from ._llm_judge import parse_verdict
from ._s3 import _s3_object as _s3_object  # registers `s3_object`

__all__ = [
    "CheckContext",
    "Outcome",
    "RunRecord",
    "Verdict",
    "check_forbidden",
    "json_subset",
    "parse_verdict",
    "register",
    "run_check",
    "score_run",
    "supported_checks",
    "supported_rules",
]
