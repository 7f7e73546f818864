"""Signed webhooks (`run.completed`), delivered in the background and retried with backoff.

Each POST carries `Keystone-Event: <type>` and `Keystone-Signature: t=<unix time>,v1=<hex>`, where the
hex is HMAC-SHA256 over `"<t>.<body>"` with the shared secret; `verify_webhook` checks it (and its age,
against replays). A receiver that does not answer 2xx is retried with exponential backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import tenacity

log = logging.getLogger("polarity_keystone.server")

SIGNATURE_HEADER = "Keystone-Signature"
EVENT_HEADER = "Keystone-Event"


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


class WebhookSender:
    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        attempts: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._url = url
        self._secret = secret or ""
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keystone-webhook")

    def send(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue a delivery; returns at once (nothing happens without a configured URL)."""
        if not self._url:
            return
        payload = {
            "id": f"evt_{secrets.token_hex(12)}",
            "type": event_type,
            "created_at": datetime.now(UTC).isoformat(),
            "data": data,
        }
        self._executor.submit(self._deliver, self._url, event_type, json.dumps(payload).encode())

    def _deliver(self, url: str, event_type: str, body: bytes) -> None:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._attempts) | tenacity.stop_when_event_set(self._stop),
            wait=tenacity.wait_exponential(multiplier=self._backoff_s, max=self._max_backoff_s),
            sleep=self._pause,
            reraise=True,
        )
        try:
            with httpx.Client(timeout=10.0) as client:
                for attempt in retrying:
                    with attempt:
                        headers = {
                            "Content-Type": "application/json",
                            EVENT_HEADER: event_type,
                            SIGNATURE_HEADER: sign_webhook(self._secret, body),
                        }
                        client.post(url, content=body, headers=headers).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("webhook %s to %s failed after retries: %s", event_type, url, exc)

    def _pause(self, seconds: float) -> None:
        """Backoff that ends early when the server stops."""
        self._stop.wait(seconds)

    def close(self) -> None:
        """Every queued delivery makes its attempt; none waits to retry any more."""
        self._stop.set()
        self._executor.shutdown(wait=True)
