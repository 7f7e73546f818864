"""`ks.webhooks`: subscribe URLs to the project's completion events, and read what was delivered.

Each delivery's body is the resource as its GET answers it (a Run for `run.completed`, a ReplicaSuite
for `replica.completed`, the experiment with its results for `experiment.completed`); the headers name
the event (`Keystone-Event`, `Keystone-Event-Id`, `Keystone-Delivery`) and sign the body
(`Keystone-Signature`, which `polarity_keystone.server.verify_webhook` checks with the secret).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from ._http import HttpClient
from ._models import KeystoneModel

WebhookEventType = Literal["run.completed", "replica.completed", "experiment.completed"]


class Webhook(KeystoneModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime
    secret: str | None = None
    """Only in what `create` returns: the server never answers it again."""


class WebhookDelivery(KeystoneModel):
    id: str
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: int | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime


class WebhookService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(self, url: str, events: Sequence[WebhookEventType], *, secret: str | None = None) -> Webhook:
        """Subscribe `url` to `events` of this key's project. Keep the returned `secret` (generated when
        not given): it verifies the signatures, and the server never shows it again. A URL that is not
        http(s), carries credentials or reaches a private network is refused (BadRequestError)."""
        body: dict[str, object] = {"url": url, "events": list(events)}
        if secret is not None:
            body["secret"] = secret
        return Webhook.from_dict(self._http.json("POST", "/v1/webhooks", json=body))

    def list(self, *, limit: int | None = None) -> list[Webhook]:
        """The project's subscriptions, oldest first (the first `limit`)."""
        return [Webhook.from_dict(item) for item in self._http.list_items("/v1/webhooks", limit=limit)]

    def get(self, webhook_id: str) -> Webhook:
        return Webhook.from_dict(self._http.json("GET", _path(webhook_id)))

    def delete(self, webhook_id: str) -> None:
        self._http.request("DELETE", _path(webhook_id))

    def deliveries(self, webhook_id: str) -> builtins.list[WebhookDelivery]:
        """The subscription's latest deliveries, oldest first: attempts, last status code or error."""
        items = self._http.list_items(f"{_path(webhook_id)}/deliveries")
        return [WebhookDelivery.from_dict(item) for item in items]


def _path(webhook_id: str) -> str:
    return f"/v1/webhooks/{quote(webhook_id, safe='')}"
