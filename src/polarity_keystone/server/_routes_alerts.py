"""`/v1/alerts`: a project's alert rules over its experiments' metrics, and each rule's firings with
their delivery outcome (see `_alerts` for when rules are evaluated and how firings are delivered)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import Field

from ..store import AlertFiringRecord, AlertRuleRecord, Conflict
from ._alert_conditions import DEFAULT_WINDOW, METRICS, OPERATORS, InvalidAlert, parse_condition, parse_window
from ._alerts import KEPT_FIRINGS, MAX_ALERT_RULES_PER_PROJECT
from ._deps import Context, LiveKey
from ._errors import InvalidRequest
from ._models import _Request, _Response, error_responses
from ._paging import LIST_RESPONSES, Paging
from ._webhook_targets import MAX_URL_LENGTH, UnsafeTarget, resolve_target

router = APIRouter(prefix="/v1/alerts", tags=["Alerts"])

AlertNotify = Literal["webhook", "slack"]


class AlertCreate(_Request):
    name: str = Field(min_length=1, max_length=200)
    eval_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Only experiments of this spec id."
    )
    condition: str = Field(
        min_length=1,
        max_length=200,
        description=f"`<metric> <op> <number>`; metrics: {', '.join(METRICS)}; operators: "
        f"{' '.join(OPERATORS)}.",
    )
    window: str | None = Field(
        default=None,
        max_length=32,
        description=f"`last_N_runs`, `last_Nh` or `last_Nd`; default {DEFAULT_WINDOW} (the experiment "
        "that completed). Totals are summed over the window, other metrics averaged.",
    )
    notify: AlertNotify
    webhook_url: str | None = Field(
        default=None, min_length=1, max_length=MAX_URL_LENGTH, description="With notify=webhook."
    )
    slack_channel: str | None = Field(default=None, min_length=1, max_length=80)
    slack_webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="With notify=slack: a Slack-compatible incoming webhook; default: the server's "
        "KEYSTONE_SLACK_WEBHOOK_URL. Never answered back.",
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="Signs webhook deliveries (`Keystone-Signature`); generated when absent.",
    )


class AlertRuleOut(_Response):
    id: str
    name: str
    eval_id: str | None
    condition: str
    window: str
    notify: AlertNotify
    webhook_url: str | None
    slack_channel: str | None
    created_at: datetime


class AlertRuleCreated(AlertRuleOut):
    secret: str = Field(description="Verifies webhook deliveries' signatures; answered only here.")


class AlertFiringOut(_Response):
    id: str
    rule_id: str
    rule_name: str
    reason: str
    experiment_id: str
    fired_at: datetime
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: int | None
    error: str | None
    updated_at: datetime


def rule_out(record: AlertRuleRecord) -> AlertRuleOut:
    return AlertRuleOut(
        id=record.id,
        name=record.name,
        eval_id=record.eval_id,
        condition=record.condition,
        window=record.eval_window,
        notify=record.notify,
        webhook_url=record.webhook_url,
        slack_channel=record.slack_channel,
        created_at=record.created_at,
    )


def firing_out(record: AlertFiringRecord) -> AlertFiringOut:
    return AlertFiringOut(
        id=record.id,
        rule_id=record.rule_id,
        rule_name=record.rule_name,
        reason=record.reason,
        experiment_id=record.experiment_id,
        fired_at=record.created_at,
        state=record.state,
        attempts=record.attempts,
        status_code=record.status_code,
        error=record.error,
        updated_at=record.updated_at,
    )


def _checked(body: AlertCreate, allow_private: bool) -> tuple[str, str]:
    """The rule's condition and window, normalised; InvalidRequest naming the field at fault."""
    try:
        condition = str(parse_condition(body.condition))
        window = body.window or DEFAULT_WINDOW
        parse_window(window)
    except InvalidAlert as exc:
        details = {"field": exc.field, "metrics": list(METRICS), "operators": list(OPERATORS)}
        raise InvalidRequest(f"{exc.field}: {exc}", details=details) from None
    url_field = "webhook_url" if body.notify == "webhook" else "slack_webhook_url"
    url = body.webhook_url if body.notify == "webhook" else body.slack_webhook_url
    if body.notify == "webhook" and url is None:
        raise InvalidRequest("notify=webhook needs a webhook_url", details={"field": "webhook_url"})
    if url is not None:
        try:
            resolve_target(url, allow_private=allow_private)
        except UnsafeTarget as exc:
            raise InvalidRequest(f"refused {url_field}: {exc}", details={"field": url_field}) from None
    return condition, window


@router.post(
    "",
    status_code=201,
    response_model=AlertRuleCreated,
    summary="Create an alert rule, evaluated whenever an experiment of the project completes",
    responses=error_responses(403),
)
def create_alert(body: AlertCreate, context: Context, caller: LiveKey) -> AlertRuleCreated:
    condition, window = _checked(body, context.settings.webhook_allow_private_networks)
    record = AlertRuleRecord(
        id=f"alert_{secrets.token_hex(12)}",
        project_id=caller.project_id,
        name=body.name,
        eval_id=body.eval_id,
        condition=condition,
        eval_window=window,
        notify=body.notify,
        webhook_url=body.webhook_url if body.notify == "webhook" else None,
        slack_channel=body.slack_channel,
        slack_webhook_url=body.slack_webhook_url if body.notify == "slack" else None,
        secret=body.secret or f"whsec_{secrets.token_urlsafe(32)}",
        created_at=datetime.now(UTC),
    )
    try:
        context.store.add_alert_rule(record, max_per_project=MAX_ALERT_RULES_PER_PROJECT)
    except Conflict as exc:
        raise InvalidRequest(f"{exc}; delete one first") from None
    return AlertRuleCreated(**rule_out(record).model_dump(), secret=record.secret)


@router.get(
    "",
    response_model=list[AlertRuleOut],
    summary="List the project's alert rules (oldest first)",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_alerts(context: Context, caller: LiveKey, pager: Paging) -> list[AlertRuleOut]:
    page = context.store.list_alert_rules(caller.project_id, cursor=pager.cursor, limit=pager.limit)
    return pager.answer(page, rule_out)


@router.get(
    "/{alert_id}",
    response_model=AlertRuleOut,
    summary="Get an alert rule",
    responses=error_responses(403, 404),
)
def get_alert(alert_id: str, context: Context, caller: LiveKey) -> AlertRuleOut:
    return rule_out(context.store.get_alert_rule(caller.project_id, alert_id))


@router.delete(
    "/{alert_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an alert rule and its firings",
    responses=error_responses(403, 404),
)
def delete_alert(alert_id: str, context: Context, caller: LiveKey) -> Response:
    context.store.delete_alert_rule(caller.project_id, alert_id)
    return Response(status_code=204)


@router.get(
    "/{alert_id}/firings",
    response_model=list[AlertFiringOut],
    summary=f"A rule's last {KEPT_FIRINGS} firings, oldest first, with each delivery's attempts and outcome",
    responses={**LIST_RESPONSES, **error_responses(403, 404)},
)
def list_firings(alert_id: str, context: Context, caller: LiveKey, pager: Paging) -> list[AlertFiringOut]:
    rule = context.store.get_alert_rule(caller.project_id, alert_id)
    firings = context.store.alert_firings(rule.id)
    page = pager.slice(firings, "alert_firings", lambda item: (item.created_at.isoformat(), item.id))
    return pager.answer(page, firing_out)
