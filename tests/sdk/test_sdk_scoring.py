"""`ks.scoring` and `ks.export.scores` against a real server on a socket (SQLite and Postgres): the seed's
calls unchanged, a judge rule scored after the server answered and waited for, refusals as the SDK's
errors, and the README's snippet."""

from __future__ import annotations

import pytest

from polarity_keystone import BadRequestError, NotFoundError
from polarity_keystone.sdk import RuleScore
from polarity_keystone.types import ScoreRule
from tests.scoring.test_llm_judge import ENV_VARS
from tests.sdk.readme_snippets import run_readme_snippet
from tests.sdk.sdk_servers import KeystoneServer
from tests.server.test_server_scoring import configured_judge, stored_experiment


@pytest.fixture
def no_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_seed_calls_work_against_a_served_server(socket_server: KeystoneServer, no_judge: None) -> None:
    stored_experiment(socket_server.store, "exp-old")
    ks = socket_server.client()
    rule = ks.scoring.create_rule(
        "factuality", "llm_as_judge", {"model": "paragon-fast", "rubric": {"pass": "...", "fail": "..."}}
    )
    refund = ks.scoring.create_rule("refund", "contains", {"text": "Refund issued"})
    assert isinstance(rule, ScoreRule) and rule.config["rubric"] == {"pass": "...", "fail": "..."}
    assert [r.id for r in ks.scoring.list_rules()] == [rule.id, refund.id]

    accepted = ks.scoring.score_experiment("exp-old", [rule.id, refund.id])
    scores = ks.scoring.get_scores("exp-old")

    assert (accepted.scored, accepted.queued, accepted.replicas) == ([refund.id], [rule.id], 3)
    assert all(isinstance(score, RuleScore) for score in scores) and len(scores) == 6
    judged = [s for s in scores if s.rule_id == rule.id]
    assert {(s.state, s.passed, s.score) for s in judged} == {("skipped", False, None)}
    assert sorted(s["trace_id"] for s in scores if s.passed) == ["sb-refund-0"]  # read by key too
    exported = list(ks.export.scores(experiment_id="exp-old", page_size=4))
    assert sorted(s["id"] for s in exported) == sorted(s.id for s in scores)
    ks.scoring.delete_rule(rule.id)
    assert [s.rule_id for s in ks.scoring.get_scores("exp-old")] == [refund.id] * 3


def test_score_experiment_waits_for_the_judge_rules_scores(
    socket_server: KeystoneServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with configured_judge(monkeypatch) as model:
        model.answer('{"score": 0.8, "reasoning": "r"}', '{"score": 0.1}', '{"score": 0.9}')
        stored_experiment(socket_server.store, "exp-old")
        ks = socket_server.client()
        rule = ks.scoring.create_rule("judge", "llm_as_judge", {"criteria": "A refund?", "model": "m"})

        ks.scoring.score_experiment("exp-old", [rule.id])

        assert [(s.score, s.passed) for s in ks.scoring.get_scores("exp-old")] == [
            (0.8, True),
            (0.1, False),
            (0.9, True),
        ]


def test_refusals_raise_the_sdks_errors(socket_server: KeystoneServer) -> None:
    ks = socket_server.client()
    with pytest.raises(BadRequestError) as refused:
        ks.scoring.create_rule("r", "regex", {"pattern": "(unclosed"})
    assert refused.value.details["field"] == "config.pattern"
    with pytest.raises(NotFoundError):
        ks.scoring.score_experiment("exp-missing", ["rule_missing"])
    with pytest.raises(NotFoundError):
        ks.scoring.delete_rule("rule_missing")


def test_the_readme_snippet_prints_what_its_comments_say(
    socket_server: KeystoneServer, monkeypatch: pytest.MonkeyPatch, no_judge: None
) -> None:
    stored_experiment(socket_server.store, "exp-old")
    printed, expected = run_readme_snippet("Scoring", socket_server, monkeypatch)
    assert printed == expected
    assert socket_server.client().scoring.list_rules() == []
