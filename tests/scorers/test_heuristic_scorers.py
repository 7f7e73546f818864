"""The heuristic scorers on real values: matches and near misses, their options, the seed's custom
scorer, and outputs that are huge or malformed giving a failed score instead of an exception."""

from __future__ import annotations

import json
import time

import pytest

from polarity_keystone import Score, Scorer
from polarity_keystone.results import ScenarioResult
from polarity_keystone.scorers import (
    Case,
    Contains,
    ExactMatch,
    JSONDiff,
    JSONValidity,
    Levenshtein,
    NumericDiff,
    SemanticListContains,
)


def test_exact_match_strips_and_is_case_sensitive_by_default() -> None:
    assert ExactMatch()(output="  Paris\n", expected="Paris").passed
    missed = ExactMatch()(output="paris", expected="Paris")
    assert (missed.score, missed.passed) == (0.0, False)
    assert "expected 'Paris', got 'paris'" in missed.message
    assert ExactMatch(case_sensitive=False)(output="paris", expected="Paris").passed
    assert not ExactMatch(strip=False)(output=" Paris", expected="Paris").passed


def test_exact_match_reads_expected_key_from_the_scenario_parameters() -> None:
    scenario = ScenarioResult.from_dict(
        {"scenario_id": "capital", "status": "pass", "agent_output": "Lyon", "parameters": {"city": "Lyon"}}
    )
    assert ExactMatch(expected_key="city")(scenario).passed
    missing = ExactMatch(expected_key="country")(scenario)
    assert missing.status == "error" and "no parameter 'country'" in missing.message


def test_contains_all_any_and_case() -> None:
    both = Contains(["refund", "order 42"])(output="Refund issued for order 42")
    assert (both.score, both.passed) == (0.5, False)
    assert both.message == "missing: 'refund'"
    assert Contains(["refund", "order 42"], case_sensitive=False)(output="Refund issued for order 42").passed
    anyone = Contains(["sorry", "order 42"], mode="any")(output="Refund issued for order 42")
    assert (anyone.score, anyone.message) == (1.0, "found 'order 42'")
    assert Contains()(output="hello world", expected="world").passed
    assert Contains(name="mentions_refund")(output="x", expected="refund").name == "mentions_refund"


def test_levenshtein_and_numeric_diff() -> None:
    assert Levenshtein()(output="hello wrld", expected="hello world").score == pytest.approx(10 / 11)
    assert NumericDiff()(output="42", expected=42).score == 1.0
    near = NumericDiff()(output=" 40 ", expected="50")
    assert near.score == pytest.approx(1 - 10 / 90)  # 1 - difference / (sum of magnitudes)
    assert NumericDiff()(output="forty", expected=40).status == "error"


def test_json_diff_scores_each_key_and_fails_on_output_that_is_not_json() -> None:
    half = JSONDiff()(output='{"id": 7, "status": "open"}', expected={"id": 7, "status": "closed"})
    assert 0.5 <= (half.score or 0) < 1.0
    assert JSONDiff()(output={"id": 7}, expected='{"id": 7}').score == 1.0
    broken = JSONDiff()(output="{'id': 7", expected={"id": 7})
    assert (broken.passed, broken.status) == (False, "error")
    assert "output is not JSON" in broken.message


def test_json_validity_with_and_without_a_schema() -> None:
    schema = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
    assert JSONValidity()(output='{"id": "x"}').passed
    assert not JSONValidity()(output="{id: 1}").passed
    assert JSONValidity(schema)(output='{"id": 3}').passed
    assert not JSONValidity(schema)(output='{"id": "x"}').passed


def test_semantic_list_contains_pairs_near_items() -> None:
    score = SemanticListContains()(output='["apple", "banana"]', expected=["appel", "banana"])
    assert score.score == pytest.approx(0.8)
    assert SemanticListContains()(output="apple", expected=["apple"]).status == "error"


def test_the_seeds_custom_scorer_on_a_case() -> None:
    @Scorer
    def word_count_under_100(scenario: Case) -> Score:
        words = len((scenario.agent_output or "").split())
        return Score(
            name="word_count_under_100",
            score=1.0 if words < 100 else 0.0,
            passed=words < 100,
            message=f"{words} words",
        )

    short = word_count_under_100(output="three short words")
    assert (short.passed, short.message) == (True, "3 words")
    assert not word_count_under_100(output="word " * 150).passed


def test_a_huge_output_is_scored_quickly_and_malformed_ones_fail() -> None:
    huge = "x" * (10 * 1024 * 1024)
    started = time.monotonic()
    results = [
        ExactMatch()(output=huge, expected="x"),
        Contains("needle")(output=huge),
        JSONDiff()(output=huge, expected={"a": 1}),
        JSONValidity()(output=huge),
        NumericDiff()(output=huge, expected=1),
    ]
    assert time.monotonic() - started < 10
    assert all(result.passed is False for result in results)
    assert all(len(result.message) <= 500 for result in results)
    assert json.dumps([result.to_dict() for result in results])
