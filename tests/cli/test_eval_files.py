"""`ks eval run FILE.py` on the embedded server (in the working directory's .keystone/, nothing in
Docker): per Eval a table of its scorers, its failing cases with their scores' messages (secrets of the
environment masked) and its experiment, recorded on the server; exit 0 when every case passed, 1 when a
case failed, 2 when a file raised (its line and traceback tail) or ran no Eval."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from polarity_keystone import Keystone, cli
from tests.sdk.readme_snippets import run_readme_snippet

SECRET = "sk-live-cli-4242"

EVAL_FILE = """
import os

from polarity_keystone import Eval
from polarity_keystone.scorers import Score, Scorer


def polite(case):
    ok = "please" in case.output
    why = "" if ok else f"rude reply sent with {os.environ['OPENAI_API_KEY']}"
    return Score(name="polite", score=float(ok), message=why)


Eval(
    "replies",
    data=[{"id": "greet", "input": "hello"}, {"id": "ask", "input": "please help"}],
    task=lambda text: text.upper().lower(),
    scores=[Scorer(polite)],
)
"""

Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def ks(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Invoke:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSTONE_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setattr(cli, "err", Console(stderr=True, highlight=False, width=1000))

    def invoke(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def test_a_failing_case_exits_1_with_its_scores_and_the_eval_lands_as_an_experiment(
    ks: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "evals.py").write_text(EVAL_FILE)
    code, out, err = ks("eval", "run", "evals.py", "--json")
    assert code == 1, err
    assert "polite" in err and "0.50" in err  # the scorer's row: mean 0.50 of 2 scores
    assert "1 cases passed, 1 failed" in err
    assert "✗ case greet" in err and "polite 0.00: rude reply sent with ***" in err
    assert SECRET not in err and "case ask" not in err
    (results,) = [json.loads(out)]
    assert results["spec_id"] == "replies" and len(results["scenarios"]) == 2
    assert results["experiment_id"] in err
    with Keystone.local(tmp_path / ".keystone") as client:
        assert client.experiments.get(results["experiment_id"]).spec_id == "replies"


def test_a_passing_eval_exits_0(ks: Invoke, tmp_path: Path) -> None:
    (tmp_path / "evals.py").write_text(EVAL_FILE.replace('"hello"', '"hello please"'))
    code, _, err = ks("eval", "run", "evals.py")
    assert code == 0, err
    assert "2 cases passed, 0 failed" in err


def test_a_raising_file_or_one_without_an_eval_exits_2_naming_its_line(ks: Invoke, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import os\n\nos.environ['NO_SUCH_VARIABLE']\n")
    (tmp_path / "empty.py").write_text("VALUE = 1\n")
    code, _, err = ks("eval", "run", "broken.py", "empty.py")
    assert code == 2, err
    assert "broken.py:3: KeyError: 'NO_SUCH_VARIABLE'" in err
    assert "empty.py: ran no Eval" in err


def test_the_readme_eval_file_prints_what_its_comments_say(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYSTONE_API_KEY", raising=False)  # not recorded: nothing to connect to
    printed, expected = run_readme_snippet("Evals in CI", None, monkeypatch)
    assert printed == expected
