"""The engine: prepares a spec, runs replicas x matrix in fresh sandboxes, aggregates and replays."""

from ._experiment import ProgressListener, RunOptions, run_experiment, scenarios_of
from ._prepare import PreparedSpec, prepare
from ._redaction import Redactor, redact_result
from ._replay import FingerprintMismatch, replay
from ._secrets import SecretError

__all__ = [
    "FingerprintMismatch",
    "PreparedSpec",
    "ProgressListener",
    "Redactor",
    "RunOptions",
    "SecretError",
    "prepare",
    "redact_result",
    "replay",
    "run_experiment",
    "scenarios_of",
]
