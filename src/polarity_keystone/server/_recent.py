"""`Recent`: values read from the store a moment ago, answered again without I/O while they are fresh.

Each value is remembered with the store's write count that covers it, taken before the read. A write
through the server's own store object changes that count, so the next request reads again; a write from
another process (another server on the same database, a command against the store) is seen once the
entry's `ttl_s` has passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_ENTRIES = 10_000
"""More distinct keys than this within `ttl_s` start the memory afresh (a bound, not an expected load)."""


class Recent(Generic[K, V]):
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[K, tuple[V, int, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, writes: int) -> V | None:
        """The value remembered for `key` within `ttl_s`, if the write count is still `writes`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, remembered_writes, expires = entry
            if remembered_writes == writes and self._clock() < expires:
                return value
            del self._entries[key]
            return None

    def put(self, key: K, value: V, writes: int) -> None:
        """Remember `value`, read after the store's write count was `writes`."""
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (value, writes, self._clock() + self._ttl_s)
