"""`ks gate` on an eval file, end to end on the embedded server: an Eval over a 20-record dataset
(created through `ks.datasets`) with two heuristic scorers and one judge scorer, whose judge is the
local fake model server of the judge tests (real HTTP on loopback). The run on main is the baseline; a
pull request whose task regresses exits 1 naming the eval in JUnit and the summary, one equal to the
baseline exits 0. Nothing runs in Docker. And the decision itself: an Eval's cases are also tested
together, and adaptive replicas never grow an Eval."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.gate import Policy, SpecRun, decide
from polarity_keystone.gate._adaptive import design_for
from polarity_keystone.gate._pipeline import expand_specs
from tests.gate.gate_env import GateRun, gate, github_env
from tests.gate.gate_results import run
from tests.scoring.test_llm_judge import FakeModel
from tests.server.test_server_scoring import configured_judge

EVAL_NAME = "support-answers"
EVAL_FILE = f"""
import os

from polarity_keystone import Eval
from polarity_keystone.scorers import Contains, ExactMatch, Factuality


def answer(question):
    number = int(question.split()[-1])
    if os.environ.get("SUPPORT_TASK_BROKEN") == "1" and number % 2:
        return "I am not sure"
    return f"ticket {{number}} is resolved"


Eval(
    "{EVAL_NAME}",
    data=os.environ["SUPPORT_DATASET"],
    task=answer,
    scores=[ExactMatch(), Contains("resolved"), Factuality()],
)
"""
CONSISTENT = '{"reasons": "The answer matches the expert answer.", "choice": "C"}'
"""The judge's tool call: Factuality's choice C, the output is consistent with the expected answer."""


@pytest.fixture
def judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeModel]:
    with configured_judge(monkeypatch) as model:
        yield model


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with the eval file and a 20-record dataset on its embedded server's store."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "support.py").write_text(EVAL_FILE)
    with Keystone.local(tmp_path / ".keystone") as ks:
        dataset = ks.datasets.create("support tickets")
        records = [
            {"input": f"status of ticket {n}", "expected": f"ticket {n} is resolved"} for n in range(20)
        ]
        ks.datasets.add_records(dataset.id, records)
    monkeypatch.setenv("SUPPORT_DATASET", dataset.id)
    return tmp_path


def gate_evals(checkout: Path, judge: FakeModel, run_id: str, **environ: str) -> GateRun:
    judge.answer(*[CONSISTENT] * 20)
    env = {**github_env(checkout, run_id=run_id), **environ}
    return gate(checkout, env, "--specs", "evals/*.py", "--baseline", "branch:main", "--comment", "off")


def test_an_eval_file_is_gated_against_the_baseline_from_main(
    checkout: Path, judge: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    push = checkout / "push-event.json"
    push.write_text("{}")
    on_main = gate_evals(
        checkout,
        judge,
        "1",
        GITHUB_HEAD_REF="",
        GITHUB_REF="refs/heads/main",
        GITHUB_REF_NAME="main",
        GITHUB_EVENT_PATH=str(push),
    )
    assert on_main.code == 0, on_main.log
    assert "20 of 20 cases passed" in on_main.log
    assert len(judge.requests) == 20  # the judge graded every case, over real HTTP

    monkeypatch.setenv("SUPPORT_TASK_BROKEN", "1")
    regressed = gate_evals(checkout, judge, "2")
    assert regressed.code == 1, regressed.log
    assert "10 of 20 cases passed" in regressed.log
    suite = ET.fromstring(regressed.junit).find("testsuite")
    assert suite is not None and EVAL_NAME in (suite.get("name") or ""), regressed.junit
    assert suite.find("testcase/failure") is not None
    summary = (checkout / "keystone-summary.md").read_text()
    assert EVAL_NAME in summary and "regressed" in summary.lower()
    (run,) = regressed.results["runs"]
    assert run["spec_id"] == EVAL_NAME and run["metadata"]["branch"] == "feature"

    monkeypatch.delenv("SUPPORT_TASK_BROKEN")
    equal = gate_evals(checkout, judge, "3")
    assert equal.code == 0, equal.log
    # A re-run of the same job attempt: the cases run again, into a new experiment (the attempt's key
    # would answer the completed one, which takes no more cases).
    again = gate_evals(checkout, judge, "3")
    assert again.code == 0, again.log
    assert "this job attempt already completed experiment" in again.log
    assert again.outputs["experiment-id"] != equal.outputs["experiment-id"]


def test_an_eval_file_that_raises_is_invalid_input_naming_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "broken.py").write_text("import os\n\nos.environ['NO_SUCH_DATASET']\n")
    result = gate(tmp_path, github_env(tmp_path), "--specs", "evals/*.py", "--comment", "off")
    assert result.code == 2, result.log
    assert "evals/broken.py:3: KeyError: 'NO_SUCH_DATASET'" in result.log
    (problem,) = result.results["problems"]
    assert problem["file"] == "evals/broken.py" and problem["line"] == 3


def test_an_evals_cases_are_also_tested_together_and_never_grow() -> None:
    """Each case is a one-replica scenario: alone none can show a drop, together 10 of 20 lost is one."""
    cases = {f"case-{n}": "P" for n in range(20)}
    broken = {case: "F" if n % 2 else "P" for n, case in enumerate(cases)}
    baseline = run(cases, spec_id="faq", experiment_id="exp-base")
    candidate = run(broken, spec_id="faq")
    policy = Policy(fail_on=frozenset())  # the scorers are no gate invariants: only the drop can block
    as_eval = decide([SpecRun("faq", candidate, baseline, grows=False)], policy)
    (spec,) = as_eval.specs
    assert spec.outcome == "regressed" and as_eval.exit_code == 1
    assert spec.reasons[0].startswith("regressed: its cases' pass rate 20/20")
    assert {scenario.outcome for scenario in spec.scenarios} == {"passed"}
    as_spec = decide([SpecRun("faq", candidate, baseline)], policy)
    assert as_spec.specs[0].outcome == "passed"  # a spec's scenarios are not pooled per spec
    assert design_for([SpecRun("faq", candidate, baseline, grows=False)], 80).looks == (80,)


def test_evals_are_corrected_together_and_name_only_significant_drops() -> None:
    """An Eval that lost 6 of 20 cases (p=0.016) beside one unchanged is named regressed; ten that each
    lost 6 of 20 are not named one by one (ten hypotheses: none significant among them), and the gate
    still blocks on all of them together."""
    cases = {f"case-{n}": "P" for n in range(20)}
    lost = {case: "F" if n < 6 else "P" for n, case in enumerate(cases)}
    policy = Policy(fail_on=frozenset())

    def evals(outcomes: list[dict[str, str]]) -> list[SpecRun]:
        return [
            SpecRun(
                f"eval-{i}",
                run(cand, spec_id=f"eval-{i}"),
                run(cases, spec_id=f"eval-{i}", experiment_id=f"exp-base-{i}"),
                grows=False,
            )
            for i, cand in enumerate(outcomes)
        ]

    two = decide(evals([lost, cases]), policy)
    assert [spec.outcome for spec in two.specs] == ["regressed", "passed"]
    assert two.specs[0].reasons[0].startswith("regressed: its cases' pass rate 20/20")
    ten = decide(evals([lost] * 10), policy)
    assert {spec.outcome for spec in ten.specs} == {"passed"}
    assert (ten.suite_outcome, ten.exit_code) == ("regressed", 1)


def test_a_glob_runs_python_files_only_when_it_ends_in_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An eval file is code run in the CI job: a pull request adding `specs/evil.py` under a `specs/*`
    glob must not get it executed, while `evals/*.py` and a file named outright do run."""
    monkeypatch.chdir(tmp_path)
    for name in ("specs/a.yaml", "specs/evil.py", "evals/eval_one.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    assert expand_specs(["specs/*"]) == [Path("specs/a.yaml")]
    assert expand_specs(["evals/*.py", "specs/evil.py"]) == [Path("evals/eval_one.py"), Path("specs/evil.py")]
