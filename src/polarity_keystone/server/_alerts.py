"""Alert rules evaluated when an experiment completes, and their firings delivered in the background.

When an experiment completes, every rule of its project that covers its spec (`eval_id`, or every spec)
is evaluated over the rule's window of that spec's completed experiments. A rule that holds is recorded
as a firing and delivered, retried with backoff, each attempt's outcome kept on the firing (the rule's
delivery log):

- `webhook`: the firing as JSON, POSTed and signed like the completion webhooks (`Keystone-Event:
  alert.fired`, `Keystone-Event-Id` and `Keystone-Delivery` the firing's id, `Keystone-Signature` made
  with the rule's secret);
- `slack`: a Block Kit message POSTed to a Slack incoming webhook: the rule's `slack_webhook_url`, else
  the operator's (`KEYSTONE_SLACK_WEBHOOK_URL`).

A URL from an API caller passes the same private-network guard as webhook subscriptions before every
attempt; the operator's Slack URL is trusted. Nothing here can delay or fail the experiment: evaluation
runs on this notifier's own threads, and its failures are logged.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from ..store import AlertFiringRecord, AlertRuleRecord, ExperimentRecord, Store
from ._alert_conditions import Condition, Window, parse_condition, parse_window, window_value
from ._webhook_targets import UnsafeTarget
from ._webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    DeliveryFailed,
    delivery_attempts,
    post_json,
    sign_webhook,
)

log = logging.getLogger("polarity_keystone.server")

ALERT_EVENT = "alert.fired"
SLACK_WEBHOOK_URL_ENV = "KEYSTONE_SLACK_WEBHOOK_URL"
"""The operator's Slack incoming webhook, for `slack` rules that name no URL of their own."""
MAX_ALERT_RULES_PER_PROJECT = 50
KEPT_FIRINGS = 100
"""Firings kept per rule; older ones are dropped."""
WINDOW_SCAN = 200
"""The most recent experiments of a spec a time window looks through."""


class _RuleDeleted(Exception):
    """The rule was deleted while its firing was being delivered: no more attempts."""


@dataclass(frozen=True)
class _Outgoing:
    """A firing's message and where it goes; `trusted` skips the guard (the operator's own URL)."""

    url: str
    body: bytes
    headers: dict[str, str]
    trusted: bool


def firing_document(firing: AlertFiringRecord) -> dict[str, Any]:
    """The firing as a receiver and `GET /v1/alerts/{id}/firings` see it (without its delivery state)."""
    return {
        "id": firing.id,
        "rule_id": firing.rule_id,
        "rule_name": firing.rule_name,
        "reason": firing.reason,
        "experiment_id": firing.experiment_id,
        "fired_at": firing.created_at.isoformat(),
    }


def slack_message(rule: AlertRuleRecord, firing: AlertFiringRecord) -> dict[str, Any]:
    """A Block Kit message: the rule's name as the header, why it fired, and which experiment."""
    text = f"Keystone alert {rule.name}: {firing.reason}"
    message: dict[str, Any] = {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"Alert: {rule.name}"[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": firing.reason}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"experiment `{firing.experiment_id}` · rule `{rule.id}` · "
                        f"{firing.created_at.isoformat(timespec='seconds')}",
                    }
                ],
            },
        ],
    }
    if rule.slack_channel:
        message["channel"] = rule.slack_channel
    return message


