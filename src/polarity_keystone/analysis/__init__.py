"""Statistics over replicas, with no Docker and no HTTP: pass rates and their intervals, pass^k, exact
tests, multiple-testing corrections, power, and the one regression decision that the engine, the
server's compare endpoint, the SDK and the gate all use.

Replicas of a scenario are treated as independent Bernoulli trials: each replica that produced a verdict
either passed or failed, with an unknown per-scenario pass probability. Everything here follows from that
assumption.
"""

from ._corrections import CORRECTIONS, Correction, adjust, benjamini_hochberg, holm_adjust
from ._estimates import pass_hat_k, percentile, wilson_interval
from ._fisher import fisher_exact_one_sided
from ._power import min_replicas_to_detect
from ._pricing import (
    PRICING_FILE_ENV,
    ModelPrice,
    Pricing,
    PricingError,
    estimate_cost,
    load_pricing,
    local_pricing,
    operator_pricing,
    pricing_table,
    shipped_pricing,
)
from ._regression import (
    MAX_REPLICAS_HINT,
    Counts,
    Decision,
    RegressionPolicy,
    Regressions,
    TestResult,
    decide_regressions,
)
from ._replicas import Judged, judged, scenario_status
from ._sequential import FUTILITY_P, Look, LookKind, SequentialDesign, alpha_spent
from ._stratified import Stratum, stratified_exact_one_sided

__all__ = [
    "CORRECTIONS",
    "FUTILITY_P",
    "MAX_REPLICAS_HINT",
    "PRICING_FILE_ENV",
    "Correction",
    "Counts",
    "Decision",
    "Judged",
    "Look",
    "LookKind",
    "ModelPrice",
    "Pricing",
    "PricingError",
    "RegressionPolicy",
    "Regressions",
    "SequentialDesign",
    "Stratum",
    "TestResult",
    "adjust",
    "alpha_spent",
    "benjamini_hochberg",
    "decide_regressions",
    "estimate_cost",
    "fisher_exact_one_sided",
    "holm_adjust",
    "judged",
    "load_pricing",
    "local_pricing",
    "min_replicas_to_detect",
    "operator_pricing",
    "pass_hat_k",
    "percentile",
    "pricing_table",
    "scenario_status",
    "shipped_pricing",
    "stratified_exact_one_sided",
    "wilson_interval",
]
