"""Alert rules (`/v1/alerts`) on both stores: created and refused, evaluated over a window when an
experiment completes (through the runner's real completion path, with results stored directly rather
than run in Docker), delivered to real local receivers as a signed webhook or a Slack Block Kit message,
retried, logged, and kept within their project."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.results import RunMetrics, RunResults
from polarity_keystone.server import SIGNATURE_HEADER, create_api_key, verify_webhook
from polarity_keystone.store import DEFAULT_PROJECT, ExperimentRecord, ProjectRecord
from tests.server.server_api import Api, MakeApi, unreachable_engine
from tests.server.test_server_webhooks import Receiver
from tests.waiting import wait_until

SECRET = "alert-signing-secret"


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api(backend_factory=unreachable_engine, webhook_allow_private_networks=True)


def _rule(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/alerts", json={"name": "r", "notify": "webhook", **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _complete(
    api: Api, experiment_id: str, spec_id: str = "checkout", project_id: str = DEFAULT_PROJECT, **metrics: Any
) -> None:
    """An experiment ends `completed` with these metrics, through the runner's completion path."""
    now = datetime.now(UTC)
    api.context.store.add_experiment(
        ExperimentRecord(
            experiment_id, experiment_id, spec_id, 1, "running", now, "key_x", project_id=project_id
        )
    )
    results = RunResults(
        ran_at=now.isoformat(),
        spec_id=spec_id,
        experiment_id=experiment_id,
        seed=1,
        metrics=RunMetrics(**metrics),
    )
    api.context.runner.finish(experiment_id, "completed", results=results)


def _firings(client: httpx.Client, rule_id: str, state: str = "delivered") -> list[dict[str, Any]]:
    """The rule's firings once there is one and it reached `state`."""

    def settled() -> list[dict[str, Any]]:
        firings: list[dict[str, Any]] = client.get(f"/v1/alerts/{rule_id}/firings").json()
        return firings if all(f["state"] == state for f in firings) else []

    return wait_until(settled, 20, f"a firing of {rule_id} {state}")


