"""`POST /v1/experiments/compare` takes the gate's alpha, correction and min-effect, validates them like any
other request field, and says which it used."""

from __future__ import annotations

from typing import Any

import pytest

from polarity_keystone.gate import INPUTS
from tests.gate.gate_results import run
from tests.server.server_api import Api
from tests.server.stored_results import store_finished

PAIR = {"baseline_id": "exp-base", "candidate_id": "exp-cand"}


@pytest.fixture
def pair(api: Api) -> Api:
    """Two stored experiments: `drop` loses 3 of 10 replicas, `same` loses nothing."""
    store_finished(api.context.store, run({"drop": "P" * 10, "same": "PPPPP"}, experiment_id="exp-base"))
    store_finished(
        api.context.store, run({"drop": "P" * 7 + "FFF", "same": "PPPPP"}, experiment_id="exp-cand")
    )
    return api


def _compare(api: Api, **options: Any) -> dict[str, Any]:
    response = api.client.post("/v1/experiments/compare", json={**PAIR, **options})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_without_parameters_compare_uses_the_gates_defaults(pair: Api) -> None:
    defaults = {gate_input.name: gate_input.default for gate_input in INPUTS}

    body = _compare(pair)

    assert body["policy"] == {
        "alpha": float(defaults["alpha"]),
        "correction": defaults["correction"],
        "min_effect": float(defaults["min-effect"]),
    }
    assert _compare(pair, alpha=None, correction=None, min_effect=None)["policy"] == body["policy"]


def test_the_parameters_change_the_decision_and_the_response_says_so(pair: Api) -> None:
    """10/10 -> 7/10 (p=0.105) is not significant at 0.05: the suite leans towards a drop (inconclusive),
    the scenario alone does not even reach alpha (unchanged, not flagged). At alpha 0.5 it is a regression,
    unless min-effect asks for more than its 0.3."""
    default = _compare(pair)
    lenient = _compare(pair, alpha=0.5, correction="bh", min_effect=0.3)
    demanding = _compare(pair, alpha=0.5, min_effect=0.31)

    rows = {row["scenario_id"]: row for row in default["scenarios"]}
    assert rows["drop"]["p_value"] == pytest.approx(0.1052631579)
    assert [rows["drop"]["decision"], rows["same"]["decision"]] == ["unchanged", "unchanged"]
    assert default["suite"]["decision"] == "inconclusive" and default["regressed"] is False
    assert default["suite"]["replicas_needed"] > 10
    assert default["summary"].startswith("inconclusive: pass rate from 1.00 to 0.80")
    assert lenient["policy"] == {"alpha": 0.5, "correction": "bh", "min_effect": 0.3}
    assert lenient["regressed"] is True
    assert [row["decision"] for row in lenient["scenarios"]] == ["regressed", "unchanged"]
    assert demanding["regressed"] is False
    assert [row["decision"] for row in demanding["scenarios"]] == ["unchanged", "unchanged"]


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": 0.51}, "alpha"),
        ({"alpha": "nan"}, "alpha"),
        ({"alpha": "often"}, "alpha"),
        ({"correction": "bonferroni"}, "correction"),
        ({"correction": "HOLM"}, "correction"),
        ({"min_effect": 1.01}, "min_effect"),
        ({"min_effect": -0.01}, "min_effect"),
    ],
)
def test_a_bad_parameter_is_a_400_like_any_invalid_request(
    pair: Api, options: dict[str, Any], where: str
) -> None:
    response = pair.client.post("/v1/experiments/compare", json={**PAIR, **options})

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["message"].startswith(f"{where}:")
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_the_boundaries_are_accepted(pair: Api) -> None:
    assert _compare(pair, alpha=0.5, min_effect=0)["policy"]["min_effect"] == 0
    assert _compare(pair, alpha=1e-9, min_effect=1)["policy"]["alpha"] == 1e-9


def test_a_scenario_the_candidate_could_not_evaluate_is_untested(api: Api) -> None:
    store_finished(api.context.store, run({"a": "PPP", "b": "PPP"}, experiment_id="exp-base"))
    store_finished(api.context.store, run({"a": "PPE", "b": "PPP"}, experiment_id="exp-cand"))

    body = _compare(api)

    assert body["scenarios"][0] == {
        "scenario_id": "a",
        "baseline_pass_rate": 1.0,
        "candidate_pass_rate": 1.0,
        "p_value": None,
        "p_adjusted": None,
        "decision": "untested",
        "replicas_needed": None,
        "regressed": False,
    }
    assert body["suite"]["decision"] == "unchanged"  # the suite is `b` alone
    assert body["suite"]["p_value"] == body["scenarios"][1]["p_value"] == 1.0
