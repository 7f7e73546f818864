"""The engine: prepares a spec, runs replicas x matrix in fresh sandboxes, aggregates and replays."""

from ._experiment import ProgressListener, RunOptions, run_experiment, scenarios_of
from ._prepare import PreparedSpec, prepare
from ._redaction import Redactor, redact_all, redact_result
from ._replay import FingerprintMismatch, replay
from ._replica import AGENT_OUTPUT_LIMIT
from ._secret_sources import (
    SecretPolicy,
    check_operator_secret,
    host_kind,
    parse_operator_secret,
    require_available,
)
from ._secrets import SecretError

__all__ = [
    "AGENT_OUTPUT_LIMIT",
    "FingerprintMismatch",
    "PreparedSpec",
    "ProgressListener",
    "Redactor",
    "RunOptions",
    "SecretError",
    "SecretPolicy",
    "check_operator_secret",
    "host_kind",
    "parse_operator_secret",
    "prepare",
    "redact_all",
    "redact_result",
    "replay",
    "require_available",
    "run_experiment",
    "scenarios_of",
]
