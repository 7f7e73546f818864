"""`ks.alerts` against a real server on a socket (SQLite and Postgres): the seed's calls unchanged, a rule
firing when an experiment completes and its delivery read back, refusals as the SDK's errors."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone import BadRequestError, Keystone, NotFoundError
from polarity_keystone.results import RunMetrics, RunResults
from polarity_keystone.sdk import AlertFiring
from polarity_keystone.server import ServerSettings, create_api_key, serve_in_thread, verify_webhook
from polarity_keystone.store import ExperimentRecord
from polarity_keystone.types import AlertRule
from tests.sdk.sdk_servers import KeystoneServer
from tests.server.test_server_webhooks import Receiver
from tests.waiting import wait_until

README = Path(__file__).parents[2] / "README.md"


def test_the_seed_calls_work_against_a_served_server(socket_server: KeystoneServer) -> None:
    ks = socket_server.client()
    rule = ks.alerts.create(
        {
            "name": "pass-rate-drop",
            "condition": "pass_rate < 0.8",
            "notify": "slack",
            "slack_channel": "#agent-alerts",
        }
    )
    assert isinstance(rule, AlertRule)
    assert (rule.id[:6], rule.name, rule.condition, rule.notify, rule.slack_channel, rule.window) == (
        "alert_",
        "pass-rate-drop",
        "pass_rate < 0.8",
        "slack",
        "#agent-alerts",
        "last_1_runs",
    )
    assert [r.id for r in ks.alerts.list()] == [rule.id]
    assert ks.alerts.get(rule.id).secret is None  # answered by create only
    assert ks.alerts.firings(rule.id) == []

    ks.alerts.delete(rule.id)
    with pytest.raises(NotFoundError):
        ks.alerts.get(rule.id)
    assert ks.alerts.list() == []
    assert AlertRule.from_dict(rule.model_dump(mode="json")) == rule


def test_a_refused_condition_raises_bad_request_naming_the_field(server: KeystoneServer) -> None:
    ks = server.client()
    with pytest.raises(BadRequestError) as raised:
        ks.alerts.create({"name": "x", "condition": "accuracy < 0.8", "notify": "slack"})
    assert raised.value.details["field"] == "condition"
    assert "mean_tool_calls" in raised.value.details["metrics"]


def test_a_rule_fires_when_an_experiment_completes_and_its_delivery_reads_back(store_url: str) -> None:
    receiver = Receiver()
    settings = ServerSettings(store_url=store_url, webhook_allow_private_networks=True)
    try:
        with (
            serve_in_thread(settings) as running,
            Keystone(
                api_key=create_api_key(running.app.state.keystone.store, "t")[0], base_url=running.url
            ) as ks,
        ):
            rule = ks.alerts.create(
                {
                    "name": "cost-spike",
                    "condition": "mean_cost_per_run_usd > 2.00",
                    "notify": "webhook",
                    "webhook_url": receiver.url,
                }
            )
            context = running.app.state.keystone
            now = datetime.now(UTC)
            context.store.add_experiment(ExperimentRecord("exp_1", "e", "s", 1, "running", now, "key_x"))
            metrics = RunMetrics(mean_cost_per_run_usd=2.5)
            results = RunResults(
                ran_at=now.isoformat(), spec_id="s", experiment_id="exp_1", seed=1, metrics=metrics
            )
            context.runner.finish("exp_1", "completed", results=results)

            [firing] = wait_until(
                lambda: [f for f in ks.alerts.firings(rule.id) if f.state == "delivered"], 20, "delivered"
            )
            assert isinstance(firing, AlertFiring)
            assert (firing.rule_id, firing.rule_name, firing.experiment_id) == (
                rule.id,
                "cost-spike",
                "exp_1",
            )
            assert firing.reason.startswith("mean_cost_per_run_usd is 2.5 over the completed experiment")
            headers, body = receiver.deliveries.get(timeout=10)
            assert json.loads(body)["id"] == firing.id
            assert rule.secret is not None and verify_webhook(
                rule.secret, body, headers["Keystone-Signature"]
            )
    finally:
        receiver.close()


def test_the_readme_snippet_prints_what_its_comments_say(
    socket_server: KeystoneServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    snippet = README.read_text().split("## Alerts\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    expected = [line.rsplit("  # ", 1)[1] for line in snippet.splitlines() if line.startswith("print(")]
    monkeypatch.setenv("KEYSTONE_BASE_URL", socket_server.base_url)
    monkeypatch.setenv("KEYSTONE_API_KEY", socket_server.key)
    printed, names = io.StringIO(), dict[str, Any]()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, str(README), "exec"), names)
    names["ks"].close()
    assert printed.getvalue().splitlines() == expected
    assert socket_server.client().alerts.list() == []
