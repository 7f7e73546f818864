"""API keys looked up recently, remembered for a moment: a busy client's requests then skip the store
lookup, which runs in a worker thread and costs a small request more than everything else it does.

A revocation through the server's own store object (the admin route, a sandbox's end, anything that calls
`revoke_api_key` on it) takes effect at the next request: the store counts its revocations, and a key
remembered before the count changed is looked up again. A revocation from another process (`ks keys
revoke` against the store, another server on the same database) takes effect within `TTL_S`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..store import ApiKeyRecord, Store
from ._keys import hash_key
from ._recent import Recent

TTL_S = 1.0


class KnownKeys:
    def __init__(
        self, store: Store, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._records: Recent[str, ApiKeyRecord] = Recent(ttl_s, clock)

    def remembered(self, key: str) -> ApiKeyRecord | None:
        """The live key's record if it was looked up within `TTL_S` and nothing was revoked since; no I/O."""
        return self.remembered_hash(hash_key(key))

    def remembered_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return self._records.get(key_hash, self._store.revocations)

    def look_up(self, key: str) -> ApiKeyRecord | None:
        """The key's record from the store (None for an unknown key); a live one is remembered."""
        return self.look_up_hash(hash_key(key))

    def look_up_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """`look_up` by the key's hash (what a dashboard session keeps instead of the key)."""
        revocations = self._store.revocations  # before the read: a revocation during it voids the entry
        record = self._store.api_key_by_hash(key_hash)
        if record is not None and not record.revoked:
            self._records.put(key_hash, record, revocations)
        return record
