"""The Python SDK: `Keystone`, the client of a Keystone server (remote, or embedded with `Keystone.local()`).

    ks = Keystone()                                  # KEYSTONE_API_KEY, KEYSTONE_BASE_URL
    ks.specs.create(Path("spec.yaml").read_text())
    exp = ks.experiments.create("baseline", "fix-failing-test", spec_path="spec.yaml")
    results = ks.experiments.run_and_wait(exp.id)

Compatible with the Keystone Python SDK's client for the services `sandboxes`, `specs` and `experiments`.
"""

from ..results import (
    CostInfo,
    ForbiddenCheckResult,
    InvariantResult,
    Reproducer,
    RunMetrics,
    RunResults,
    ScenarioResult,
)
from ._agents import AgentService
from ._alerts import AlertFiring, AlertRule, AlertService
from ._client import Keystone
from ._datasets import Dataset, DatasetRecord, DatasetService
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    KeystoneError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from ._eval import Eval, EvalCase, EvalResult, EvalSummary
from ._eval_context import eval_context
from ._evals import EvalRun, EvalService
from ._experiments import ExperimentService
from ._export import ExportService
from ._instrument import auto_instrument, uninstrument
from ._models import (
    AgentAuth,
    AgentSnapshot,
    CommandResult,
    Comparison,
    ComparisonPolicy,
    ConfigFile,
    Experiment,
    ExperimentMetrics,
    ExperimentResults,
    FileInfo,
    MetricComparison,
    MetricsSummary,
    Sandbox,
    SandboxTrace,
    ScenarioComparison,
    ServiceInfo,
    Spec,
    SpecBundle,
    SpecBundleFile,
    StateDiff,
    StateSnapshot,
    SuiteComparison,
    ToolStats,
    TraceEvent,
    TraceMetrics,
    TrendPoint,
)
from ._otel import flush_otel, register_otel_flush
from ._prompts import Prompt, PromptService
from ._sandboxes import SandboxService
from ._scoring import RuleScore, ScoreRule, ScoringAccepted, ScoringService
from ._secrets import collect_declared_secrets_from_file
from ._specs import SpecService
from ._sse import StreamEvent
from ._tracing import Span, SpanScope, traced
from ._webhooks import Webhook, WebhookDelivery, WebhookService

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AgentAuth",
    "AgentService",
    "AgentSnapshot",
    "AlertFiring",
    "AlertRule",
    "AlertService",
    "AuthenticationError",
    "BadRequestError",
    "CommandResult",
    "Comparison",
    "ComparisonPolicy",
    "ConfigFile",
    "ConflictError",
    "CostInfo",
    "Dataset",
    "DatasetRecord",
    "DatasetService",
    "Eval",
    "EvalCase",
    "EvalResult",
    "EvalRun",
    "EvalService",
    "EvalSummary",
    "Experiment",
    "ExperimentMetrics",
    "ExperimentResults",
    "ExperimentService",
    "ExportService",
    "FileInfo",
    "ForbiddenCheckResult",
    "InternalServerError",
    "InvariantResult",
    "Keystone",
    "KeystoneError",
    "MetricComparison",
    "MetricsSummary",
    "NotFoundError",
    "PermissionDeniedError",
    "Prompt",
    "PromptService",
    "RateLimitError",
    "Reproducer",
    "RuleScore",
    "RunMetrics",
    "RunResults",
    "Sandbox",
    "SandboxService",
    "SandboxTrace",
    "ScenarioComparison",
    "ScenarioResult",
    "ScoreRule",
    "ScoringAccepted",
    "ScoringService",
    "ServiceInfo",
    "ServiceUnavailableError",
    "Span",
    "SpanScope",
    "Spec",
    "SpecBundle",
    "SpecBundleFile",
    "SpecService",
    "StateDiff",
    "StateSnapshot",
    "StreamEvent",
    "SuiteComparison",
    "ToolStats",
    "TraceEvent",
    "TraceMetrics",
    "TrendPoint",
    "Webhook",
    "WebhookDelivery",
    "WebhookService",
    "auto_instrument",
    "collect_declared_secrets_from_file",
    "eval_context",
    "flush_otel",
    "register_otel_flush",
    "traced",
    "uninstrument",
]
