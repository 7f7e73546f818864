"""What LLM calls cost: a versioned table of per-model prices (USD per million tokens) shipped with the
package (`pricing.json`, which names its sources and date), which an operator's file extends, and the
estimate of one call.

Token counts follow the OpenTelemetry GenAI convention: `input_tokens` counts every prompt token,
cached ones included, and `cached_tokens` says how many of them were read from the provider's cache
(billed at `cached_input` instead of `input`). A model the table does not know has no price: its cost
is None, never 0, so an unknown cost cannot pass a budget.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

SHIPPED_PRICING = Path(__file__).with_name("pricing.json")
PRICING_FILE_ENV = "KEYSTONE_PRICING_FILE"
"""The operator's pricing file when `ks serve --pricing` is not given, and for the embedded server."""
PER_TOKENS = 1_000_000
"""Prices are per million tokens."""
Reasoning = Literal["in_output", "extra_output"]


class PricingError(ValueError):
    """A pricing file or entry that cannot be read as prices."""


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float
    cached_input: float | None = None
    """Per million cache-read tokens; None: billed as input."""
    reasoning: Reasoning = "in_output"
    """in_output: the reported output tokens already hold the reasoning tokens; extra_output: they are
    reported apart and billed at the output price as well."""

    @classmethod
    def of(cls, model: str, entry: Any) -> ModelPrice:
        if not isinstance(entry, Mapping):
            raise PricingError(f"model {model!r}: expected a mapping of prices, got {type(entry).__name__}")
        unknown = set(entry) - {"input", "output", "cached_input", "reasoning"}
        if unknown:
            raise PricingError(f"model {model!r}: unknown keys {sorted(unknown)}")
        prices = {key: entry.get(key) for key in ("input", "output", "cached_input")}
        for key, value in prices.items():
            if value is None and key == "cached_input":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise PricingError(f"model {model!r}: {key} must be a non-negative number, got {value!r}")
        reasoning = entry.get("reasoning", "in_output")
        if reasoning not in ("in_output", "extra_output"):
            raise PricingError(f"model {model!r}: reasoning must be in_output or extra_output")
        cached = prices["cached_input"]
        return cls(
            float(entry["input"]),
            float(entry["output"]),
            None if cached is None else float(cached),
            reasoning,
        )

    def estimate(
        self, input_tokens: int, output_tokens: int, cached_tokens: int = 0, reasoning_tokens: int = 0
    ) -> float:
        cached = min(max(cached_tokens, 0), max(input_tokens, 0))
        cached_price = self.input if self.cached_input is None else self.cached_input
        billed_output = output_tokens + (reasoning_tokens if self.reasoning == "extra_output" else 0)
        usd = (input_tokens - cached) * self.input + cached * cached_price + billed_output * self.output
        return usd / PER_TOKENS


@dataclass(frozen=True)
class Pricing:
    """A price table: the shipped one, or the shipped one with an operator's file over it."""

    version: str
    prices: Mapping[str, ModelPrice]

    def price_of(self, model: str) -> ModelPrice | None:
        """The model's price: its exact name, else without a `provider/` prefix, else the longest known
        name it extends with a dated or versioned suffix (`gpt-4o-2024-08-06` is `gpt-4o`)."""
        for name in dict.fromkeys([model, model.rsplit("/", 1)[-1]]):
            if name in self.prices:
                return self.prices[name]
            extended = [known for known in self.prices if name.startswith((f"{known}-", f"{known}@"))]
            if extended:
                return self.prices[max(extended, key=len)]
        return None

    def estimate(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float | None:
        price = self.price_of(model)
        if price is None:
            return None
        return price.estimate(input_tokens, output_tokens, cached_tokens, reasoning_tokens)

    @classmethod
    def of(cls, version: str, table: Mapping[str, Any]) -> Pricing:
        return cls(version, {model: ModelPrice.of(model, entry) for model, entry in table.items()})


def _read(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PricingError(f"cannot read pricing file {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise PricingError(f"pricing file {path}: expected a mapping with a `models` mapping")
    return document


@cache
def shipped_pricing() -> Pricing:
    document = json.loads(SHIPPED_PRICING.read_text(encoding="utf-8"))
    return Pricing.of(str(document["version"]), document["models"])


def operator_pricing(path: Path | None) -> Pricing:
    """The table a server costs runs with: the shipped one, with the operator's file over it if any."""
    return shipped_pricing() if path is None else load_pricing(path)


def local_pricing() -> Pricing:
    """The table of runs on this machine's own behalf (the embedded server, `ks eval run --keep`,
    `ks replay`): the shipped one, with the file $KEYSTONE_PRICING_FILE names over it."""
    path = os.environ.get(PRICING_FILE_ENV)
    return operator_pricing(Path(path) if path else None)


def load_pricing(path: Path) -> Pricing:
    """The shipped table with the operator's file over it: its models are added, or replace the shipped
    entry of the same name. The version says both, so results name the table that priced them."""
    document = _read(path)
    try:
        overrides = Pricing.of("", document["models"])
    except PricingError as exc:
        raise PricingError(f"pricing file {path}: {exc}") from exc
    shipped = shipped_pricing()
    version = f"{shipped.version}+{document.get('version') or path.name}"
    return Pricing(version, {**shipped.prices, **overrides.prices})


pricing_table: dict[str, dict[str, Any]] = json.loads(SHIPPED_PRICING.read_text(encoding="utf-8"))["models"]
"""The shipped prices per model, as plain mappings that code in this process may extend
(`pricing_table["my-model"] = {"input": 1.0, "output": 5.0}`); `estimate_cost` reads it. A server prices
runs with its own table (the shipped one and the operator's file), never with this one."""


def estimate_cost(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float | None:
    """USD for one call (or a sum of calls to one model) at `pricing_table`'s prices; None for a model
    it does not know."""
    return Pricing.of("", pricing_table).estimate(
        model, input_tokens, output_tokens, cached_tokens, reasoning_tokens
    )
