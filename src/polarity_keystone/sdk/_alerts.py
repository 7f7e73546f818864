"""`ks.alerts`: rules over experiment metrics, evaluated by the server whenever an experiment of the
project completes, and what each rule fired.

A rule is `{name, condition: "<metric> <op> <number>", notify: "webhook" | "slack", ...}`, with
`eval_id` to watch one spec only and `window` (`last_N_runs`, `last_Nh`, `last_Nd`) to judge several
experiments at once; `webhook_url` for webhooks, `slack_channel` (and `slack_webhook_url`, else the
server's own incoming webhook) for Slack. A webhook delivery is signed like the completion webhooks
(`Keystone-Event: alert.fired`; `polarity_keystone.server.verify_webhook` checks it with the rule's
`secret`, answered only by `create`).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from ._http import HttpClient
from ._models import KeystoneModel


class AlertRule(KeystoneModel):
    id: str
    name: str
    eval_id: str | None = None
    condition: str
    window: str
    notify: Literal["webhook", "slack"]
    webhook_url: str | None = None
    slack_channel: str | None = None
    created_at: datetime
    secret: str | None = None
    """Only in what `create` returns: the server never answers it again."""


class AlertFiring(KeystoneModel):
    """One time a rule held, `{rule_id, rule_name, reason, experiment_id, fired_at}`, with its
    delivery's outcome: state, attempts, the receiver's last status code or the last error."""

    id: str
    rule_id: str
    rule_name: str
    reason: str
    experiment_id: str
    fired_at: datetime
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: int | None = None
    error: str | None = None
    updated_at: datetime


class AlertService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(self, rule: Mapping[str, Any]) -> AlertRule:
        """Create a rule from its fields, e.g. `{"name": "pass-rate-drop", "condition": "pass_rate < 0.8",
        "notify": "slack", "slack_channel": "#agent-alerts"}`. A condition, window or URL the server
        refuses raises BadRequestError, whose details name the field (and the allowed metrics and
        operators)."""
        return AlertRule.from_dict(self._http.json("POST", "/v1/alerts", json=dict(rule)))

    def list(self, *, limit: int | None = None) -> list[AlertRule]:
        """The project's rules, oldest first (the first `limit`)."""
        return [AlertRule.from_dict(item) for item in self._http.list_items("/v1/alerts", limit=limit)]

    def get(self, alert_id: str) -> AlertRule:
        return AlertRule.from_dict(self._http.json("GET", _path(alert_id)))

    def delete(self, alert_id: str) -> None:
        """Delete the rule and its firings."""
        self._http.request("DELETE", _path(alert_id))

    def firings(self, alert_id: str) -> builtins.list[AlertFiring]:
        """The rule's latest firings, oldest first, each with its delivery's outcome."""
        return [AlertFiring.from_dict(item) for item in self._http.list_items(f"{_path(alert_id)}/firings")]


def _path(alert_id: str) -> str:
    return f"/v1/alerts/{quote(alert_id, safe='')}"
