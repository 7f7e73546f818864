"""Tokens and cost from the `llm_call` events of a replica's trace, and their sums per scenario and run.

Events arrive normalised (`normalise_event`): an LLM call carries its `model` and the token counts it
reported (`input_tokens`, which includes the cached ones, `output_tokens`, `cache_read_tokens`,
`reasoning_tokens`), whatever shape the agent reported them in. A cost the agent reports itself is
ignored: the run is priced with the server's table, which the agent cannot choose.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..analysis import Pricing
from ..results import CostInfo
from ..scoring import AgentEvent

TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")
UNNAMED_MODEL = "(no model named)"


def llm_calls(events: list[AgentEvent]) -> list[AgentEvent]:
    """One event per LLM call: every `llm_call` event except the `start` half of a span."""
    return [e for e in events if e.get("event_type") == "llm_call" and e.get("phase") != "start"]


def _tokens(call: AgentEvent) -> list[int]:
    return [int(call.get(key) or 0) for key in TOKEN_KEYS]


def run_cost(events: list[AgentEvent], pricing: Pricing) -> CostInfo | None:
    """The tokens and cost of a replica's LLM calls; None when it reported none."""
    calls = llm_calls(events)
    if not calls:
        return None
    usage = [(str(call.get("model") or UNNAMED_MODEL), _tokens(call)) for call in calls]
    models = {model for model, _ in usage}
    unpriced = sorted(model for model in models if pricing.price_of(model) is None)
    return CostInfo(
        **{key: sum(tokens[index] for _, tokens in usage) for index, key in enumerate(TOKEN_KEYS)},
        model=", ".join(sorted(models)),
        estimated_usd=None if unpriced else sum(pricing.estimate(m, *t) or 0.0 for m, t in usage),
        llm_calls=len(calls),
        unpriced_models=unpriced,
        pricing_version=pricing.version,
    )


def total_cost(costs: Sequence[CostInfo | None]) -> CostInfo | None:
    """Several runs' usage together (a scenario's replicas); the cost is unknown if any run's is."""
    known = [cost for cost in costs if cost is not None]
    if not known:
        return None
    prices = [cost.estimated_usd for cost in known]
    return CostInfo(
        **{key: sum(getattr(cost, key) for cost in known) for key in TOKEN_KEYS},
        model=", ".join(sorted({model for cost in known for model in cost.model.split(", ")})),
        estimated_usd=None if None in prices else sum(p for p in prices if p is not None),
        llm_calls=sum(cost.llm_calls for cost in known),
        unpriced_models=sorted({model for cost in known for model in cost.unpriced_models}),
        pricing_version=", ".join(sorted({cost.pricing_version for cost in known})),
    )


def priced(costs: Sequence[CostInfo | None]) -> list[float]:
    """The estimated costs that are known."""
    return [cost.estimated_usd for cost in costs if cost is not None and cost.estimated_usd is not None]


def mean_cost(costs: Sequence[CostInfo | None]) -> float | None:
    """Mean cost of the runs whose cost is known; None when none is."""
    known = priced(costs)
    return sum(known) / len(known) if known else None
