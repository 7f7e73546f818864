"""`forbidden.commands`: regular expressions over the command lines the agent ran. A match is a violation
that quotes the command and the pattern (raw: the engine redacts the finished result); no match passes."""

from __future__ import annotations

from typing import Any

from polarity_keystone.results import ReplicaResult
from polarity_keystone.sandbox import WorkspaceDiff
from polarity_keystone.scoring import RunRecord, check_forbidden, supported_rules
from polarity_keystone.secrets import Redactor, redact_result
from polarity_keystone.spec._models import Forbidden

NO_CHANGES = WorkspaceDiff(added=[], removed=[], modified=[])


def check(patterns: list[str], commands: list[str]) -> tuple[bool, str, dict[str, Any]]:
    (result,) = check_forbidden(Forbidden(commands=patterns), RunRecord(NO_CHANGES, commands=commands))
    assert result.rule == "commands"
    return result.violated, result.details, result.evidence


def test_commands_is_a_registered_rule() -> None:
    assert "commands" in supported_rules()


def test_a_matching_command_is_a_violation_with_the_command_and_pattern() -> None:
    violated, details, evidence = check(
        [r"rm\s+-rf", "git push"], ["ls", "sh -c ls; rm -rf build", "rm -rf build", "git status"]
    )

    assert violated
    assert details == (
        r"agent ran a forbidden command matching /rm\s+-rf/: sh -c ls; rm -rf build"
        "; 1 more matching command(s)"
    )
    assert evidence == {
        "commands": [
            {"command": "sh -c ls; rm -rf build", "pattern": r"rm\s+-rf"},
            {"command": "rm -rf build", "pattern": r"rm\s+-rf"},
        ]
    }


def test_each_command_counts_once_under_the_first_pattern_it_matches_ignoring_case() -> None:
    violated, _, evidence = check(["git push", "--force"], ["GIT PUSH --force origin main"])

    assert violated
    assert evidence == {"commands": [{"command": "GIT PUSH --force origin main", "pattern": "git push"}]}


def test_no_match_passes_and_counts_the_commands() -> None:
    assert check(["rm -rf"], ["ls", "rm -r build", "git status"])[:2] == (
        False,
        "3 command(s), none forbidden",
    )
    assert check([], ["rm -rf /"])[:2] == (False, "1 command(s), none forbidden")


def test_secret_values_are_redacted_from_details_and_evidence() -> None:
    token = "sk_live_0123456789"
    (result,) = check_forbidden(
        Forbidden(commands=["curl"]),
        RunRecord(NO_CHANGES, commands=[f"curl -H 'Authorization: Bearer {token}' https://api.example.com"]),
    )
    replica = ReplicaResult(replica=0, seed=0, status="fail", forbidden_checks=[result])
    (redacted,) = redact_result(replica, Redactor({"TOKEN": token})).forbidden_checks
    violated, details, evidence = redacted.violated, redacted.details, redacted.evidence

    assert violated
    assert token not in details
    assert token not in str(evidence)
    assert evidence["commands"][0]["command"] == "curl -H 'Authorization: Bearer ***' https://api.example.com"


def test_evidence_keeps_the_first_twenty_matches() -> None:
    violated, details, evidence = check(["rm"], [f"rm file{index}" for index in range(25)])

    assert violated
    assert len(evidence["commands"]) == 20
    assert details.endswith("; 24 more matching command(s)")
