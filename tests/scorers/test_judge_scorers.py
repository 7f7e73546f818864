"""The LLM-judge, RAG and embedding scorers against a local fake model server (a real HTTP server on
127.0.0.1 speaking OpenAI's chat completions with tool calls, embeddings and moderations, and
Anthropic's Messages API with tool_use), configured from the environment as a user would: the score
each family reads from the model's answer, what reached the model, skipped (never passed) without a
key, the key never in a score, and a huge output capped before it reaches the model."""

from __future__ import annotations

import json

import autoevals
import autoevals.oai
import pytest

from polarity_keystone import (
    AnswerCorrectness,
    AnswerRelevancy,
    AnswerSimilarity,
    Battle,
    ClosedQA,
    ContextEntityRecall,
    ContextPrecision,
    ContextRecall,
    ContextRelevancy,
    EmbeddingSimilarity,
    Factuality,
    Faithfulness,
    Moderation,
    Security,
    SQLJudge,
    openai_embedder,
)
from polarity_keystone.scorers import Score, Scorer, presets
from polarity_keystone.spec import Invariant
from tests.scorers.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.scoring.test_llm_judge import FakeModel, Reply

CONTEXT = "Paris is the capital of France. The Eiffel Tower is in Paris."
QUESTION = "What is the capital of France?"


@pytest.fixture(autouse=True)
def autoevals_never_loads_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("autoevals tried to import the openai package")

    monkeypatch.setattr(autoevals.oai, "get_openai_module", refuse)


def choice(letter: str, reason: str = "The answers agree.") -> str:
    return json.dumps({"choice": letter, "reasons": [reason]})


def assert_keyless(score: Score) -> None:
    text = json.dumps(score.to_dict())
    assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text


def test_factuality_reads_the_choice_and_rationale_of_the_tool_call(openai_judge: FakeModel) -> None:
    openai_judge.answer(choice("C", "The output states the same capital."))
    score = Factuality()(input=QUESTION, output="Paris", expected="Paris, France")
    assert (score.score, score.passed, score.message) == (1.0, True, "The output states the same capital.")
    assert score.metadata["choice"] == "C" and score.metadata["model"] == "gpt-4o-mini"
    request = openai_judge.requests[-1]
    assert request.path == "/chat/completions"
    assert request.body["tool_choice"] == {"type": "function", "function": {"name": "select_choice"}}
    assert "Paris, France" in request.body["messages"][0]["content"]
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert_keyless(score)

    openai_judge.answer(choice("D", "They disagree."))
    wrong = Factuality()(input=QUESTION, output="Lyon", expected="Paris")
    assert (wrong.score, wrong.passed) == (0.0, False)


def test_template_fields_come_from_the_scorer_or_the_case(openai_judge: FakeModel) -> None:
    openai_judge.answer(choice("Y", "meets it"), choice("Yes"))
    closed = ClosedQA(criteria="Names a city")(input=QUESTION, output="Paris")
    assert closed.score == 1.0
    assert "Names a city" in openai_judge.requests[-1].body["messages"][0]["content"]
    battle = Battle()(output="Paris", expected="France", instructions="Name the capital")
    assert battle.score == 1.0
    assert Battle()(output="Paris", expected="x").status == "error"  # no instructions anywhere
    with pytest.raises(TypeError, match="takes no language"):
        SQLJudge(language="fr")


def test_the_anthropic_judge_answers_through_tool_use(anthropic_judge: FakeModel) -> None:
    anthropic_judge.answer(choice("C"))
    score = Factuality()(input=QUESTION, output="Paris", expected="Paris")
    assert (score.score, score.metadata["provider"]) == (1.0, "anthropic")
    request = anthropic_judge.requests[-1]
    assert request.path == "/v1/messages" and request.headers["x-api-key"] == ANTHROPIC_KEY
    assert request.body["model"] == "claude-3-5-haiku-latest"
    assert request.body["tool_choice"] == {"type": "tool", "name": "select_choice"}
    assert request.body["tools"][0]["name"] == "select_choice" and "input_schema" in request.body["tools"][0]
    assert_keyless(score)


def test_without_any_key_every_model_scorer_is_skipped_naming_the_variable(no_keys: None) -> None:
    scorers: list[Scorer] = [
        *presets.qa()[2:],
        *presets.rag(),
        *presets.safety(),
        AnswerSimilarity(),
        EmbeddingSimilarity(),
    ]
    for scorer in scorers:
        score = scorer(input=QUESTION, output="Paris", expected="Paris", context=CONTEXT)
        assert (score.skipped, score.passed, score.status) == (True, None, "skipped"), scorer
        assert "OPENAI_API_KEY" in score.message, score


def test_with_only_anthropic_moderation_and_embeddings_are_skipped(anthropic_judge: FakeModel) -> None:
    for scorer in (Moderation(), EmbeddingSimilarity(), AnswerSimilarity()):
        score = scorer(output="Paris", expected="Paris")
        assert score.skipped and "set OPENAI_API_KEY" in score.message, score
    assert "Moderation needs an OpenAI-compatible endpoint" in Moderation()(output="x").message
    assert not anthropic_judge.requests