def test_a_rule_that_holds_fires_a_signed_webhook_and_one_that_does_not_stays_quiet(
    api: Api, receivers: list[Receiver]
) -> None:
    receivers.append(receiver := Receiver())
    quiet = _rule(api.client, name="cost", condition="total_cost_usd > 5", webhook_url=receiver.url)
    loud = _rule(
        api.client,
        name="pass-rate-drop",
        condition="pass_rate < 0.8",
        webhook_url=receiver.url,
        secret=SECRET,
    )
    assert loud["secret"] == SECRET and loud["window"] == "last_1_runs"

    _complete(api, "exp_low", pass_rate=0.5, total_cost_usd=1.0)

    [firing] = _firings(api.client, loud["id"])
    assert api.client.get(f"/v1/alerts/{quiet['id']}/firings").json() == []  # evaluated before `loud`
    headers, body = receiver.deliveries.get(timeout=10)
    sent = json.loads(body)
    assert {key: value for key, value in sent.items() if key != "fired_at"} == {
        key: firing[key] for key in ("id", "rule_id", "rule_name", "reason", "experiment_id")
    }
    assert (sent["rule_id"], sent["rule_name"], sent["experiment_id"]) == (
        loud["id"],
        "pass-rate-drop",
        "exp_low",
    )
    assert sent["reason"] == "pass_rate is 0.5 over the completed experiment: pass_rate < 0.8"
    assert datetime.fromisoformat(sent["fired_at"]) == datetime.fromisoformat(firing["fired_at"])
    assert headers["Keystone-Event"] == "alert.fired"
    assert headers["Keystone-Event-Id"] == headers["Keystone-Delivery"] == firing["id"]
    assert verify_webhook(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify_webhook("another-secret-of-16", body, headers[SIGNATURE_HEADER])
    assert (firing["attempts"], firing["status_code"], firing["error"]) == (1, 200, None)


def test_an_interrupted_experiment_fires_nothing_and_a_scoped_rule_ignores_other_specs(
    api: Api, receivers: list[Receiver]
) -> None:
    receivers.append(receiver := Receiver())
    scoped = _rule(api.client, condition="pass_rate < 0.8", eval_id="checkout", webhook_url=receiver.url)
    every_spec = _rule(api.client, condition="pass_rate < 0.8", webhook_url=receiver.url)
    now = datetime.now(UTC)
    api.context.store.add_experiment(ExperimentRecord("exp_cut", "c", "checkout", 1, "running", now, "key_x"))
    api.context.runner.finish("exp_cut", "interrupted", error="stopped")

    _complete(api, "exp_search", spec_id="search", pass_rate=0.1)

    [firing] = _firings(api.client, every_spec["id"])
    assert firing["experiment_id"] == "exp_search"
    assert api.client.get(f"/v1/alerts/{scoped['id']}/firings").json() == []


def test_a_window_of_runs_averages_rates_and_sums_totals_over_the_specs_last_experiments(
    api: Api, receivers: list[Receiver]
) -> None:
    receivers.append(receiver := Receiver())
    _complete(api, "exp_1", pass_rate=1.0, total_cost_usd=2.0)
    _complete(api, "exp_2", pass_rate=0.9, total_cost_usd=2.0)
    _complete(api, "exp_elsewhere", spec_id="search", pass_rate=0.0, total_cost_usd=50.0)
    rate = _rule(api.client, condition="pass_rate < 0.8", window="last_3_runs", webhook_url=receiver.url)
    cost = _rule(api.client, condition="total_cost_usd >= 5", window="last_2_runs", webhook_url=receiver.url)
    day = _rule(api.client, condition="total_cost_usd >= 7", window="last_24h", webhook_url=receiver.url)

    _complete(api, "exp_3", pass_rate=0.3, total_cost_usd=3.0)  # rate (1 + .9 + .3) / 3 = .733; cost 5

    [fired] = _firings(api.client, rate["id"])
    assert fired["reason"] == "pass_rate is 0.733333 over 3 experiments (last_3_runs): pass_rate < 0.8"
    [fired] = _firings(api.client, cost["id"])
    assert fired["reason"] == "total_cost_usd is 5 over 2 experiments (last_2_runs): total_cost_usd >= 5"
    [fired] = _firings(api.client, day["id"])
    assert fired["reason"].startswith("total_cost_usd is 7 over 3 experiments (last_24h)")


def test_a_slack_rule_posts_block_kit_to_the_operators_incoming_webhook_after_retrying(
    make_api: MakeApi, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    receivers.append(slack := Receiver(503, 500))
    monkeypatch.setenv("KEYSTONE_SLACK_WEBHOOK_URL", slack.url)
    api = make_api(backend_factory=unreachable_engine)
    rule = api.client.post(
        "/v1/alerts",
        json={
            "name": "pass-rate-drop",
            "condition": "pass_rate < 0.8",
            "notify": "slack",
            "slack_channel": "#a",
        },
    )
    assert rule.status_code == 201, rule.text

    _complete(api, "exp_slack", pass_rate=0.25)

    [firing] = _firings(api.client, rule.json()["id"])
    assert (firing["attempts"], firing["status_code"], firing["error"]) == (3, 200, None)
    bodies = [json.loads(slack.deliveries.get(timeout=10)[1]) for _ in range(3)]
    assert bodies[0] == bodies[1] == bodies[2]
    message = bodies[0]
    assert message["channel"] == "#a"
    assert message["text"] == "Keystone alert pass-rate-drop: " + firing["reason"]
    header, section, context = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Alert: pass-rate-drop"}}
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": firing["reason"]}}
    assert "`exp_slack`" in context["elements"][0]["text"]


def test_a_receiver_that_keeps_failing_is_logged_failed_after_the_last_attempt(
    make_api: MakeApi, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    receivers.append(receiver := Receiver(*[500] * 6))
    api = make_api(backend_factory=unreachable_engine, webhook_allow_private_networks=True)
    api.context.alerts._backoff_s = 0.01  # the six attempts' backoff, shortened for the test
    rule = _rule(api.client, condition="side_effect_violations > 0", webhook_url=receiver.url)

    _complete(api, "exp_bad", side_effect_violations=2)

    [firing] = _firings(api.client, rule["id"], state="failed")
    assert (firing["attempts"], firing["status_code"]) == (6, 500)
    assert firing["error"] == "the receiver answered 500"


def test_a_slack_rule_without_any_incoming_webhook_is_logged_as_undeliverable(api: Api) -> None:
    api.context.alerts._backoff_s = 0.01
    rule = api.client.post(
        "/v1/alerts",
        json={"name": "s", "condition": "mean_wall_ms > 10", "notify": "slack", "slack_channel": "#a"},
    ).json()

    _complete(api, "exp_slow", mean_wall_ms=50.0)

    [firing] = _firings(api.client, rule["id"], state="failed")
    assert firing["status_code"] is None and "KEYSTONE_SLACK_WEBHOOK_URL" in firing["error"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"condition": "pass_rate ~ 0.8"}, "condition"),
        ({"condition": "accuracy < 0.8"}, "condition"),
        ({"condition": "pass_rate < 0.8", "window": "last_week"}, "window"),
        ({"condition": "pass_rate < 0.8", "webhook_url": None}, "webhook_url"),
        ({"condition": "pass_rate < 0.8", "webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(api: Api, fields: dict[str, Any], field: str) -> None:
    body = {"name": "r", "notify": "webhook", "webhook_url": "http://93.184.215.14/hook", **fields}
    response = api.client.post("/v1/alerts", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["details"]["field"] == field
    if field == "condition":
        assert "pass_rate" in response.json()["details"]["metrics"]
        assert response.json()["details"]["operators"] == ["<=", ">=", "==", "!=", "<", ">"]


def test_a_rule_url_on_a_private_network_is_refused_unless_the_operator_allows_it(make_api: MakeApi) -> None:
    api = make_api(backend_factory=unreachable_engine)
    for notify, field in (("webhook", "webhook_url"), ("slack", "slack_webhook_url")):
        body = {"name": "r", "condition": "pass_rate < 1", "notify": notify, field: "http://127.0.0.1:9/x"}
        response = api.client.post("/v1/alerts", json=body)
        assert response.status_code == 400, response.text
        assert "loopback" in response.json()["message"] and response.json()["details"]["field"] == field


def test_rules_list_get_delete_and_stay_within_their_project(api: Api, receivers: list[Receiver]) -> None:
    receivers.append(receiver := Receiver())
    store = api.context.store
    store.add_project(ProjectRecord("proj-b", "b", datetime.now(UTC)))
    b = api.as_key(create_api_key(store, "b", "proj-b")[0])
    mine = _rule(api.client, name="a", condition="pass_rate < 0.8", webhook_url=receiver.url)
    theirs = _rule(b, name="b", condition="pass_rate<0.8", webhook_url=receiver.url)
    assert (
        theirs["condition"] == "pass_rate < 0.8"
        and "secret" not in b.get(f"/v1/alerts/{theirs['id']}").json()
    )

    assert [rule["id"] for rule in api.client.get("/v1/alerts").json()] == [mine["id"]]
    assert [rule["id"] for rule in b.get("/v1/alerts").json()] == [theirs["id"]]
    for path in (f"/v1/alerts/{theirs['id']}", f"/v1/alerts/{theirs['id']}/firings"):
        assert api.client.get(path).status_code == 404
    assert api.client.delete(f"/v1/alerts/{theirs['id']}").status_code == 404

    _complete(api, "exp_b", project_id="proj-b", pass_rate=0.0)
    [firing] = _firings(b, theirs["id"])
    assert firing["experiment_id"] == "exp_b"
    assert api.client.get(f"/v1/alerts/{mine['id']}/firings").json() == []

    assert b.delete(f"/v1/alerts/{theirs['id']}").status_code == 204
    assert b.get(f"/v1/alerts/{theirs['id']}/firings").status_code == 404
    assert api.context.store.alert_firings(theirs["id"]) == []


def test_a_project_holds_a_bounded_number_of_rules(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("polarity_keystone.server._routes_alerts.MAX_ALERT_RULES_PER_PROJECT", 2)
    body = {
        "name": "r",
        "condition": "pass_rate < 1",
        "notify": "webhook",
        "webhook_url": "http://93.184.215.14/",
    }
    assert [api.client.post("/v1/alerts", json=body).status_code for _ in range(3)] == [201, 201, 400]


def test_an_experiment_completing_while_the_alerts_stop_still_completes(api: Api) -> None:
    _rule(api.client, condition="pass_rate < 0.8", webhook_url="http://93.184.215.14/hook")
    api.context.alerts.close()

    _complete(api, "exp_late", pass_rate=0.0)

    assert api.context.store.get_experiment("exp_late").status == "completed"
