"""The engine: prepares a spec, runs replicas x matrix in fresh sandboxes, aggregates and replays."""

from ._aggregate import aggregate_run, aggregate_scenario
from ._experiment import ProgressListener, ReplicaExecutor, RunOptions, run_experiment, scenarios_of
from ._fixtures import supported_fixtures
from ._parameters import parameter_text
from ._prepare import TASK_FILE, PreparedSpec, ResolvedAgent, fingerprint_id, plan_replica, prepare
from ._replay import FingerprintMismatch, replay
from ._replica import AGENT_OUTPUT_LIMIT, ReplicaJob, run_replica, unrun_replica
from ._sandbox_stock import SandboxStock, StockLimits, StockShelf
from ._seeds import SEED_BITS, new_experiment_seed, replica_seed
from ._trace import ReportedTrace

__all__ = [
    "AGENT_OUTPUT_LIMIT",
    "SEED_BITS",
    "TASK_FILE",
    "FingerprintMismatch",
    "PreparedSpec",
    "ProgressListener",
    "ReplicaExecutor",
    "ReplicaJob",
    "ReportedTrace",
    "ResolvedAgent",
    "RunOptions",
    "SandboxStock",
    "StockLimits",
    "StockShelf",
    "aggregate_run",
    "aggregate_scenario",
    "fingerprint_id",
    "new_experiment_seed",
    "parameter_text",
    "plan_replica",
    "prepare",
    "replay",
    "replica_seed",
    "run_experiment",
    "run_replica",
    "scenarios_of",
    "supported_fixtures",
    "unrun_replica",
]
