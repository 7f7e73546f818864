"""Alert conditions and windows: what parses (and to what), what is refused and which field is named."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polarity_keystone.server._alert_conditions import (
    METRICS,
    Condition,
    InvalidAlert,
    Window,
    parse_condition,
    parse_window,
    window_value,
)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("pass_rate < 0.8", Condition("pass_rate", "<", 0.8)),
        ("pass_rate<0.8", Condition("pass_rate", "<", 0.8)),
        ("  mean_cost_per_run_usd > 2.00 ", Condition("mean_cost_per_run_usd", ">", 2.0)),
        ("p95_wall_ms >= 1e4", Condition("p95_wall_ms", ">=", 10000.0)),
        ("mean_wall_ms <= 500", Condition("mean_wall_ms", "<=", 500.0)),
        ("side_effect_violations != 0", Condition("side_effect_violations", "!=", 0.0)),
        ("tool_success_rate == 1", Condition("tool_success_rate", "==", 1.0)),
        ("total_cost_usd > .5", Condition("total_cost_usd", ">", 0.5)),
        ("mean_tool_calls > -1", Condition("mean_tool_calls", ">", -1.0)),
    ],
)
def test_a_condition_parses_to_its_metric_operator_and_threshold(text: str, parsed: Condition) -> None:
    assert parse_condition(text) == parsed


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("pass_rate = 0.8", "not '<metric> <operator> <number>'"),
        ("pass_rate =< 0.8", "not '<metric> <operator> <number>'"),
        ("pass_rate < 0.8 or cost > 1", "not '<metric> <operator> <number>'"),
        ("pass_rate <", "not '<metric> <operator> <number>'"),
        ("", "not '<metric> <operator> <number>'"),
        ("passrate < 0.8", "unknown metric 'passrate'"),
        ("PASS_RATE < 0.8", "unknown metric 'PASS_RATE'"),
        ("pass_rate < eighty", "'eighty' is not a finite number"),
        ("pass_rate < nan", "'nan' is not a finite number"),
        ("pass_rate < inf", "'inf' is not a finite number"),
        ("pass_rate < 1e999", "'1e999' is not a finite number"),
        ("pass_rate < 1_0", "'1_0' is not a finite number"),
        ("pass_rate < 0x10", "'0x10' is not a finite number"),
    ],
)
def test_a_bad_condition_is_refused_naming_the_field_and_what_is_allowed(text: str, complaint: str) -> None:
    with pytest.raises(InvalidAlert) as raised:
        parse_condition(text)
    assert raised.value.field == "condition"
    assert complaint in str(raised.value)
    assert "allowed metrics: " + ", ".join(METRICS) in str(raised.value)


@pytest.mark.parametrize(
    ("op", "value", "holds"),
    [
        ("<", 0.7, True),
        ("<", 0.8, False),
        ("<=", 0.8, True),
        (">", 0.8, False),
        (">=", 0.8, True),
        ("==", 0.8, True),
        ("!=", 0.8, False),
        ("!=", 0.9, True),
        (">", 0.9, True),
        ("<=", 0.9, False),
    ],
)
def test_each_operator_compares_the_value_with_the_threshold(op: str, value: float, holds: bool) -> None:
    assert parse_condition(f"pass_rate {op} 0.8").holds(value) is holds


def test_a_condition_prints_back_in_its_normal_form() -> None:
    assert str(parse_condition("mean_cost_per_run_usd>2.00")) == "mean_cost_per_run_usd > 2"


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("last_1_runs", Window(runs=1)),
        ("last_5_runs", Window(runs=5)),
        ("last_50_runs", Window(runs=50)),
        ("last_24h", Window(period=timedelta(hours=24))),
        ("last_7d", Window(period=timedelta(days=7))),
        ("last_30d", Window(period=timedelta(days=30))),
    ],
)
def test_a_window_parses(text: str, window: Window) -> None:
    assert parse_window(text) == window


@pytest.mark.parametrize(
    "text",
    ["last_0_runs", "last_51_runs", "last_5", "last_runs", "5_runs", "last_31d", "last_721h", "last_5m"],
)
def test_a_bad_window_is_refused_naming_the_window_field(text: str) -> None:
    with pytest.raises(InvalidAlert) as raised:
        parse_window(text)
    assert raised.value.field == "window"


def test_totals_are_summed_over_a_window_and_other_metrics_averaged() -> None:
    assert window_value("total_cost_usd", [1.0, 2.5]) == 3.5
    assert window_value("side_effect_violations", [1.0, 0.0, 2.0]) == 3.0
    assert window_value("pass_rate", [1.0, 0.5]) == 0.75
    assert window_value("p95_wall_ms", [100.0]) == 100.0
