"""`ks.webhooks` against the real app (in-process, over SQLite and Postgres): subscribe, list, get, read
the delivery log, delete; refused URLs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from polarity_keystone import BadRequestError, NotFoundError
from polarity_keystone.sdk import Webhook, WebhookDelivery
from polarity_keystone.store import WebhookDeliveryRecord
from tests.sdk.sdk_servers import KeystoneServer

URL = "https://93.184.215.14/hooks/keystone"


def test_subscribe_list_get_deliveries_and_delete(server: KeystoneServer) -> None:
    ks = server.client()
    created = ks.webhooks.create(URL, ["run.completed", "replica.completed"], secret="whsec-sdk-test-secret")
    generated = ks.webhooks.create(URL, ["experiment.completed"])

    assert isinstance(created, Webhook)
    assert (created.url, created.events, created.secret) == (
        URL,
        ["run.completed", "replica.completed"],
        "whsec-sdk-test-secret",
    )
    assert generated.secret and generated.secret.startswith("whsec_")
    assert [(w.id, w.secret) for w in ks.webhooks.list()] == [(created.id, None), (generated.id, None)]
    assert [w.id for w in ks.webhooks.list(limit=1)] == [created.id]
    assert ks.webhooks.get(created.id).events == created.events

    now = datetime.now(UTC)
    server.store.put_webhook_delivery(
        WebhookDeliveryRecord(
            "dlv_1", created.id, "evt_1", "run.completed", "failed", 6, 500, "answered 500", now, now
        ),
        keep=100,
    )
    [delivery] = ks.webhooks.deliveries(created.id)
    assert isinstance(delivery, WebhookDelivery)
    assert (delivery.state, delivery.attempts, delivery.status_code) == ("failed", 6, 500)

    ks.webhooks.delete(created.id)
    with pytest.raises(NotFoundError):
        ks.webhooks.get(created.id)
    assert [w.id for w in ks.webhooks.list()] == [generated.id]


def test_a_url_into_a_private_network_is_refused(server: KeystoneServer) -> None:
    with pytest.raises(BadRequestError) as caught:
        server.client().webhooks.create("http://169.254.169.254/latest/meta-data/", ["run.completed"])

    assert "link-local" in caught.value.message
