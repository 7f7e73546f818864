"""Per-key token buckets: reads and writes each have their own rate, with a burst of one second's worth
(at least one request)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, read_rate: float, write_rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rates = {"read": read_rate, "write": write_rate}
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, kind: str) -> float:
        """Take one token for `key`; returns 0 when allowed, else the seconds until a token is free."""
        rate = self._rates[kind]
        burst = max(1.0, rate)
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get((key, kind), (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[(key, kind)] = (tokens - 1.0, now)
                return 0.0
            self._buckets[(key, kind)] = (tokens, now)
            return (1.0 - tokens) / rate
