"""Scoring: invariant checks and forbidden rules as registered plug-ins, and the composite verdict."""

from ._agent_events import (
    MAX_EVENTS_PER_SANDBOX,
    AgentEvent,
    event_problem,
    is_tool_call,
    merge_events,
    normalise_event,
)
from ._checks import (
    CheckContext,
    Outcome,
    first_fetch,
    leading_sql_services,
    register,
    run_check,
    run_checks,
    supported_checks,
)
from ._composite import Verdict, score_run
from ._forbidden import RunRecord, check_forbidden, supported_rules
from ._http_mock import json_subset
from ._llm_judge import judge, parse_verdict
from ._prefetch import Prefetched
from ._s3 import _s3_object as _s3_object  # registers `s3_object`

__all__ = [
    "MAX_EVENTS_PER_SANDBOX",
    "AgentEvent",
    "CheckContext",
    "Outcome",
    "Prefetched",
    "RunRecord",
    "Verdict",
    "check_forbidden",
    "event_problem",
    "first_fetch",
    "is_tool_call",
    "json_subset",
    "judge",
    "leading_sql_services",
    "merge_events",
    "normalise_event",
    "parse_verdict",
    "register",
    "run_check",
    "run_checks",
    "score_run",
    "supported_checks",
    "supported_rules",
]
