"""The pricing table, its operator override and the estimate of a call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polarity_keystone
from polarity_keystone.analysis import (
    ModelPrice,
    PricingError,
    estimate_cost,
    load_pricing,
    local_pricing,
    pricing_table,
    shipped_pricing,
)


def test_the_shipped_table_names_its_version_date_and_sources() -> None:
    document = json.loads(
        Path(polarity_keystone.__file__).with_name("analysis").joinpath("pricing.json").read_text()
    )
    assert document["version"] and document["prices_as_of"] and document["sources"]
    assert shipped_pricing().version == document["version"]
    assert set(shipped_pricing().prices) == set(document["models"])


def test_estimate_bills_uncached_input_cached_reads_and_output() -> None:
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $15 output per million tokens
    cost = estimate_cost("claude-sonnet-4-5", 4200, 1800, 1500)
    assert cost == pytest.approx((2700 * 3.0 + 1500 * 0.3 + 1800 * 15.0) / 1e6)
    assert polarity_keystone.estimate_cost is estimate_cost


def test_dated_and_provider_prefixed_names_find_their_model() -> None:
    assert estimate_cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost("gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.5)
    assert estimate_cost("openai/gpt-4o", 0, 1_000_000) == pytest.approx(10.0)


def test_an_unknown_model_has_no_cost_not_zero() -> None:
    assert estimate_cost("llama-local", 1000, 1000) is None
    assert estimate_cost("gpt-4", 1000, 1000) is None  # a prefix of a known name is another model


def test_reasoning_tokens_are_billed_apart_only_where_reported_apart() -> None:
    assert estimate_cost("o3", 0, 1000, reasoning_tokens=800) == pytest.approx(1000 * 8.0 / 1e6)
    assert estimate_cost("gemini-2.5-flash", 0, 1000, reasoning_tokens=800) == pytest.approx(1800 * 2.5 / 1e6)


def test_pricing_table_is_extended_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pricing_table, "my-custom-model", {"input": 1.0, "output": 5.0})
    assert estimate_cost("my-custom-model", 1_000_000, 1_000_000, 500_000) == pytest.approx(6.0)
    assert polarity_keystone.pricing_table is pricing_table


def test_an_operator_file_adds_and_replaces_models(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "version: acme-2026-01\nmodels:\n"
        "  gpt-4o: {input: 1.0, output: 4.0}\n"
        "  in-house-7b: {input: 0.01, output: 0.02, cached_input: 0.0}\n"
    )
    pricing = load_pricing(path)
    assert pricing.version == f"{shipped_pricing().version}+acme-2026-01"
    assert pricing.price_of("gpt-4o") == ModelPrice(1.0, 4.0)
    assert pricing.estimate("in-house-7b", 2_000_000, 1_000_000, 1_000_000) == pytest.approx(0.03)
    assert pricing.price_of("claude-haiku-4-5") == shipped_pricing().price_of("claude-haiku-4-5")
    assert shipped_pricing().price_of("gpt-4o") == ModelPrice(2.5, 10.0, 1.25)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [1, 2]", "expected a mapping with a `models` mapping"),
        ("models:\n  m: {input: -1, output: 1}", "input must be a non-negative number"),
        ("models:\n  m: {input: 1}", "output must be a non-negative number"),
        ("models:\n  m: {input: 1, output: 1, per: token}", "unknown keys ['per']"),
        ("models:\n  m: {input: 1, output: 1, reasoning: maybe}", "reasoning must be"),
        ("models: {m: {input: 1, output: 1}", "cannot read pricing file"),
    ],
)
def test_a_bad_operator_file_is_refused_with_its_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(PricingError, match=r"prices\.yaml") as raised:
        load_pricing(path)
    assert message in str(raised.value)


def test_local_runs_read_the_operator_file_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEYSTONE_PRICING_FILE", raising=False)
    assert local_pricing() == shipped_pricing()
    path = tmp_path / "prices.json"
    path.write_text('{"models": {"in-house-7b": {"input": 1, "output": 2}}}')
    monkeypatch.setenv("KEYSTONE_PRICING_FILE", str(path))
    assert local_pricing().price_of("in-house-7b") == ModelPrice(1.0, 2.0)
    assert local_pricing().version == f"{shipped_pricing().version}+prices.json"
