"""When and how long the SDK waits before trying a request again.

Retried: connection errors and timeouts, 429, 503 and every other 5xx. POSTs are safe to retry because
every POST carries an Idempotency-Key that stays the same across the attempts of one call.
The wait is the server's Retry-After when it sent one (capped), else a capped exponential backoff with
jitter, so many clients that failed together do not come back together.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import tenacity

from ._errors import APIConnectionError, APIStatusError, InternalServerError, RateLimitError

log = logging.getLogger("polarity_keystone.sdk")

RETRYABLE = (APIConnectionError, RateLimitError, InternalServerError)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    """A longer Retry-After is cut to this, so one answer cannot stall a caller for hours."""

    def retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            retry=tenacity.retry_if_exception_type(RETRYABLE),
            wait=self.wait_seconds,
            before_sleep=_log_retry,
            reraise=True,
        )

    def wait_seconds(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, APIStatusError) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        return self.backoff(state.attempt_number)

    def backoff(self, attempt: int) -> float:
        """Exponential from `initial_backoff`, capped at `max_backoff`, minus up to 25% jitter."""
        capped = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        return capped * (1 - 0.25 * random.random())


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.info("retrying in %.2fs after attempt %d failed: %s", wait, state.attempt_number, error)
