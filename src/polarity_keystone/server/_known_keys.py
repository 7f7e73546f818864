"""API keys looked up recently, remembered for a moment: a busy client's requests then skip the store
lookup, which runs in a worker thread and costs a small request more than everything else it does.

A revocation through the server's own store object (the admin route, a sandbox's end, anything that calls
`revoke_api_key` on it) takes effect at the next request: the store counts its revocations, and a key
remembered before the count changed is looked up again. A revocation from another process (`ks keys
revoke` against the store, another server on the same database) takes effect within `TTL_S`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..store import ApiKeyRecord, Store
from ._keys import hash_key

TTL_S = 1.0
MAX_KEYS = 10_000
"""More distinct keys than this within `TTL_S` start the cache afresh (a bound, not an expected load)."""


class KnownKeys:
    def __init__(
        self, store: Store, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[ApiKeyRecord, int, float]] = {}
        self._lock = threading.Lock()

    def remembered(self, key: str) -> ApiKeyRecord | None:
        """The live key's record if it was looked up within `TTL_S` and nothing was revoked since; no I/O."""
        key_hash = hash_key(key)
        with self._lock:
            entry = self._entries.get(key_hash)
            if entry is None:
                return None
            record, revocations, expires = entry
            if revocations == self._store.revocations and self._clock() < expires:
                return record
            del self._entries[key_hash]
            return None

    def look_up(self, key: str) -> ApiKeyRecord | None:
        """The key's record from the store (None for an unknown key); a live one is remembered."""
        key_hash = hash_key(key)
        revocations = self._store.revocations  # before the read: a revocation during it voids the entry
        record = self._store.api_key_by_hash(key_hash)
        if record is not None and not record.revoked:
            with self._lock:
                if len(self._entries) >= MAX_KEYS:
                    self._entries.clear()
                self._entries[key_hash] = (record, revocations, self._clock() + self._ttl_s)
        return record