class AlertNotifier:
    def __init__(
        self,
        store: Store,
        *,
        slack_webhook_url: str | None,
        allow_private: bool,
        attempts: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._store = store
        self._slack_webhook_url = slack_webhook_url
        self._allow_private = allow_private
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keystone-alerts")

    def experiment_finished(self, record: ExperimentRecord) -> None:
        """Evaluate the project's rules in the background; returns at once and never raises. Only a
        completed experiment with results is evaluated, and none once the notifier is closed."""
        if record.status != "completed" or record.results is None:
            return
        try:
            self._executor.submit(self._evaluate, record)
        except RuntimeError:
            log.warning("alert rules not evaluated for %s: the server is stopping", record.id)

    def _evaluate(self, record: ExperimentRecord) -> None:
        try:
            rules = self._store.list_alert_rules(
                record.project_id, cursor=None, limit=MAX_ALERT_RULES_PER_PROJECT
            ).items
            windows = {
                rule.id: parse_window(rule.eval_window)
                for rule in rules
                if rule.eval_id in (None, record.spec_id)
            }
            if not windows:
                return
            earlier = self._earlier(record, max(window.runs or WINDOW_SCAN for window in windows.values()))
            for rule in rules:
                if rule.id in windows:
                    self._check(rule, record, _within(windows[rule.id], record, earlier))
        except Exception:
            log.exception("alert rules after experiment %s: evaluation failed", record.id)

    def _earlier(self, record: ExperimentRecord, scan: int) -> list[ExperimentRecord]:
        """The spec's other completed experiments among its `scan` latest, newest first: read once for
        every rule."""
        recent = self._store.list_experiments(
            record.project_id, cursor=None, limit=scan, spec_id=record.spec_id, status="completed"
        ).items
        return [e for e in recent if e.id != record.id and e.results is not None]

    def _check(self, rule: AlertRuleRecord, record: ExperimentRecord, window: list[ExperimentRecord]) -> None:
        condition = parse_condition(rule.condition)
        values = [float(e.results["metrics"].get(condition.metric, 0.0)) for e in window if e.results]
        value = window_value(condition.metric, values)
        if condition.holds(value):
            self._fire(rule, record, _reason(condition, value, rule.eval_window, len(values)))

    def _fire(self, rule: AlertRuleRecord, record: ExperimentRecord, reason: str) -> None:
        now = datetime.now(UTC)
        firing = AlertFiringRecord(
            id=f"fire_{secrets.token_hex(12)}",
            rule_id=rule.id,
            rule_name=rule.name,
            reason=reason,
            experiment_id=record.id,
            state="pending",
            attempts=0,
            status_code=None,
            error=None,
            created_at=now,
            updated_at=now,
        )
        if not self._store.put_alert_firing(firing, keep=KEPT_FIRINGS):
            return
        try:
            self._executor.submit(self._deliver, rule, firing)
        except RuntimeError:  # the server is closing: one attempt now, no retries
            self._deliver(rule, firing)

    def _outgoing(self, rule: AlertRuleRecord, firing: AlertFiringRecord) -> _Outgoing:
        if rule.notify == "webhook":
            body = json.dumps(firing_document(firing)).encode()
            headers = {
                EVENT_HEADER: ALERT_EVENT,
                EVENT_ID_HEADER: firing.id,
                DELIVERY_HEADER: firing.id,
                SIGNATURE_HEADER: sign_webhook(rule.secret, body),
            }
            return _Outgoing(rule.webhook_url or "", body, headers, trusted=False)
        body = json.dumps(slack_message(rule, firing)).encode()
        if rule.slack_webhook_url:
            return _Outgoing(rule.slack_webhook_url, body, {}, trusted=False)
        return _Outgoing(self._slack_webhook_url or "", body, {}, trusted=True)

    def _deliver(self, rule: AlertRuleRecord, firing: AlertFiringRecord) -> None:
        retrying = delivery_attempts(self._attempts, self._backoff_s, self._max_backoff_s, self._stop)
        try:
            for attempt in retrying:
                with attempt:
                    firing = self._attempt(rule, firing, attempt.retry_state.attempt_number)
                    if firing.error is not None:
                        raise DeliveryFailed(firing.error)
        except DeliveryFailed as exc:
            log.warning("alert %s (%s) not delivered after retries: %s", rule.name, rule.id, exc)
            self._store.put_alert_firing(replace(firing, state="failed"), keep=KEPT_FIRINGS)
        except _RuleDeleted:
            pass

    def _attempt(self, rule: AlertRuleRecord, firing: AlertFiringRecord, number: int) -> AlertFiringRecord:
        """One POST; the firing with its outcome, stored."""
        status: int | None = None
        try:
            outgoing = self._outgoing(rule, firing)
            if not outgoing.url:
                raise UnsafeTarget(
                    "no Slack incoming-webhook URL: give the rule a slack_webhook_url, or set "
                    f"{SLACK_WEBHOOK_URL_ENV} on the server"
                )
            allow_private = None if outgoing.trusted else self._allow_private
            status = post_json(outgoing.url, outgoing.body, outgoing.headers, allow_private=allow_private)
            error = None if 200 <= status < 300 else f"the receiver answered {status}"
        except (httpx.HTTPError, UnsafeTarget) as exc:
            error = str(exc) or type(exc).__name__
        state: Literal["delivered", "pending"] = "delivered" if error is None else "pending"
        outcome = replace(
            firing,
            state=state,
            attempts=number,
            status_code=status,
            error=error,
            updated_at=datetime.now(UTC),
        )
        if not self._store.put_alert_firing(outcome, keep=KEPT_FIRINGS):
            raise _RuleDeleted()
        return outcome

    def close(self) -> None:
        """Queued evaluations run and every delivery makes its attempt; none waits to retry any more."""
        self._stop.set()
        self._executor.shutdown(wait=True)


def _within(
    window: Window, record: ExperimentRecord, earlier: list[ExperimentRecord]
) -> list[ExperimentRecord]:
    """The experiments the window covers: the one just completed and those of `earlier` (newest first)
    among its last runs, or finished within its period."""
    if window.period is None:
        return [record, *earlier[: (window.runs or 1) - 1]]
    since = (record.finished_at or datetime.now(UTC)) - window.period
    return [record, *(e for e in earlier if e.finished_at is not None and e.finished_at >= since)]


def _reason(condition: Condition, value: float, window: str, experiments: int) -> str:
    over = "the completed experiment" if experiments == 1 else f"{experiments} experiments ({window})"
    return f"{condition.metric} is {value:g} over {over}: {condition}"
