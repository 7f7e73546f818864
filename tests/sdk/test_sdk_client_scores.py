"""`run_and_wait(scores=[...])` against a real server (both stores): client-side scorers run on each
finished scenario, their scores appended to its invariants; a failed score fails a passing scenario and
the counts, a skipped one changes no verdict; the scorers run on a few threads at once."""

from __future__ import annotations

import threading
import time

import pytest

from polarity_keystone.scorers import Case, Score, Scorer
from polarity_keystone.sdk import _client_scores as client_scores
from tests.sdk.sdk_servers import KeystoneServer
from tests.server.export_data import EXPERIMENT_ID, STATUSES, seed_experiment


@Scorer
def said_something(case: Case) -> Score:
    return Score("said_something", 1.0 if case.scenario_id != "s-pass" else 0.0, message="checked")


@Scorer
def no_judge(case: Case) -> Score:
    return Score("no_judge", None, message="no judge key configured", skipped=True)


def test_a_failed_client_score_fails_a_passing_scenario_and_the_counts(server: KeystoneServer) -> None:
    seed_experiment(server.store)
    ks = server.client()
    results = ks.experiments.run_and_wait(EXPERIMENT_ID, scores=[said_something, no_judge])

    by_id = {scenario.scenario_id: scenario for scenario in results.scenarios}
    assert {key: s.status for key, s in by_id.items()} == {
        "s-pass": "fail",
        "s-fail": "fail",
        "s-error": "error",
    }
    assert (results.passed, results.failed, results.errors) == (0, 2, 1)
    appended = [(i.name, i.passed, i.score, i.weight, i.skipped) for i in by_id["s-pass"].invariants]
    assert appended == [("said_something", False, 0.0, 1.0, False), ("no_judge", False, 0.0, 1.0, True)]
    assert by_id["s-pass"].invariants[1].reason == "no judge key configured"
    assert [i.passed for i in by_id["s-fail"].invariants] == [True, False]

    stored = ks.experiments.get(EXPERIMENT_ID)
    assert (stored.passed, [len(s.invariants) for s in stored.scenarios]) == (1, [0] * len(STATUSES))


def test_a_skipped_score_never_passes_nor_fails_a_scenario(server: KeystoneServer) -> None:
    seed_experiment(server.store)
    results = server.client().experiments.run_and_wait(EXPERIMENT_ID, scores=[no_judge])
    assert (results.passed, results.failed, results.errors) == (1, 1, 1)
    assert all(s.invariants[-1].skipped for s in results.scenarios)


def test_scenarios_are_scored_a_few_at_a_time(
    server: KeystoneServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_experiment(server.store)
    together = threading.Barrier(len(STATUSES), timeout=10)

    @Scorer
    def all_at_once(case: Case) -> float:
        together.wait()  # breaks (a failed score) unless every scenario is scored at the same time
        return 1.0

    results = server.client().experiments.run_and_wait(EXPERIMENT_ID, scores=[all_at_once])
    assert [s.invariants[-1].passed for s in results.scenarios] == [True] * len(STATUSES)

    monkeypatch.setattr(client_scores, "SCORING_THREADS", 2)
    running, most = 0, 0
    lock = threading.Lock()

    @Scorer
    def counted(case: Case) -> float:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return 1.0

    server.client().experiments.run_and_wait(EXPERIMENT_ID, scores=[counted])
    assert most <= 2
