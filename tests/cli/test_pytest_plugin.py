"""The pytest plugin for eval files, run by pytest's own pytester: opt-in only, one test per Eval,
a failing case fails its test with the case and its scores in the report, and a raising file is a
collection error naming its line. The plugin is the installed one (its `pytest11` entry point). No
client: the Evals run without recording (KEYSTONE_API_KEY unset)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

EVAL_FILE = """
from polarity_keystone import Eval
from polarity_keystone.scorers import Score, Scorer


def exact(case):
    return Score(name="exact", score=float(case.output == case.expected), message=f"got {case.output!r}")


Eval("greetings", data=[{"input": "hi", "expected": "HI"}, {"input": "yo", "expected": "YO"}],
     task=str.upper, scores=[Scorer(exact)])
Eval("shouting", data=[{"id": "calm", "input": "ok", "expected": "ok"}, {"input": "no", "expected": "NO"}],
     task=str.upper, scores=[Scorer(exact)])
"""


@pytest.fixture
def evals(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("KEYSTONE_API_KEY", raising=False)
    pytester.makepyfile(eval_greetings=EVAL_FILE)
    return pytester


def test_each_eval_is_a_test_failing_with_its_failing_cases(evals: pytest.Pytester) -> None:
    result = evals.runpytest("--keystone-evals", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*eval_greetings.py::greetings PASSED*",
            "*eval_greetings.py::shouting FAILED*",
            "*Eval shouting (not recorded): 1 of 2 cases failed*",
            "*case calm*",
            "*exact 0.00: got 'OK'*",
        ]
    )


def test_eval_files_are_not_collected_without_opting_in(evals: pytest.Pytester) -> None:
    result = evals.runpytest("eval_greetings.py")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_the_ini_option_opts_in(evals: pytest.Pytester) -> None:
    evals.makeini("[pytest]\nkeystone_evals = true\n")
    evals.runpytest().assert_outcomes(passed=1, failed=1)


def test_a_raising_eval_file_is_a_collection_error_naming_its_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(eval_broken="from polarity_keystone import Eval\n\nraise RuntimeError('no data')\n")
    result = pytester.runpytest("--keystone-evals")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*eval_broken.py:3: RuntimeError: no data*"])


def test_a_file_running_no_eval_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(eval_empty="VALUE = 1\n")
    result = pytester.runpytest("--keystone-evals")
    result.stdout.fnmatch_lines(["*eval_empty.py: ran no Eval*"])
