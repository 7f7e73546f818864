"""The scorer base every scorer shares: what a custom `@Scorer` function may return, how a case is
built from an Eval row or a finished scenario, and that a scorer's own failure is a failed score."""

from __future__ import annotations

import pytest

from polarity_keystone.results import ScenarioResult
from polarity_keystone.scorers import Case, Score, Scorer
from polarity_keystone.scorers._base import invariant_key, snake_case


@Scorer
def word_count_under_100(scenario: Case) -> Score:
    words = len((scenario.agent_output or "").split())
    return Score(name="word_count_under_100", score=1.0 if words < 100 else 0.0, message=f"{words} words")


def _scenario(output: str, **parameters: object) -> ScenarioResult:
    return ScenarioResult(scenario_id="s1", status="pass", agent_output=output, parameters=dict(parameters))


def test_the_seed_custom_scorer_scores_a_finished_scenario() -> None:
    short = word_count_under_100(_scenario("three short words"))
    long = word_count_under_100(_scenario("word " * 150))
    assert (short.score, short.passed, short.message) == (1.0, True, "3 words")
    assert (long.score, long.passed, long.status) == (0.0, False, "fail")


def test_a_case_from_a_scenario_reads_input_and_expected_from_its_parameters() -> None:
    case = Case.from_scenario(_scenario("hi", input={"id": "alice"}, expected="Renewal", tier="pro"))
    assert case.input == {"id": "alice"}
    assert case.expected == "Renewal"
    assert case.parameters["tier"] == "pro"
    assert case.scenario_id == "s1"  # read through to the scenario, as a ScenarioResult scorer expects
    with pytest.raises(AttributeError):
        _ = case.no_such_field


def test_a_float_or_bool_result_passes_at_the_threshold() -> None:
    half = Scorer(lambda case: 0.5, name="half")
    never = Scorer(lambda case: False, name="never")
    assert half(output="x") == Score("half", 0.5, passed=True)
    assert never(output="x").passed is False


def test_a_raising_scorer_gives_a_failed_score_with_a_short_reason() -> None:
    def explode(case: Case) -> float:
        raise ValueError("bad output: " + case.agent_output)

    score = Scorer(explode)(output="x" * 1_000_000)
    assert score.status == "error"
    assert score.passed is False
    assert score.message.startswith("ValueError: bad output: xxx")
    assert len(score.message) <= 500


def test_a_skipped_score_is_never_a_pass() -> None:
    skipped = Score("judge", None, skipped=True, message="OPENAI_API_KEY is not set")
    assert Scorer(lambda case: skipped)(output="x") is skipped
    assert skipped.status == "skipped"
    assert not skipped.failed  # skipped fails no case either: it was not judged
    assert Score("judge", 0.2, passed=False).failed
    assert skipped.as_invariant()["passed"] is False


def test_a_score_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        Score("x", 1.5)


def test_a_score_round_trips_through_a_dict() -> None:
    score = Score("exact_match", 1.0, passed=True, message="equal", metadata={"a": 1})
    assert Score.from_dict(score.to_dict()) == score
    assert score.as_invariant() == {
        "name": "exact_match",
        "passed": True,
        "score": 1.0,
        "message": "equal",
        "weight": 1.0,
    }


def test_names() -> None:
    assert [snake_case(n) for n in ("SQLJudge", "AnswerRelevancy", "JSONDiff", "Factuality")] == [
        "sql_judge",
        "answer_relevancy",
        "json_diff",
        "factuality",
    ]
    assert invariant_key("file_exists:out.txt") == "file_exists_out.txt"
    assert invariant_key("a/b c") == "a_b_c"


def test_a_scorer_refuses_what_it_cannot_score() -> None:
    with pytest.raises(TypeError, match="not int"):
        word_count_under_100(3)  # type: ignore[arg-type]
