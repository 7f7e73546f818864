"""Signed webhooks sent when an experiment, a run or a replica suite ends, delivered in the background and
retried with backoff.

The body IS the resource as its GET route answers it: `run.completed` carries the Run, `replica.completed`
the ReplicaSuite, `experiment.completed` the experiment with its results. What the event is travels in
headers: `Keystone-Event: <type>`, `Keystone-Event-Id: evt_...` (the same for every receiver of one event),
`Keystone-Delivery: dlv_...` (one per receiver, the same on every retry: deduplicate on it) and
`Keystone-Signature: t=<unix time>,v1=<hex>`, where the hex is HMAC-SHA256 over `"<t>.<body>"` with the
receiver's secret; `verify_webhook` checks it (and its age, against replays).

Receivers: the operator's `webhook_url` (every event of every project) and each subscription of the
experiment's project that asked for the event. A subscription's URL is checked before every attempt (see
`resolve_target`), its receiver's answer is never read beyond the status line, and every attempt is logged
in the store (the subscription's last deliveries).

A subscription's delivery is logged with the experiment it is about and the server instance sending it, so
one still pending when that server stopped (killed, or stopped while it waited to retry) is resumed by the
next server to sweep the store once the instance's lease has run out (see `_instance`): the same
`Keystone-Delivery` and event id, the body made again from the experiment, the attempts left of the
budget. Delivery is at least once: receivers deduplicate on `Keystone-Delivery`. The operator's URL is
not logged, so its deliveries end with their server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import tenacity

from ..store import ExperimentRecord, NotFound, Store, WebhookDeliveryRecord
from ._webhook_targets import UnsafeTarget, resolve_target

log = logging.getLogger("polarity_keystone.server")

SIGNATURE_HEADER = "Keystone-Signature"
EVENT_HEADER = "Keystone-Event"
EVENT_ID_HEADER = "Keystone-Event-Id"
DELIVERY_HEADER = "Keystone-Delivery"
KEPT_DELIVERIES = 100
"""Deliveries kept in a subscription's log; older ones are dropped."""

DeliveryState = Literal["pending", "delivered", "failed"]
Render = Callable[[str, ExperimentRecord], dict[str, Any]]
"""The body of an event of the given type about the experiment."""


def delivery_attempts(
    attempts: int, backoff_s: float, max_backoff_s: float, stop: threading.Event
) -> tenacity.Retrying:
    """The attempts of one delivery: up to `attempts`, again after DeliveryFailed with exponential
    backoff, the last failure re-raised; once `stop` is set, no attempt waits to be retried."""

    def pause(seconds: float) -> None:
        stop.wait(seconds)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_when_event_set(stop),
        wait=tenacity.wait_exponential(multiplier=backoff_s, max=max_backoff_s),
        sleep=pause,
        retry=tenacity.retry_if_exception_type(DeliveryFailed),
        reraise=True,
    )


def post_json(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool | None) -> int:
    """POST the JSON `body`; the receiver's status code (its answer is never read further). A URL an API
    caller gave is checked and its address pinned first (UnsafeTarget when refused) under
    `allow_private`; the operator's own URL (`allow_private=None`) is trusted, proxies included."""
    headers = {"Content-Type": "application/json", **headers}
    extensions: dict[str, Any] = {}
    if allow_private is not None:
        target = resolve_target(url, allow_private=allow_private)
        url, extensions = target.connect_url, {"sni_hostname": target.host}
        headers["Host"] = target.host_header
    with (
        httpx.Client(timeout=10.0, follow_redirects=False, trust_env=allow_private is None) as client,
        client.stream("POST", url, content=body, headers=headers, extensions=extensions) as response,
    ):
        return response.status_code


