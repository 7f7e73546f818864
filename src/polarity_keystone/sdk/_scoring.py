"""`ks.scoring`: score rules, and scoring a stored experiment with them offline, without running it
again (e.g. a judge rule added after the experiment ran).

Every rule reads each replica's agent output (its stdout, secret values redacted when the results were
stored). Types: `contains` `{text}`, `regex` `{pattern}` (Python syntax), and `llm_as_judge`
`{criteria | rubric: {pass, fail}, model, pass_threshold?}`, judged by the model endpoint the server's
operator configured (without one, its scores are `skipped`, never passed). Scoring an experiment again
with a rule replaces that rule's earlier scores of it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from ._http import HttpClient
from ._models import KeystoneModel

RuleType = Literal["contains", "regex", "llm_as_judge"]
POLL_INTERVAL = 0.5
"""Seconds between two looks at an experiment's scores while judge rules score it."""


class ScoreRule(KeystoneModel):
    id: str
    name: str
    type: RuleType
    config: dict[str, Any]
    created_at: datetime


class RuleScore(KeystoneModel):
    """One rule's score of one replica: `trace_id` is the replica's sandbox (its trace); `score` is
    None and `passed` False when the rule was `skipped` (no judge configured)."""

    id: str
    rule_id: str
    trace_id: str
    experiment_id: str
    scenario_id: str
    replica: int
    score: float | None = None
    passed: bool
    state: Literal["passed", "failed", "skipped"]
    message: str
    created_at: datetime


class ScoringAccepted(KeystoneModel):
    """What the server took on: `scored` rules are done, `queued` (judge) rules score after it answered."""

    experiment_id: str
    replicas: int
    scored: list[str]
    queued: list[str]
    accepted_at: datetime


class ScoringService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create_rule(self, name: str, type: RuleType, config: Mapping[str, Any]) -> ScoreRule:
        """A configuration the server refuses raises BadRequestError, whose details name the field."""
        body = {"name": name, "type": type, "config": dict(config)}
        return ScoreRule.from_dict(self._http.json("POST", "/v1/score-rules", json=body))

    def list_rules(self) -> list[ScoreRule]:
        """The project's rules, oldest first."""
        return [ScoreRule.from_dict(item) for item in self._http.iter_items("/v1/score-rules")]

    def delete_rule(self, rule_id: str) -> None:
        """Delete the rule and the scores it gave."""
        self._http.request("DELETE", f"/v1/score-rules/{quote(rule_id, safe='')}")

    def score_experiment(
        self, experiment_id: str, rule_ids: Sequence[str], *, wait: bool = True, timeout: float = 600.0
    ) -> ScoringAccepted:
        """Score the experiment's replicas with the rules. Heuristic rules are scored before the server
        answers; with `wait`, this also waits (up to `timeout` seconds, else TimeoutError) until
        the judge rules' scores are stored, so `get_scores` right after sees every rule's."""
        body = {"rule_ids": list(rule_ids)}
        accepted = ScoringAccepted.from_dict(
            self._http.json("POST", f"{_path(experiment_id)}/score", json=body)
        )
        deadline = time.monotonic() + timeout
        while wait and accepted.replicas and not self._all_scored(accepted):
            if time.monotonic() > deadline:
                raise TimeoutError(f"experiment {experiment_id} not scored after {timeout:g}s")
            time.sleep(POLL_INTERVAL)
        return accepted

    def get_scores(self, experiment_id: str, *, rule_id: str | None = None) -> list[RuleScore]:
        """The experiment's scores (of one rule, with `rule_id`), oldest first."""
        items = self._http.iter_items(f"{_path(experiment_id)}/scores", params={"rule_id": rule_id})
        return [RuleScore.from_dict(item) for item in items]

    def _all_scored(self, accepted: ScoringAccepted) -> bool:
        """Has every queued rule stored a score of each replica since the request was accepted?"""
        return all(
            sum(
                score.created_at >= accepted.accepted_at
                for score in self.get_scores(accepted.experiment_id, rule_id=rule)
            )
            >= accepted.replicas
            for rule in accepted.queued
        )


def _path(experiment_id: str) -> str:
    return f"/v1/experiments/{quote(experiment_id, safe='')}"
