"""The sandbox-family scorers: each serialises as the spec invariant it stands for, with the reference's
keys, and scores a case by the result of that invariant: the one a finished scenario ran, or the one a
checker runs in a live sandbox now; otherwise it is skipped, never passed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from polarity_keystone import CommandExits, FileContains, FileExists, LLMJudge, SQLEquals
from polarity_keystone.results import InvariantResult, ScenarioResult
from polarity_keystone.scorers import Case, SandboxChecker
from polarity_keystone.spec import Invariant


def test_each_scorer_serialises_as_its_spec_invariant_with_the_reference_keys() -> None:
    judge = LLMJudge("the note explains the refund", rubric={"pass": "says why", "fail": "does not"})
    assert FileExists("out.txt").to_invariant() == {
        "file_exists_out.txt": {
            "description": "file_exists:out.txt",
            "check": {"type": "file_exists", "path": "out.txt"},
        }
    }
    assert FileContains("notes/a.md", "refund", pattern="(?i)damaged").to_invariant() == {
        "file_contains_notes_a.md": {
            "description": "file_contains:notes/a.md",
            "check": {
                "type": "file_content",
                "path": "notes/a.md",
                "contains": "refund",
                "pattern": "(?i)damaged",
            },
        }
    }
    assert CommandExits("pytest -q", 1).to_invariant()["command_exits_pytest_-q"]["check"] == {
        "type": "command_exit",
        "command": "pytest -q",
        "exit_code": 1,
    }
    assert SQLEquals("db", "SELECT 1", expected=1, name="one").to_invariant() == {
        "one": {
            "description": "one",
            "check": {"type": "sql", "service": "db", "query": "SELECT 1", "equals": 1},
        }
    }
    assert judge.to_invariant()["llm_judge"]["check"] == {
        "type": "llm_as_judge",
        "criteria": "the note explains the refund",
        "rubric": {"pass": "says why", "fail": "does not"},
        "input_from": "workspace",
        "model": "paragon-fast",
        "pass_threshold": 0.5,
    }
    assert list(SQLEquals("db", "SELECT 1", 1).to_invariant()) == ["sql_equals_db_SELECT_1"]
    for scorer in (FileExists("a"), FileContains("a", not_contains="b"), CommandExits("true"), judge):
        for invariant in scorer.to_invariant().values():
            Invariant.model_validate(invariant)  # what a spec's loader accepts


def test_a_scorer_refuses_what_its_check_could_never_run() -> None:
    with pytest.raises(ValueError, match="at least one of"):
        FileContains("a.txt")
    with pytest.raises(ValueError, match="once"):
        SQLEquals("db", "SELECT 1")
    with pytest.raises(ValueError, match="once"):
        SQLEquals("db", "SELECT 1", 1, expected=1)


def _scenario(*invariants: InvariantResult) -> ScenarioResult:
    return ScenarioResult(scenario_id="s1", status="pass", invariants=list(invariants))


def test_a_finished_scenario_answers_with_the_invariant_the_spec_ran() -> None:
    ran = InvariantResult(
        name="file_exists_out.txt",
        passed=False,
        score=0.0,
        message="out.txt does not exist",
        evidence={"path": "out.txt"},
    )
    skipped_judge = InvariantResult(name="llm_judge", passed=False, skipped=True, message="no judge key")

    missing = FileExists("out.txt")(_scenario(ran))
    judged = LLMJudge("good")(_scenario(skipped_judge))
    absent = CommandExits("true")(_scenario(ran))

    assert (missing.status, missing.score, missing.message) == ("fail", 0.0, "out.txt does not exist")
    assert missing.metadata == {"invariant": "file_exists_out.txt", "evidence": {"path": "out.txt"}}
    assert (judged.status, judged.passed, judged.message) == ("skipped", None, "no judge key")
    assert absent.status == "skipped" and "add this scorer's to_invariant() to the spec" in absent.message


class _RecordingChecker:
    """A checker answering as the server's check route does, keeping what it was asked."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def check(self, sandbox_id: str, invariants: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        self.asked.append((sandbox_id, {key: dict(value) for key, value in invariants.items()}))
        return [self.answer]


def test_a_live_sandbox_case_asks_its_checker_and_any_other_case_is_skipped() -> None:
    checker = _RecordingChecker({"name": "command_exits_make", "passed": True, "score": 1.0, "message": "ok"})
    scorer = CommandExits("make")
    as_protocol: SandboxChecker = checker

    live = scorer(Case(sandbox_id="sb-1", sandbox_checker=as_protocol))
    bare = scorer(output="done")
    no_checker = scorer(sandbox_id="sb-1")

    assert (live.status, live.score) == ("pass", 1.0)
    assert checker.asked == [("sb-1", scorer.to_invariant())]
    assert bare.status == "skipped" and bare.passed is None
    assert no_checker.status == "skipped"