def test_moderation_and_security(openai_judge: FakeModel) -> None:
    clean = Moderation()(output="Have a nice day")
    assert (clean.score, clean.passed, clean.message) == (1.0, True, "not flagged by moderation")
    flagged = Moderation()(output="FLAG this")
    assert (flagged.score, flagged.passed) == (0.0, False)
    assert openai_judge.requests[-1].path == "/moderations"
    openai_judge.answer(choice("No", "No secrets or injections."))
    assert Security()(output="SELECT 1").passed


def test_rag_scorers_read_the_models_extractions(openai_judge: FakeModel) -> None:
    case = {"input": QUESTION, "output": "Paris is the capital.", "expected": "Paris", "context": CONTEXT}
    openai_judge.answer(
        json.dumps({"sentences": [{"sentence": "Paris is the capital of France.", "reasons": []}]})
    )
    relevancy = ContextRelevancy()(**case)
    assert relevancy.score == pytest.approx(len("Paris is the capital of France.") / len(CONTEXT))

    attributed = [{"statement": "Paris", "attributed": 1, "reason": "in context"}]
    openai_judge.answer(json.dumps({"statements": [*attributed, {**attributed[0], "attributed": 0}]}))
    assert ContextRecall()(**case).score == 0.5

    openai_judge.answer(json.dumps({"reason": "useful", "verdict": 1}))
    assert ContextPrecision()(**case).score == 1.0

    openai_judge.answer(*[json.dumps({"entities": ["Paris", "France"]})] * 2)
    assert ContextEntityRecall()(**case).score == 1.0

    verdicts = [
        {"statement": "a", "verdict": 1, "reason": ""},
        {"statement": "b", "verdict": 0, "reason": ""},
    ]
    openai_judge.answer(json.dumps({"statements": ["a", "b"]}), json.dumps({"faithfulness": verdicts}))
    faithful = Faithfulness()(**case)
    assert (faithful.score, faithful.metadata["statements"]) == (0.5, ["a", "b"])
    tools = [request.body["tool_choice"]["function"]["name"] for request in openai_judge.requests[-2:]]
    assert tools == ["extract_statements", "judge_statements"]


def test_answer_scorers_use_chat_and_embeddings(openai_judge: FakeModel) -> None:
    same = AnswerSimilarity()(output="Paris", expected="Paris")
    assert same.score == pytest.approx(1.0)
    assert not autoevals.EmbeddingSimilarity._CACHE  # the vectors are not kept after the score
    assert openai_judge.requests[-1].path == "/embeddings"
    assert openai_judge.requests[-1].body["model"] == "text-embedding-3-small"

    openai_judge.answer(*[json.dumps({"question": QUESTION, "noncommittal": 0})] * 3)
    relevancy = AnswerRelevancy()(input=QUESTION, output="Paris", context=CONTEXT)
    assert relevancy.score == pytest.approx(1.0)

    openai_judge.answer(json.dumps({"TP": ["Paris is the capital"], "FP": [], "FN": []}))
    correct = AnswerCorrectness()(input=QUESTION, output="Paris", expected="Paris")
    assert correct.score == pytest.approx(1.0)


def test_embedding_similarity_with_the_environment_or_an_explicit_embedder(
    openai_judge: FakeModel, no_keys: None
) -> None:
    embedder = openai_embedder(model="embed-small", base_url=openai_judge.url, api_key="sk-explicit-1")
    assert embedder(["ab", "ba"]) == [[2.0, 2.0, *[1.0] * 24]] * 2
    scorer = EmbeddingSimilarity(embedder=embedder)
    assert scorer(output="listen", expected="silent").score == pytest.approx(1.0)
    far = scorer(output="aaaa", expected="zzzz")
    assert far.passed is False and (far.score or 0) < 0.5
    assert openai_judge.requests[-1].body["model"] == "embed-small"
    assert openai_judge.requests[-1].headers["authorization"] == "Bearer sk-explicit-1"
    keyless = EmbeddingSimilarity(embedder=openai_embedder())(output="a", expected="b")
    assert keyless.skipped and "OPENAI_API_KEY" in keyless.message


def test_a_failing_judge_fails_the_score_without_the_key(openai_judge: FakeModel) -> None:
    openai_judge.answer(*[Reply(status=401)] * 4)
    score = Factuality()(input=QUESTION, output="Paris", expected="Paris")
    assert (score.passed, score.status) == (False, "error")
    assert "HTTP 401" in score.message
    assert_keyless(score)
    openai_judge.answer(json.dumps({"choice": "Z"}))
    assert Factuality()(input=QUESTION, output="Paris", expected="Paris").status == "error"


def test_a_huge_output_reaches_the_judge_capped(openai_judge: FakeModel) -> None:
    openai_judge.answer(choice("D"))
    score = Factuality()(input=QUESTION, output="x" * (10 * 1024 * 1024), expected="Paris")
    assert score.passed is False
    sent = len(json.dumps(openai_judge.requests[-1].body))
    assert sent < 64 * 1024


def test_judge_presets_serialise_as_llm_as_judge_invariants() -> None:
    invariant = Factuality(name="facts ok", pass_threshold=0.6).to_invariant()
    check = {
        "type": "llm_as_judge",
        "criteria": Factuality.criteria,
        "model": "paragon-fast",
        "pass_threshold": 0.6,
        "template_key": "factuality",
    }
    assert invariant == {"facts_ok": {"description": "facts ok", "check": check}}
    assert Invariant.model_validate(invariant["facts_ok"]).check.type == "llm_as_judge"
    assert ContextRecall().to_invariant() is None