def sign_webhook(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Keystone-Signature` header value for `body`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify_webhook(secret: str, body: bytes, header: str, tolerance_s: float = 300.0) -> bool:
    """Whether `header` is a valid signature of `body`, made less than `tolerance_s` ago."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = fields.get("t", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = sign_webhook(secret, body, int(timestamp)).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


@dataclass
class _Delivery:
    """One event on its way to one receiver."""

    url: str
    secret: str
    event_type: str
    event_id: str
    body: bytes
    log: WebhookDeliveryRecord | None
    """The subscription's delivery log entry as last stored; None for the operator's URL, which is
    trusted and unlogged."""


class DeliveryFailed(Exception):
    """An attempt the receiver did not accept (a non-2xx answer, no answer, or a refused address): what
    `delivery_attempts` retries."""


class _Unsubscribed(Exception):
    """The subscription was deleted while its delivery was under way: no more attempts."""


class WebhookSender:
    def __init__(
        self,
        store: Store,
        render: Render,
        *,
        operator_url: str | None,
        operator_secret: str | None,
        allow_private: bool,
        instance_id: str | None = None,
        attempts: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._store = store
        self._render = render
        self._operator_url = operator_url
        self._operator_secret = operator_secret or ""
        self._allow_private = allow_private
        self._instance_id = instance_id
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keystone-webhook")

    def send(self, event_type: str, record: ExperimentRecord) -> None:
        """Queue the event's deliveries; returns at once. A failure to build them is logged, never raised:
        the experiment has ended whatever its webhooks do."""
        try:
            deliveries = self._deliveries(event_type, record)
        except Exception:
            log.exception("webhook %s for %s: could not prepare its deliveries", event_type, record.id)
            return
        for delivery in deliveries:
            self._executor.submit(self._deliver, delivery)

    def _deliveries(self, event_type: str, record: ExperimentRecord) -> list[_Delivery]:
        subscriptions = self._store.subscribed_webhooks(record.project_id, event_type)
        if not subscriptions and not self._operator_url:
            return []
        event_id = f"evt_{secrets.token_hex(12)}"
        body = json.dumps(self._render(event_type, record)).encode()
        deliveries = []
        if self._operator_url:
            deliveries.append(
                _Delivery(self._operator_url, self._operator_secret, event_type, event_id, body, None)
            )
        now = datetime.now(UTC)
        for subscription in subscriptions:
            entry = WebhookDeliveryRecord(
                f"dlv_{secrets.token_hex(12)}",
                subscription.id,
                event_id,
                event_type,
                "pending",
                0,
                None,
                None,
                now,
                now,
                record.id,
                self._instance_id,
            )
            self._store.put_webhook_delivery(entry, keep=KEPT_DELIVERIES)
            deliveries.append(
                _Delivery(subscription.url, subscription.secret, event_type, event_id, body, entry)
            )
        return deliveries

    def sweep(self) -> None:
        """Resume the subscription deliveries that servers which stopped left pending (see the module's
        docstring). One whose experiment or subscription is gone, or logged before deliveries named their
        experiment, fails saying so."""
        if self._instance_id is None:
            return
        for entry in self._store.take_abandoned_deliveries(self._instance_id):
            try:
                delivery = self._resumed(entry)
            except NotFound as exc:
                error = f"its server stopped before it was delivered, and {exc}"
                failed = replace(entry, state="failed", error=error, updated_at=datetime.now(UTC))
                self._store.put_webhook_delivery(failed, keep=KEPT_DELIVERIES)
                continue
            log.info("webhook %s: resuming delivery %s a stopped server left", entry.event_type, entry.id)
            self._executor.submit(self._deliver, delivery, entry.attempts)

    def _resumed(self, entry: WebhookDeliveryRecord) -> _Delivery:
        if entry.experiment_id is None:
            raise NotFound("it names no experiment to make its body from")
        record = self._store.get_experiment(entry.experiment_id)
        subscription = self._store.get_webhook(record.project_id, entry.webhook_id)
        body = json.dumps(self._render(entry.event_type, record)).encode()
        return _Delivery(subscription.url, subscription.secret, entry.event_type, entry.event_id, body, entry)

    def _deliver(self, delivery: _Delivery, made: int = 0) -> None:
        """Make the attempts left of the budget, `made` already made (by a server that stopped)."""
        left = max(1, self._attempts - made)
        retrying = delivery_attempts(left, self._backoff_s, self._max_backoff_s, self._stop)
        try:
            for attempt in retrying:
                with attempt:
                    self._attempt(delivery, made + attempt.retry_state.attempt_number)
        except DeliveryFailed as exc:
            log.warning("webhook %s to %s failed after retries: %s", delivery.event_type, delivery.url, exc)
            self._record(delivery, "failed")
        except _Unsubscribed:
            pass

    def _attempt(self, delivery: _Delivery, number: int) -> None:
        try:
            status = self._post(delivery)
        except (httpx.HTTPError, UnsafeTarget) as exc:
            error = str(exc) or type(exc).__name__
            if not self._record(delivery, "pending", attempts=number, status_code=None, error=error):
                raise _Unsubscribed() from exc
            raise DeliveryFailed(error) from exc
        if not 200 <= status < 300:
            if not self._record(
                delivery, "pending", attempts=number, status_code=status, error=f"answered {status}"
            ):
                raise _Unsubscribed()
            raise DeliveryFailed(f"the receiver answered {status}")
        self._record(delivery, "delivered", attempts=number, status_code=status, error=None)

    def _post(self, delivery: _Delivery) -> int:
        """POST the body; the receiver's status code. A subscription's URL is checked and its address
        pinned first; the response body is never read."""
        headers = {
            EVENT_HEADER: delivery.event_type,
            EVENT_ID_HEADER: delivery.event_id,
            SIGNATURE_HEADER: sign_webhook(delivery.secret, delivery.body),
        }
        if delivery.log is None:
            return post_json(delivery.url, delivery.body, headers, allow_private=None)
        headers[DELIVERY_HEADER] = delivery.log.id
        return post_json(delivery.url, delivery.body, headers, allow_private=self._allow_private)

    def _record(self, delivery: _Delivery, state: DeliveryState, **outcome: Any) -> bool:
        """Log the attempt in the subscription's deliveries (nothing for the operator's URL); False when
        the subscription is gone."""
        if delivery.log is None:
            return True
        delivery.log = replace(delivery.log, state=state, updated_at=datetime.now(UTC), **outcome)
        return self._store.put_webhook_delivery(delivery.log, keep=KEPT_DELIVERIES)

    def close(self) -> None:
        """Every queued delivery makes its attempt; none waits to retry any more."""
        self._stop.set()
        self._executor.shutdown(wait=True)
