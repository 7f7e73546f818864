"""`/v1/webhooks`: a project's webhook subscriptions and their delivery logs; and the bodies the
completion webhooks carry (each the resource as its GET route answers it)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response

from ..store import Conflict, ExperimentRecord, WebhookDeliveryRecord, WebhookRecord
from ._context import ServerContext
from ._deps import Context, LiveKey
from ._errors import InvalidRequest
from ._models import WebhookCreate, WebhookCreated, WebhookDeliveryOut, WebhookOut, error_responses
from ._paging import LIST_RESPONSES, Paging
from ._routes_experiments import experiment_document
from ._routes_runs import run_out, suite_out
from ._runner import COMPLETED_WEBHOOK, REPLICA_SUITE, RUN
from ._webhook_targets import UnsafeTarget, resolve_target
from ._webhooks import KEPT_DELIVERIES

router = APIRouter(prefix="/v1/webhooks", tags=["Webhooks"])

MAX_WEBHOOKS_PER_PROJECT = 50


def completion_body(context: ServerContext, event_type: str, record: ExperimentRecord) -> dict[str, Any]:
    """What a completion webhook carries: the Run (`run.completed`), the ReplicaSuite
    (`replica.completed`) or the experiment with its results, as their GET routes answer them. Links
    start with the server's public URL (relative without one: no request tells the address)."""
    if event_type == COMPLETED_WEBHOOK[RUN]:
        return run_out(context, record, context.settings.public_url or "").model_dump(mode="json")
    if event_type == COMPLETED_WEBHOOK[REPLICA_SUITE]:
        return suite_out(context, record).model_dump(mode="json")
    return experiment_document(context, record)


def webhook_out(record: WebhookRecord) -> WebhookOut:
    return WebhookOut(id=record.id, url=record.url, events=record.events, created_at=record.created_at)


def delivery_out(record: WebhookDeliveryRecord) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=record.id,
        event_id=record.event_id,
        event_type=record.event_type,
        state=record.state,
        attempts=record.attempts,
        status_code=record.status_code,
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Subscribe a URL to the project's completion events (the signing secret is answered only here)",
    responses=error_responses(403),
)
def create_webhook(body: WebhookCreate, context: Context, caller: LiveKey) -> WebhookCreated:
    try:
        resolve_target(body.url, allow_private=context.settings.webhook_allow_private_networks)
    except UnsafeTarget as exc:
        raise InvalidRequest(f"refused webhook URL: {exc}") from None
    record = WebhookRecord(
        id=f"wh_{secrets.token_hex(12)}",
        project_id=caller.project_id,
        url=body.url,
        events=list(dict.fromkeys(body.events)),
        secret=body.secret or f"whsec_{secrets.token_urlsafe(32)}",
        created_at=datetime.now(UTC),
    )
    try:
        context.store.add_webhook(record, max_per_project=MAX_WEBHOOKS_PER_PROJECT)
    except Conflict as exc:
        raise InvalidRequest(f"{exc}; delete one first") from None
    return WebhookCreated(**webhook_out(record).model_dump(), secret=record.secret)


@router.get(
    "",
    response_model=list[WebhookOut],
    summary="List the project's webhook subscriptions (oldest first; secrets are never answered)",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_webhooks(context: Context, caller: LiveKey, pager: Paging) -> list[WebhookOut]:
    page = context.store.list_webhooks(caller.project_id, cursor=pager.cursor, limit=pager.limit)
    return pager.answer(page, webhook_out)


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Get a webhook subscription",
    responses=error_responses(403, 404),
)
def get_webhook(webhook_id: str, context: Context, caller: LiveKey) -> WebhookOut:
    return webhook_out(context.store.get_webhook(caller.project_id, webhook_id))


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook subscription and its delivery log",
    responses=error_responses(403, 404),
)
def delete_webhook(webhook_id: str, context: Context, caller: LiveKey) -> Response:
    context.store.delete_webhook(caller.project_id, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=list[WebhookDeliveryOut],
    summary=f"A subscription's last {KEPT_DELIVERIES} deliveries, oldest first: attempts and outcome",
    responses={**LIST_RESPONSES, **error_responses(403, 404)},
)
def list_deliveries(
    webhook_id: str, context: Context, caller: LiveKey, pager: Paging
) -> list[WebhookDeliveryOut]:
    subscription = context.store.get_webhook(caller.project_id, webhook_id)
    deliveries = context.store.webhook_deliveries(subscription.id)
    page = pager.slice(deliveries, "webhook_deliveries", lambda item: (item.created_at.isoformat(), item.id))
    return pager.answer(page, delivery_out)
