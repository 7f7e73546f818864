"""`Eval` run locally (no client configured): rows run at the concurrency asked and no more, a raising
task fails its case only, async tasks, the summary's figures against a hand computation, data from a
callable, the seed's scorers (a judge without a key skipped), the ambient context's metadata and result
hook; and the README snippet against a served server."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import polarity_keystone
from polarity_keystone.scorers import Case, ExactMatch, Factuality, Score, Scorer
from polarity_keystone.sdk import Eval, EvalResult, EvalSummary, eval_context
from tests.scorers.conftest import clear_judge_env
from tests.sdk.readme_snippets import run_readme_snippet
from tests.sdk.sdk_servers import KeystoneServer


@pytest.fixture(autouse=True)
def no_configured_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYSTONE_API_KEY", raising=False)


@Scorer
def exact(case: Case) -> bool:
    return bool(case.output == case.expected)


@Scorer
def closeness(case: Case) -> float:
    """1 for the expected number, less the further the output is from it."""
    return max(0.0, 1.0 - abs(float(case.output) - float(case.expected)) / 10)


@Scorer
def unjudged(case: Case) -> Score:
    return Score("unjudged", None, skipped=True, message="no judge configured")


def test_the_seed_names_import_from_the_package() -> None:
    assert polarity_keystone.Eval is Eval
    assert polarity_keystone.EvalSummary is EvalSummary
    assert polarity_keystone.eval_context is eval_context


def test_no_more_rows_run_at_once_than_max_concurrency() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def task(value: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return value

    rows = [{"input": i, "expected": i} for i in range(12)]
    result = Eval("capped", data=rows, task=task, scores=[exact], max_concurrency=3)
    assert most == 3
    assert [case.output for case in result.cases] == list(range(12))  # in the data's order
    assert (result.passed, result.failed) == (12, 0)
    with pytest.raises(ValueError, match="max_concurrency"):
        Eval("none", data=rows, task=task, scores=[exact], max_concurrency=0)


def test_a_raising_task_fails_its_case_not_the_eval() -> None:
    def task(value: int) -> int:
        if value == 2:
            raise RuntimeError("the agent fell over on two")
        return value

    result = Eval("raising", data=[{"input": i, "expected": i} for i in range(4)], task=task, scores=[exact])
    broken = result.cases[2]
    assert broken.error is not None
    assert broken.error.rstrip().endswith("RuntimeError: the agent fell over on two")
    assert "in task" in broken.error  # the traceback's tail names where it raised
    assert (broken.output, broken.scores, broken.passed) == (None, (), False)
    assert (result.passed, result.failed) == (3, 1)
    assert result.summary["exact"].count == 3  # the errored case has no scores


def test_an_async_task_is_awaited() -> None:
    async def task(value: str) -> str:
        await asyncio.sleep(0.01)
        return value.upper()

    result = Eval(
        "async",
        data=[{"input": "a", "expected": "A"}, {"input": "b", "expected": "B"}],
        task=task,
        scores=[exact],
    )
    assert [case.output for case in result.cases] == ["A", "B"]
    assert result.passed == 2
    assert all(case.wall_ms >= 10 for case in result.cases)


def test_the_summary_matches_a_hand_computation() -> None:
    # outputs 10, 12, 15, 30 against 10: closeness 1.0, 0.8, 0.5, 0.0; exact 1, 0, 0, 0
    rows = [{"input": value, "expected": 10} for value in (10, 12, 15, 30)]
    result = Eval("figures", data=rows, task=lambda value: value, scores=[closeness, exact, unjudged])
    close = result.summary["closeness"]
    assert close.count == 4
    assert close.mean == pytest.approx((1.0 + 0.8 + 0.5 + 0.0) / 4)
    # sorted 0.0, 0.5, 0.8, 1.0: p50 sits halfway between 0.5 and 0.8; p95 at position 2.85
    assert close.p50 == pytest.approx(0.65)
    assert close.p95 == pytest.approx(0.8 + 0.85 * 0.2)
    exact_figures = result.summary["exact"]
    assert (exact_figures.mean, exact_figures.p50, exact_figures.count) == (0.25, 0.0, 4)
    assert exact_figures.p95 == pytest.approx(0.85)
    assert "unjudged" not in result.summary  # skipped scores are not figures
    # a skipped score neither passes nor fails a case: only the first case passes every judged score
    assert [case.passed for case in result.cases] == [True, False, False, False]


def test_the_seed_scorers_score_an_eval_and_a_judge_without_a_key_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_judge_env(monkeypatch)
    rows = [{"input": "Paris", "expected": "Paris"}, {"input": "Lyon", "expected": "Paris"}]
    result = Eval("seed-scorers", data=rows, task=lambda city: city, scores=[ExactMatch(), Factuality()])
    assert (result.summary["exact_match"].mean, result.summary["exact_match"].count) == (0.5, 2)
    assert "factuality" not in result.summary
    assert [[score.status for score in case.scores] for case in result.cases] == [
        ["pass", "skipped"],
        ["fail", "skipped"],
    ]
    assert (result.passed, result.failed) == (1, 1)  # a skipped judge neither passes nor fails a case


def test_data_from_a_callable_and_plain_functions_as_scorers() -> None:
    def rows() -> list[dict[str, Any]]:
        return [{"input": "x", "expected": "x", "metadata": {"source": "crm"}, "tags": ["pro"], "id": 7}]

    result = Eval("callable", data=rows, task=lambda value: value, scores=[lambda case: case.output == "x"])
    [case] = result.cases
    assert (case.id, case.metadata, case.tags, case.passed) == ("7", {"source": "crm"}, ("pro",), True)
    assert list(result.summary) == ["<lambda>"]
    with pytest.raises(ValueError, match="row 0"):
        Eval("bad", data=[{"question": "x"}], task=lambda value: value, scores=[exact])
    with pytest.raises(ValueError, match="needs a client"):
        Eval("dataset", data="ds_123", task=lambda value: value, scores=[exact])


def test_the_ambient_context_hears_of_each_result() -> None:
    heard: list[EvalResult] = []
    with eval_context(metadata={"branch": "main"}, on_result=heard.append):
        first = Eval("one", data=[{"input": 1, "expected": 1}], task=lambda value: value, scores=[exact])
        with eval_context(on_result=lambda result: None):
            Eval("inner", data=[{"input": 1}], task=lambda value: value, scores=[])
    Eval("outside", data=[{"input": 1}], task=lambda value: value, scores=[])
    assert heard == [first]
    assert first.experiment_id is None and first.run_results is None  # nothing configured: not recorded


def test_the_readme_snippet_prints_what_its_comments_say(
    socket_server: KeystoneServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_judge_env(monkeypatch)
    printed, expected = run_readme_snippet("Eval", socket_server, monkeypatch)
    assert printed == expected
    assert len(printed) == 4
