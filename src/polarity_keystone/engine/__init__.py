"""The engine: prepares a spec, runs replicas x matrix in fresh sandboxes, aggregates and replays."""

from ._experiment import ProgressListener, RunOptions, run_experiment, scenarios_of
from ._prepare import PreparedSpec, prepare
from ._replay import FingerprintMismatch, replay
from ._replica import AGENT_OUTPUT_LIMIT

__all__ = [
    "AGENT_OUTPUT_LIMIT",
    "FingerprintMismatch",
    "PreparedSpec",
    "ProgressListener",
    "RunOptions",
    "prepare",
    "replay",
    "run_experiment",
    "scenarios_of",
]
